"""Business hours on the pages (Django test client): the owner's dashboard, the consumer's strings."""

from datetime import UTC, datetime, time, timedelta

from django.test import Client
from django.urls import reverse

from customer_service import services
from customer_service.hours import Interval


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_dashboard_shows_each_own_shops_hours_with_a_link_to_edit_them(world):
    services.shop_hours_set(shop=world.shop_a, timezone_name="Europe/Berlin",
                            intervals=[Interval(0, time(9), time(18)), Interval(5, time(22), time(2))],
                            closed_days=[], greeting="Hello <b>friend</b>")

    page = client_for(world.owner_a).get(reverse("dashboard")).content.decode()

    assert "Business hours" in page
    assert "Mon 09:00-18:00, Sat 22:00-02:00 (Europe/Berlin)" in page
    assert "Hello &lt;b&gt;friend&lt;/b&gt;" in page
    assert reverse("admin:customer_service_shop_change", args=[world.shop_a.pk]) in page
    assert "Bravo Bikes" not in page
    other = client_for(world.owner_b).get(reverse("dashboard")).content.decode()
    assert "always open (no hours set)" in other and "Europe/Berlin" not in other


def test_the_chat_page_carries_the_closed_strings(world):
    page = client_for(world.consumer_a).get(reverse("chat")).content.decode()
    assert "The shop is closed now. It opens {when}." in page


def test_the_shop_directory_says_which_shops_are_closed_now(world):
    today = datetime.now(UTC).date()
    services.shop_hours_set(shop=world.shop_b, timezone_name="UTC",
                            intervals=[Interval(day, time(0), time(0)) for day in range(7)],
                            closed_days=[(today + timedelta(days=n), "") for n in (-1, 0, 1)])

    shops = client_for(world.consumer_a).get(reverse("shop-directory")).json()["shops"]

    assert [(shop["name"], shop["open_now"]) for shop in shops] == [("Alpha Teas", True), ("Bravo Bikes", False)]
