"""Business hours in the merchant's admin: on the shop's page, checked, scoped to the merchant."""

from datetime import time
from io import StringIO

import pytest
from django.core.management import call_command
from django.urls import reverse

from customer_service.models import Shop, ShopClosedDay, ShopHours
from customer_service.selectors import shop_hours
from tests.customer_service.test_admin import merchant_a, merchant_b, merchant_client, shop_a, shop_b  # noqa: F401


def url(shop) -> str:
    return reverse("admin:customer_service_shop_change", args=[shop.pk])


def form(shop, *, timezone="Europe/Berlin", hours=(), closed=(), greeting="Hi there!"):
    data = {"name": shop.name, "logo": "", "strategy": "least_busy", "offline_notice": "away", "contact_guard": "flag",
            "offline_notify_minutes": "10", "timezone": timezone, "greeting": greeting, "out_of_hours_message": "Closed until {next_opening}.",
            "hours-TOTAL_FORMS": str(len(hours)), "hours-INITIAL_FORMS": "0", "hours-MIN_NUM_FORMS": "0",
            "hours-MAX_NUM_FORMS": "42", "closed_days-TOTAL_FORMS": str(len(closed)),
            "closed_days-INITIAL_FORMS": "0", "closed_days-MIN_NUM_FORMS": "0", "closed_days-MAX_NUM_FORMS": "400"}
    for n, (weekday, opens, closes) in enumerate(hours):
        data.update({f"hours-{n}-weekday": str(weekday), f"hours-{n}-opens": opens, f"hours-{n}-closes": closes})
    for n, (day, note) in enumerate(closed):
        data.update({f"closed_days-{n}-date": day, f"closed_days-{n}-note": note})
    return data


def test_the_merchant_sets_hours_greeting_and_closed_days_on_the_shops_page(merchant_client, shop_a):
    page = merchant_client.get(url(shop_a)).content.decode().lower()
    assert "business hours and greeting" in page and "closed days (holidays)" in page

    response = merchant_client.post(url(shop_a), form(
        shop_a, hours=[(0, "09:00", "18:00"), (5, "22:00", "02:00")], closed=[("2027-12-25", "Christmas")]))

    assert response.status_code == 302
    shop = Shop.objects.get(pk=shop_a.pk)
    assert (shop.timezone, shop.greeting) == ("Europe/Berlin", "Hi there!")
    assert [(h.weekday, h.opens, h.closes) for h in ShopHours.objects.filter(shop=shop)] == [
        (0, time(9), time(18)), (5, time(22), time(2))]
    assert list(ShopClosedDay.objects.filter(shop=shop).values_list("note", flat=True)) == ["Christmas"]


@pytest.mark.parametrize(("changes", "complaint"), [
    ({"timezone": "Mars/Olympus"}, "not an IANA time zone"),
    ({"hours": [(0, "09:00", "12:00"), (0, "11:00", "13:00")]}, "overlaps"),
    ({"hours": [(0, "22:00", "10:00"), (1, "09:00", "12:00")]}, "overlaps"),
    ({"hours": [(0, "25:00", "10:00")]}, "Enter a valid time"),
    ({"closed": [("2027-12-25", ""), ("2027-12-25", "again")]}, "Please correct the duplicate data"),
])
def test_bad_hours_are_shown_as_errors_and_change_nothing(merchant_client, shop_a, changes, complaint):
    response = merchant_client.post(url(shop_a), form(shop_a, **changes))

    assert response.status_code == 200
    assert complaint in response.content.decode()
    assert Shop.objects.get(pk=shop_a.pk).timezone == "UTC"
    assert not ShopHours.objects.exists() and not ShopClosedDay.objects.exists()


def test_a_merchant_cannot_set_another_merchants_hours(merchant_client, shop_b):
    response = merchant_client.post(url(shop_b), form(shop_b, hours=[(0, "09:00", "10:00")]))

    assert response.status_code == 302 and response["Location"] == reverse("admin:index")
    assert not ShopHours.objects.exists()
    assert Shop.objects.get(pk=shop_b.pk).greeting == ""


def test_seeddemo_keeps_the_demo_shop_always_open_and_gives_its_second_shop_hours_and_a_greeting(db, settings):
    settings.DEBUG = True
    call_command("seeddemo", stdout=StringIO())
    assert shop_hours(1).always_open
    owl = Shop.objects.get(pk=2)
    hours = shop_hours(2)
    assert (owl.timezone, len(hours.intervals), owl.greeting.startswith("Welcome")) == ("Asia/Shanghai", 6, True)
    assert list(owl.agents.values_list("user__username", "status")) == [("ben", "online")]
