"""The mall's webhook deliveries in the admin: superusers only, each attempt shown, "retry now"."""

import io
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.services import user_create
from customer_service import services, webhooks
from customer_service.models import WebhookAttempt, WebhookDelivery
from tests import factories
from tests.api.receiver import webhook_receiver

PASSWORD = factories.PASSWORD
XSS = "<script>alert(1)</script>"
pytestmark = pytest.mark.django_db


def logged_in(user) -> Client:
    client = Client()
    assert client.login(username=user.username, password=PASSWORD)
    return client


@pytest.fixture
def root(db):
    user = user_create(username="root", nickname="Root", password=PASSWORD, is_staff=True)
    user.is_superuser = True
    user.save(update_fields=["is_superuser"])
    return user


@pytest.fixture
def owner(db):
    """A staff shop owner: the merchant's admin, but no deliveries."""
    user = user_create(username="merchant", nickname="Merchant", password=PASSWORD, is_staff=True)
    services.shop_create(name="Tea", owner=user)
    return user


@pytest.fixture
def failed_delivery(settings, db):
    """One event the mall refused twice and was given up on (IM_WEBHOOK_MAX_ATTEMPTS 2)."""
    with webhook_receiver(500, 502) as receiver:
        settings.IM_WEBHOOK_URL, settings.IM_WEBHOOK_SECRET = receiver.url, "s" * 32
        settings.IM_WEBHOOK_MAX_ATTEMPTS = 2
        webhooks.webhook_enqueue(event="session.closed", data={"session_id": 7, "note": XSS})
        now = timezone.now()
        webhooks.webhooks_deliver(now=now)
        webhooks.webhooks_deliver(now=now + timedelta(hours=1))
    delivery = WebhookDelivery.objects.get()
    assert (delivery.state, delivery.attempts) == ("failed", 2)
    return delivery


def test_a_superuser_sees_the_delivery_with_each_attempt_and_its_body(root, failed_delivery):
    client = logged_in(root)

    listed = client.get(reverse("admin:customer_service_webhookdelivery_changelist"), {"state__exact": "failed"})
    page = client.get(reverse("admin:customer_service_webhookdelivery_change", args=[failed_delivery.pk]))

    assert listed.status_code == 200 and "session.closed" in listed.content.decode()
    text = page.content.decode()
    assert page.status_code == 200
    assert "HTTP 500" in text and "HTTP 502" in text  # both attempts, each with its answer
    assert "&quot;session_id&quot;: 7" in text and XSS not in text  # the body, readable and escaped


def test_a_merchant_sees_no_deliveries(owner, failed_delivery):
    client = logged_in(owner)

    assert client.get(reverse("admin:index")).status_code == 200
    assert client.get(reverse("admin:customer_service_webhookdelivery_changelist")).status_code == 403
    assert client.get(reverse("admin:customer_service_webhookdelivery_change", args=[failed_delivery.pk])
                      ).status_code == 403
    assert "webhookdelivery" not in client.get(reverse("admin:index")).content.decode()


def test_retry_now_sends_a_given_up_delivery_once_more_keeping_its_attempts(root, failed_delivery, settings):
    client = logged_in(root)

    response = client.post(reverse("admin:customer_service_webhookdelivery_changelist"),
                           {"action": "retry_now", "_selected_action": [failed_delivery.pk]}, follow=True)

    assert response.status_code == 200 and "1 due now" in response.content.decode()
    failed_delivery.refresh_from_db()
    assert (failed_delivery.state, failed_delivery.attempts) == ("pending", 2)
    assert failed_delivery.next_attempt_at <= timezone.now()
    with webhook_receiver() as receiver:
        settings.IM_WEBHOOK_URL = receiver.url
        assert webhooks.webhooks_deliver().delivered == 1
    failed_delivery.refresh_from_db()
    assert (failed_delivery.state, failed_delivery.attempts) == ("delivered", 3)
    assert receiver.received[0].headers["x-imchat-attempt"] == "3"
    assert [(a.number, a.status) for a in failed_delivery.attempt_log.all()] == [(1, 500), (2, 502), (3, 200)]


def test_retry_now_leaves_a_delivered_one_alone(root, failed_delivery):
    WebhookDelivery.objects.update(state="delivered")

    assert webhooks.deliveries_retry_now(delivery_ids=[failed_delivery.pk]) == 0
    assert WebhookDelivery.objects.get().state == "delivered"


def test_nobody_adds_changes_or_deletes_a_delivery_in_the_admin(root, failed_delivery):
    client = logged_in(root)

    assert client.get(reverse("admin:customer_service_webhookdelivery_add")).status_code == 403
    assert client.post(reverse("admin:customer_service_webhookdelivery_delete", args=[failed_delivery.pk]),
                       {"post": "yes"}).status_code == 403
    assert WebhookDelivery.objects.count() == 1


def test_pruning_deletes_only_old_delivered_events_with_their_attempts(failed_delivery, settings):
    with webhook_receiver() as receiver:
        settings.IM_WEBHOOK_URL = receiver.url
        webhooks.webhook_enqueue(event="session.closed", data={"session_id": 8})
        webhooks.webhook_enqueue(event="session.closed", data={"session_id": 9})
        webhooks.webhooks_deliver()
    old, recent = WebhookDelivery.objects.filter(state="delivered").order_by("pk")
    WebhookDelivery.objects.filter(pk__in=[old.pk, failed_delivery.pk]).update(
        created_at=timezone.now() - timedelta(days=40))

    call_command("deliverwebhooks", "--prune-days", "30", stdout=io.StringIO())

    assert set(WebhookDelivery.objects.values_list("pk", flat=True)) == {failed_delivery.pk, recent.pk}
    assert not WebhookAttempt.objects.filter(delivery_id=old.pk).exists()
