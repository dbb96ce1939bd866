"""Cards over REST: sent through /api/v1/messages/ and a conversation's messages, listed back, in the schema."""

import time

import pytest

from chat.cards import card_sign
from chat.models import Message
from tests import factories

pytestmark = pytest.mark.django_db

KEY = "mall-card-key-" + "r3s" * 10
PRODUCT = {"kind": "product", "id": "42", "title": "Blue shirt", "price": "129.00",
           "image": "https://mall.example/i/42.jpg", "link": "https://mall.example/p/42"}


@pytest.fixture(autouse=True)
def mall_key(settings):
    settings.IM_MALL_API_KEY = KEY


def fresh() -> dict:
    return card_sign(dict(PRODUCT), key=KEY, expires=int(time.time()) + 600)


def test_a_card_sent_over_rest_is_stored_and_listed_with_its_card(alice, bob, api):
    content = factories.send_content(bob.pk, "", card=fresh())

    sent = api(alice).post("/api/v1/messages/", content, format="json")

    assert sent.status_code == 201, sent.content
    result = sent.json()["result"]
    assert result["card"] == PRODUCT and result["msg"].startswith("[Product] Blue shirt ¥129.00")
    chat_id = result["chat_id"]
    again = api(alice).post(f"/api/v1/conversations/{chat_id}/messages/", {"msg_type": 1, "card": fresh()},
                            format="json")
    assert again.status_code == 201, again.content
    listed = api(bob).get(f"/api/v1/conversations/{chat_id}/messages/").json()["result"]["messages"]
    assert [m["card"] for m in listed] == [PRODUCT, PRODUCT]
    assert all(m["msg_type"] == 1 for m in listed)


def test_a_tampered_card_over_rest_is_refused_naming_the_card(alice, bob, api):
    card = fresh()
    card["title"] = "Gold shirt"

    refused = api(alice).post("/api/v1/messages/", factories.send_content(bob.pk, "", card=card), format="json")

    body = refused.json()
    assert refused.status_code == 400 and body["code"] == 0 and body["msg"].startswith("card.sig"), body
    assert not Message.objects.exists()


def test_the_schema_names_the_card_shapes(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    components = schema["components"]["schemas"]

    assert {"CardOut", "SignedCardInRequest", "CardItemOut"} <= set(components)
    assert set(components["SignedCardInRequest"]["properties"]) >= {"kind", "expires", "sig", "items", "link"}
    assert "card" in components["MessageOut"]["properties"]
