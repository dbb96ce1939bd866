"""A shop's offline-notification window over HTTP and in the admin: the owner reads and sets it;
nobody else does; a bad value changes nothing."""

import pytest
from django.urls import reverse

from customer_service.models import Shop
from tests import factories
from tests.customer_service.test_admin import SHOP_HOURS_UNCHANGED

pytestmark = pytest.mark.django_db
WINDOW = "/api/v1/shops/{}/offline-notify/"


def test_the_owner_reads_and_sets_the_window(merchant, shop, api):
    assert api(merchant).get(WINDOW.format(shop.pk)).json()["result"] == {
        "shop_id": shop.pk, "offline_notify_minutes": 10}

    response = api(merchant).put(WINDOW.format(shop.pk), {"offline_notify_minutes": 0}, format="json")

    assert response.status_code == 200 and response.json()["result"]["offline_notify_minutes"] == 0
    assert Shop.objects.get(pk=shop.pk).offline_notify_minutes == 0


def test_nobody_but_the_owner_reads_or_changes_the_window_and_bad_values_change_nothing(
        merchant, shop, amy, consumer, make_agent, api):
    make_agent(shop, amy)
    other_owner = factories.make_user(username="otherowner")
    Shop.objects.create(name="Other", owner=other_owner)

    for user in (amy, consumer, other_owner):
        assert api(user).get(WINDOW.format(shop.pk)).status_code == 403
        response = api(user).put(WINDOW.format(shop.pk), {"offline_notify_minutes": 0}, format="json")
        assert response.status_code == 403 and response.json()["code"] == -403
    assert api(merchant).put(WINDOW.format(424242), {"offline_notify_minutes": 1}, format="json").status_code == 404
    for bad in (-1, 1441, "ten", None, 2.5, True, "9" * 40):
        response = api(merchant).put(WINDOW.format(shop.pk), {"offline_notify_minutes": bad}, format="json")
        assert response.status_code == 400, bad
        assert response.json()["msg"].startswith("offline_notify_minutes"), bad
    assert api(merchant).put(WINDOW.format(shop.pk), {}, format="json").status_code == 400
    assert Shop.objects.get(pk=shop.pk).offline_notify_minutes == 10


def test_the_merchant_sets_the_window_in_the_admin_and_a_bad_one_is_refused(client, shop, merchant):
    merchant.is_staff = True
    merchant.save(update_fields=["is_staff"])
    client.force_login(merchant)
    change = reverse("admin:customer_service_shop_change", args=[shop.pk])
    form = {"name": shop.name, "logo": "", "strategy": shop.strategy, "offline_notice": shop.offline_notice,
            "contact_guard": shop.contact_guard, **SHOP_HOURS_UNCHANGED}

    assert b"offline_notify_minutes" in client.get(change).content
    assert client.post(change, {**form, "offline_notify_minutes": "1441"}).status_code == 200  # the form again
    assert Shop.objects.get(pk=shop.pk).offline_notify_minutes == 10
    assert client.post(change, {**form, "offline_notify_minutes": "30"}).status_code == 302
    assert Shop.objects.get(pk=shop.pk).offline_notify_minutes == 30
