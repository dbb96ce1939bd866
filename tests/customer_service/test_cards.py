"""Product and order cards in customer service: a consumer asks about a product, an agent sends an
order; the slow path (first message, routing) and the batched one store and push the same."""

import time

import pytest

from chat.cards import card_sign
from chat.models import Message
from customer_service.models import ServiceSession
from imchat.errors import Code

KEY = "mall-card-key-" + "s7x" * 10
PRODUCT = {"kind": "product", "id": "42", "title": "Blue shirt", "price": "129.00",
           "image": "https://mall.example/i/42.jpg", "link": "https://mall.example/p/42"}
ORDER = {"kind": "order", "id": "2024-001", "status": "shipped", "total": "258.00",
         "items": [{"title": "Blue shirt", "quantity": 2, "price": "129.00"}], "link": "https://mall.example/o/2024-001"}


@pytest.fixture(autouse=True)
def mall_key(settings):
    settings.IM_MALL_API_KEY = KEY


def fresh(card) -> dict:
    return card_sign(dict(card), key=KEY, expires=int(time.time()) + 600)


@pytest.mark.django_db
def test_a_consumer_asks_about_a_product_and_the_agent_answers_with_the_order(
        shop, amy, consumer, make_agent, connect, say, answer):
    make_agent(shop, amy)
    connect(amy)

    # when the consumer's first message is a product card (routing: the slow path)
    first = say(consumer, shop, "", card=fresh(PRODUCT))

    # then amy gets it as a compat text message with the card beside it
    assert first.code == Code.OK, first.frame
    pushed = first.to(f"user.{amy.pk}", Code.MESSAGE)
    assert [(p["msg_type"], p["msg"], p["card"]) for p in pushed] == [
        (1, "[Product] Blue shirt ¥129.00 https://mall.example/p/42", PRODUCT)]

    # and a second card goes the batched way (session open, agent connected): the same shape
    second = say(consumer, shop, "", card=fresh(PRODUCT))
    assert second.to(f"user.{amy.pk}", Code.MESSAGE)[0]["card"] == PRODUCT

    # when amy answers with the customer's order card
    reply = answer(amy, shop, consumer, "", card=fresh(ORDER))

    # then the consumer sees it in the shop's name
    assert reply.code == Code.OK, reply.frame
    to_consumer = reply.to(f"user.{consumer.pk}", Code.MESSAGE)[0]
    assert to_consumer["card"] == ORDER and to_consumer["nickname"] == shop.name
    assert to_consumer["msg"] == "[Order 2024-001] shipped, total ¥258.00 https://mall.example/o/2024-001"
    assert list(Message.objects.order_by("seq").values_list("card", flat=True)) == [PRODUCT, PRODUCT, ORDER]


@pytest.mark.django_db
def test_a_tampered_card_to_a_shop_opens_no_session_and_stores_nothing(shop, amy, consumer, make_agent, connect, say):
    make_agent(shop, amy)
    connect(amy)
    card = fresh(PRODUCT)
    card["price"] = "0.01"

    refused = say(consumer, shop, "", card=card)

    assert refused.code == Code.BAD_REQUEST and refused.frame["msg"].startswith("card.sig: does not match")
    assert refused.sent == [] and not Message.objects.exists()
    assert not ServiceSession.objects.exists()


@pytest.mark.django_db
def test_cards_while_the_mall_key_is_unset_are_refused_with_a_clear_message(settings, shop, consumer, say):
    card = fresh(PRODUCT)
    settings.IM_MALL_API_KEY = ""

    refused = say(consumer, shop, "", card=card)

    assert refused.frame["msg"] == "card: cards are disabled on this server (IM_MALL_API_KEY is not set)"
    assert not Message.objects.exists()
