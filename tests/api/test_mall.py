"""The mall's server-to-server API: users and shops in bulk, behind IM_MALL_API_KEY."""

import pytest
from rest_framework.test import APIClient

from accounts.models import User
from chat.models import Conversation
from customer_service.models import Shop
from tests import factories
from tests.customer_service.conftest import consumer_frame

pytestmark = pytest.mark.django_db
KEY = "mall-key-" + "x" * 32


@pytest.fixture(autouse=True)
def mall_key(settings):
    settings.IM_MALL_API_KEY = KEY


def mall(key: str | None = KEY) -> APIClient:
    client = APIClient()
    if key is not None:
        client.credentials(HTTP_X_IMCHAT_API_KEY=key)
    return client


def test_users_are_created_with_the_malls_ids_then_updated_idempotently():
    batch = {"users": [{"id": 7001, "nickname": "Lin", "avatar": "https://cdn.mall.example/lin.png"},
                       {"id": 7002, "nickname": "Wu"}]}

    first = mall().post("/api/v1/mall/users/", batch, format="json")
    again = mall().post("/api/v1/mall/users/", batch, format="json")
    changed = mall().post("/api/v1/mall/users/", {"users": [{"id": 7002, "avatar": "/media/wu.png"}]}, format="json")

    assert first.status_code == 200
    assert first.json()["result"] == {"created": [7001, 7002], "updated": [], "unchanged": []}
    assert again.json()["result"] == {"created": [], "updated": [], "unchanged": [7001, 7002]}
    assert changed.json()["result"] == {"created": [], "updated": [7002], "unchanged": []}
    wu = User.objects.get(pk=7002)
    assert (wu.username, wu.nickname, wu.avatar) == ("u7002", "Wu", "/media/wu.png")
    assert not wu.has_usable_password()
    # and the mall's own token for that id now works everywhere
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {factories.pyjwt_token(user_id=7002)}")
    assert client.get("/api/v1/me/").json()["result"]["nickname"] == "Wu"


def test_shops_are_created_and_updated_and_conversation_titles_follow(db):
    mall().post("/api/v1/mall/users/", {"users": [{"id": 8001, "nickname": "Owner"}, {"id": 8002, "nickname": "Cus"},
                                                  {"id": 8003, "nickname": "New owner"}]}, format="json")
    created = mall().post("/api/v1/mall/shops/", {"shops": [
        {"id": 501, "name": "Noodles", "logo": "https://cdn.mall.example/n.png", "owner_id": 8001}]}, format="json")
    assert created.json()["result"] == {"created": [501], "updated": [], "unchanged": []}
    customer = User.objects.get(pk=8002)
    shopper = APIClient()
    shopper.credentials(HTTP_AUTHORIZATION=f"Bearer {factories.token_for(customer)}")
    shopper.post("/api/v1/messages/", consumer_frame(501, "hi"), format="json")

    renamed = mall().post("/api/v1/mall/shops/", {"shops": [{"id": 501, "name": "Noodle Bar", "owner_id": 8003}]},
                          format="json")

    assert renamed.json()["result"] == {"created": [], "updated": [501], "unchanged": []}
    shop = Shop.objects.get(pk=501)
    assert (shop.name, shop.logo, shop.owner_id) == ("Noodle Bar", "https://cdn.mall.example/n.png", 8003)
    assert Conversation.objects.get(chat_id="501____8002").title == "Noodle Bar"
    same = mall().post("/api/v1/mall/shops/", {"shops": [{"id": 501, "name": "Noodle Bar"}]}, format="json")
    assert same.json()["result"]["unchanged"] == [501]


def test_a_new_shop_needs_a_known_owner_and_a_name(db):
    unknown = mall().post("/api/v1/mall/shops/", {"shops": [{"id": 502, "name": "X", "owner_id": 999}]},
                          format="json")
    assert unknown.status_code == 404 and "owner_id" in unknown.json()["msg"]
    factories.make_user(user_id=9001)
    nameless = mall().post("/api/v1/mall/shops/", {"shops": [{"id": 502, "owner_id": 9001}]}, format="json")
    assert nameless.status_code == 400 and nameless.json()["msg"] == "shops: shop 502: name: required for a new shop"
    assert not Shop.objects.exists()


def test_a_bad_row_is_named_and_nothing_of_the_batch_is_stored(db):
    response = mall().post("/api/v1/mall/users/", {"users": [{"id": 1}, {"id": 2, "nickname": "n" * 65}]},
                           format="json")

    assert response.status_code == 400
    assert response.json()["msg"].startswith("users[1].nickname:")
    assert not User.objects.exists()


@pytest.mark.parametrize("key, status, code", [(None, 401, -200), ("wrong", 401, -200), (KEY + "x", 401, -200)])
def test_the_mall_endpoints_refuse_a_missing_or_wrong_key(db, key, status, code):
    for path, body in (("/api/v1/mall/users/", {"users": [{"id": 1}]}),
                       ("/api/v1/mall/shops/", {"shops": [{"id": 1, "name": "x", "owner_id": 1}]})):
        response = mall(key).post(path, body, format="json")
        assert (response.status_code, response.json()["code"]) == (status, code)
    assert not User.objects.exists()


def test_a_users_token_is_no_mall_key(alice):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {factories.token_for(alice)}")

    assert client.post("/api/v1/mall/users/", {"users": [{"id": 5}]}, format="json").status_code == 401


def test_everything_is_refused_while_no_key_is_configured(settings, db):
    settings.IM_MALL_API_KEY = ""

    response = mall("").post("/api/v1/mall/users/", {"users": [{"id": 1}]}, format="json")
    with_any_key = mall("anything").post("/api/v1/mall/users/", {"users": [{"id": 1}]}, format="json")

    assert response.status_code == 403 and with_any_key.status_code == 403
    assert "IM_MALL_API_KEY" in response.json()["msg"]
    assert not User.objects.exists()


def test_ids_made_here_after_the_malls_never_collide_with_them(db):
    from customer_service.services import shop_create

    mall().post("/api/v1/mall/users/", {"users": [{"id": 1, "nickname": "One"}, {"id": 2, "nickname": "Two"}]},
                format="json")
    mall().post("/api/v1/mall/shops/", {"shops": [{"id": 1, "name": "First", "owner_id": 1}]}, format="json")

    local_user = factories.make_user(username="local")
    local_shop = shop_create(name="Local", owner=local_user)

    assert local_user.pk not in (1, 2) and local_shop.pk != 1
