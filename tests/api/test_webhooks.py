"""Webhooks to the mall: stored with the message, signed, retried with backoff, never lost."""

from datetime import timedelta

import httpx
import pytest
from django.core.management import call_command
from django.utils import timezone

from customer_service import webhooks
from customer_service.models import WebhookDelivery
from tests.api.receiver import documented_check, webhook_receiver
from tests.customer_service.conftest import consumer_frame

pytestmark = pytest.mark.django_db
SECRET = "webhook-secret-0123456789abcdef"
# The four events these tests follow (session.queued and the rest: test_webhook_events.py).
FIRST_EVENTS = "session.created,message.unattended,session.rated,message.flagged"


@pytest.fixture(autouse=True)
def first_events(settings):
    settings.IM_WEBHOOK_EVENTS = FIRST_EVENTS


@pytest.fixture
def receiver(settings):
    """The mall's endpoint, checking every delivery with docs/INTEGRATION.md's code (400 when it fails)."""
    with webhook_receiver(secret=SECRET) as receiver:
        settings.IM_WEBHOOK_URL = receiver.url
        settings.IM_WEBHOOK_SECRET = SECRET
        settings.IM_WEBHOOK_RETRY_SECONDS = 10
        yield receiver


def signed_at(request) -> int:
    return int(dict(part.split("=", 1) for part in request.headers["x-imchat-signature"].split(","))["t"])


def say(api, consumer, shop, msg: str = "hello"):
    response = api(consumer).post("/api/v1/messages/", consumer_frame(shop.pk, msg), format="json")
    assert response.status_code == 201, response.content
    return response.json()["result"]


def test_nothing_is_queued_while_no_webhook_url_is_set(consumer, shop, api, settings):
    settings.IM_WEBHOOK_URL = ""

    say(api, consumer, shop)

    assert not WebhookDelivery.objects.exists()


def test_a_queued_consumer_tells_the_mall_of_the_new_session_and_each_unanswered_message(consumer, shop, api,
                                                                                       receiver):
    # given: no agent online, so the session is queued
    first = say(api, consumer, shop, "anyone there?")
    second = say(api, consumer, shop, "hello?")

    # when
    report = webhooks.webhooks_deliver()

    # then: one session event and one per message, in order, each signed over its exact body
    assert (report.delivered, report.retrying) == (3, 0)
    got = receiver.received
    assert [r.json["event"] for r in got] == ["session.created", "message.unattended", "message.unattended"]
    session = got[0].json["data"]
    assert (session["shop_id"], session["consumer_uid"], session["state"], session["agent_uid"]) == (
        shop.pk, consumer.pk, "queued", 0)
    assert [r.json["data"]["msg_id"] for r in got[1:]] == [first["msg_id"], second["msg_id"]]
    assert got[1].json["data"]["msg"] == "anyone there?" and got[1].json["data"]["chat_id"] == first["chat_id"]
    for request in got:
        assert request.signature_ok is True
        assert request.headers["x-imchat-event"] == request.json["event"]
        assert request.headers["x-imchat-delivery"] == request.json["id"]
        assert request.path == "/hooks/imchat"
    assert set(WebhookDelivery.objects.values_list("state", flat=True)) == {"delivered"}


def test_an_answered_consumer_only_reports_the_new_session(consumer, shop, amy, make_agent, connect, api, receiver):
    make_agent(shop, amy)
    connect(amy)

    say(api, consumer, shop, "hi")
    say(api, consumer, shop, "still there")
    webhooks.webhooks_deliver()

    assert [(r.json["event"], r.json["data"]["state"], r.json["data"]["agent_uid"]) for r in receiver.received] == [
        ("session.created", "open", amy.pk)]


