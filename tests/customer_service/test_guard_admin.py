"""The contact guard in the merchant's admin: a merchant sets it on their own shop, never on another's."""

import pytest
from django.test import Client
from django.urls import reverse

from accounts.services import user_create
from customer_service import services
from customer_service.models import Shop
from tests import factories
from tests.customer_service.test_admin import SHOP_HOURS_UNCHANGED

PASSWORD = factories.PASSWORD


def url(name: str, *args) -> str:
    return reverse(f"admin:{name}", args=args)


@pytest.fixture
def merchants(db):
    a = user_create(username="merchanta", nickname="Merchant A", password=PASSWORD, is_staff=True)
    b = user_create(username="merchantb", nickname="Merchant B", password=PASSWORD, is_staff=True)
    return services.shop_create(name="Alpha Teas", owner=a), services.shop_create(name="Bravo Bikes", owner=b)


@pytest.fixture
def client_a(merchants) -> Client:
    client = Client()
    assert client.post(url("login"), {"username": "merchanta", "password": PASSWORD}).status_code == 302
    return client


def form(shop: Shop, mode: str) -> dict:
    return {"name": shop.name, "logo": "", "strategy": shop.strategy, "offline_notice": shop.offline_notice,
            "contact_guard": mode, **SHOP_HOURS_UNCHANGED}


def test_a_merchant_sets_their_shops_contact_guard_in_the_admin(merchants, client_a):
    shop_a, _ = merchants

    page = client_a.get(url("customer_service_shop_change", shop_a.pk))
    response = client_a.post(url("customer_service_shop_change", shop_a.pk), form(shop_a, "mask"))

    assert 'name="contact_guard"' in page.content.decode()
    assert response.status_code == 302
    assert Shop.objects.get(pk=shop_a.pk).contact_guard == "mask"


def test_a_merchant_cannot_set_another_shops_contact_guard(merchants, client_a):
    _, shop_b = merchants

    response = client_a.post(url("customer_service_shop_change", shop_b.pk), form(shop_b, "off"))

    assert response.status_code == 302 and response["Location"] == url("index")
    assert Shop.objects.get(pk=shop_b.pk).contact_guard == "flag"