def test_a_failing_receiver_gets_the_same_signed_event_again_with_growing_backoff(consumer, shop, api, settings):
    with webhook_receiver(500, 503) as receiver:
        settings.IM_WEBHOOK_URL, settings.IM_WEBHOOK_SECRET = receiver.url, SECRET
        settings.IM_WEBHOOK_RETRY_SECONDS = 10
        WebhookDelivery.objects.all().delete()
        say(api, consumer, shop)
        WebhookDelivery.objects.filter(event="message.unattended").delete()  # follow one event
        row = WebhookDelivery.objects.get()
        now = timezone.now()

        first = webhooks.webhooks_deliver(now=now)
        row.refresh_from_db()
        assert (first.retrying, row.state, row.attempts, row.last_status) == (1, "pending", 1, 500)
        assert row.next_attempt_at == now + timedelta(seconds=10)
        assert webhooks.webhooks_deliver(now=now + timedelta(seconds=9)).retrying == 0  # not due yet

        webhooks.webhooks_deliver(now=now + timedelta(seconds=10))
        row.refresh_from_db()
        assert (row.attempts, row.last_status) == (2, 503)
        assert row.next_attempt_at == now + timedelta(seconds=10 + 20)

        last = webhooks.webhooks_deliver(now=now + timedelta(seconds=30))
        row.refresh_from_db()
        assert (last.delivered, row.state, row.attempts, row.last_error) == (1, "delivered", 3, "")

    bodies = {r.body for r in receiver.received}
    assert len(receiver.received) == 3 and len(bodies) == 1
    assert [r.headers["x-imchat-attempt"] for r in receiver.received] == ["1", "2", "3"]
    # Each attempt signs its own time (so a retry is never refused as a replay).
    sent_at = int(now.timestamp())
    assert [signed_at(r) for r in receiver.received] == [sent_at, sent_at + 10, sent_at + 30]
    assert all(documented_check()(SECRET, r.headers["x-imchat-signature"], r.body, now=signed_at(r))
               for r in receiver.received)


def test_a_delivery_replayed_later_is_refused_by_the_documented_check(consumer, shop, api, receiver):
    # given: two events, first sent ten minutes ago (as a captured delivery replayed now looks)
    say(api, consumer, shop)
    ten_minutes_ago = timezone.now() - timedelta(minutes=10)
    WebhookDelivery.objects.update(next_attempt_at=ten_minutes_ago)

    # when they reach the mall's check now
    stale = webhooks.webhooks_deliver(now=ten_minutes_ago)

    # then it refuses them (and imchat retries), though the body and its HMAC are intact
    assert (stale.delivered, stale.retrying) == (0, 2)
    assert [(r.signature_ok, r.headers["x-imchat-attempt"]) for r in receiver.received] == [(False, "1")] * 2
    old = receiver.received[0]
    assert documented_check()(SECRET, old.headers["x-imchat-signature"], old.body, now=signed_at(old))

    # and the retry, signed at its own time, passes
    fresh = webhooks.webhooks_deliver()
    assert fresh.delivered == 2
    new = receiver.received[2]
    assert (new.signature_ok, new.body) == (True, old.body)

    # while the same request sent again over 5 minutes later, or with another body, is refused
    check, header = documented_check(), new.headers["x-imchat-signature"]
    assert check(SECRET, header, new.body, now=signed_at(new) + 299)
    assert not check(SECRET, header, new.body, now=signed_at(new) + 301)
    assert not check(SECRET, header, new.body + b" ", now=signed_at(new))
    assert not check("another-secret-0123456789", header, new.body, now=signed_at(new))
    replayed = httpx.post(receiver.url, content=old.body, headers={"X-Imchat-Signature": old.headers[
        "x-imchat-signature"], "Content-Type": "application/json"}, trust_env=False)
    assert replayed.status_code == 400 and receiver.received[-1].signature_ok is False


def test_an_unreachable_mall_is_retried_and_given_up_after_the_last_attempt(consumer, shop, api, settings):
    with webhook_receiver() as receiver:
        gone = receiver.url  # closed when the block ends: nothing listens there afterwards
    settings.IM_WEBHOOK_URL, settings.IM_WEBHOOK_SECRET = gone, SECRET
    settings.IM_WEBHOOK_MAX_ATTEMPTS = 2
    settings.IM_WEBHOOK_TIMEOUT = 1
    say(api, consumer, shop)
    now = timezone.now()

    webhooks.webhooks_deliver(now=now)
    report = webhooks.webhooks_deliver(now=now + timedelta(hours=2))

    assert report.gave_up == 2
    rows = list(WebhookDelivery.objects.all())
    assert {(row.state, row.attempts, row.last_status) for row in rows} == {("failed", 2, None)}
    assert all("ConnectError" in row.last_error for row in rows)


def test_the_command_delivers_what_is_due(consumer, shop, api, receiver):
    say(api, consumer, shop)

    call_command("deliverwebhooks")

    assert len(receiver.received) == 2
    assert not WebhookDelivery.objects.filter(state="pending").exists()


def test_backoff_doubles_and_is_capped_at_an_hour(settings):
    settings.IM_WEBHOOK_RETRY_SECONDS = 10

    assert [webhooks.backoff_seconds(n) for n in (1, 2, 3, 4, 10, 30)] == [10, 20, 40, 80, 3600, 3600]
