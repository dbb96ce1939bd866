"""Product and order cards signed by the mall (chat/cards.py): verification, and a card's message
over the socket (PROTOCOL-EXT.md, "Product and order cards")."""

import time

import orjson
import pytest

from chat import handlers
from chat.cards import MAX_ITEMS, card_from_link_value, card_link_value, card_read, card_sign, signature
from chat.models import Conversation, Message
from chat.protocol import Envelope
from imchat.errors import AppError, Code
from tests import factories
from tests.factories import open_socket, request, send_content, synchronously

KEY = "mall-card-key-" + "k3Y" * 10
NOW = 1_767_225_600  # 2026-01-01T00:00:00Z

PRODUCT = {"kind": "product", "id": "42", "title": "Blue shirt 蓝色衬衫", "price": "129.00",
           "image": "https://mall.example/i/42.jpg", "link": "https://mall.example/p/42"}
ORDER = {"kind": "order", "id": "2024-001", "status": "shipped", "total": "258.00",
         "items": [{"title": "Blue shirt", "quantity": 2, "price": "129.00"}],
         "link": "https://mall.example/o/2024-001"}


@pytest.fixture(autouse=True)
def mall_key(settings):
    settings.IM_MALL_API_KEY = KEY


def signed(card=PRODUCT, *, expires=NOW + 3600, key=KEY) -> dict:
    return card_sign(dict(card), key=key, expires=expires)


def refusal(raw, now=NOW) -> str:
    with pytest.raises(AppError) as raised:
        card_read(raw, now=now)
    assert raised.value.code == Code.BAD_REQUEST
    assert raised.value.msg.startswith("card")
    return raised.value.msg


# --- Verification -------------------------------------------------------------------------------


def test_a_card_the_mall_signed_is_read_with_its_fields_and_a_line_of_text():
    card = card_read(signed(), now=NOW)

    assert card.shown == PRODUCT  # no expires, no sig
    assert card.text == "[Product] Blue shirt 蓝色衬衫 ¥129.00 https://mall.example/p/42"
    assert orjson.loads(card.json) == PRODUCT
    order = card_read(signed(ORDER), now=NOW)
    assert order.text == "[Order 2024-001] shipped, total ¥258.00 https://mall.example/o/2024-001"


def test_the_signature_follows_the_documented_recipe_byte_for_byte():
    # The worked example of docs/PROTOCOL-EXT.md: key, card, expires -> this signature.
    import hashlib
    import hmac

    fields = {name: value for name, value in PRODUCT.items() if name != "kind"}
    message = ('product.1767229200.{"id":"42","image":"https://mall.example/i/42.jpg",'
               '"link":"https://mall.example/p/42","price":"129.00","title":"Blue shirt 蓝色衬衫"}').encode()
    expected = hmac.new(b"example-mall-key-do-not-use", message, hashlib.sha256).hexdigest()

    assert signature(key="example-mall-key-do-not-use", kind="product", expires=1767229200, fields=fields) == expected
    assert expected == "62e97617fb8cb5ffb01b91d50e923e8799298f5552bd5bf29ff4cf64532a15cd"  # as printed in the docs
    order = {name: value for name, value in ORDER.items() if name != "kind"}
    assert signature(key="example-mall-key-do-not-use", kind="order", expires=1767229200, fields=order) == (
        "ef610e47c966a3b44d0a850b0311ba31c9f02a4214ab95653cee4f617acefedf")


def test_a_changed_price_is_refused():
    card = signed()
    card["price"] = "1.00"
    assert refusal(card).startswith("card.sig: does not match")


def test_a_changed_title_is_refused():
    card = signed()
    card["title"] = "Blue shirt (free)"
    assert refusal(card).startswith("card.sig: does not match")


def test_a_changed_expiry_is_refused():
    card = signed()
    card["expires"] += 3600
    assert refusal(card).startswith("card.sig: does not match")


def test_a_card_signed_with_another_key_is_refused():
    assert refusal(signed(key="not-the-mall" * 4)).startswith("card.sig: does not match")


def test_an_expired_card_is_refused():
    assert "expired" in refusal(signed(expires=NOW - 1))
    assert "expired" in refusal(signed(expires=NOW))


def test_a_card_valid_for_more_than_seven_days_is_refused():
    assert refusal(signed(expires=NOW + 7 * 24 * 3600 + 1)) == "card.expires: at most 7 days ahead"
    assert card_read(signed(expires=NOW + 7 * 24 * 3600), now=NOW).shown == PRODUCT


def test_a_card_without_a_signature_or_expiry_is_refused():
    card = signed()
    assert refusal({k: v for k, v in card.items() if k != "sig"}).startswith("card.sig: required")
    assert refusal({**card, "sig": card["sig"].upper()}).startswith("card.sig: required")
    assert refusal({k: v for k, v in card.items() if k != "expires"}).startswith("card.expires: required")
    assert refusal({**card, "expires": str(card["expires"])}).startswith("card.expires: required")
    assert refusal({**card, "expires": True}).startswith("card.expires: required")


def test_an_unknown_kind_or_field_is_refused():
    assert refusal({**signed(), "kind": "coupon"}) == "card.kind: must be product or order"
    assert refusal({**signed(), "discount": "10%"}).startswith("card.discount: unknown field")
    assert refusal("a card").startswith("card: must be an object")


def test_too_many_items_are_refused_before_any_signature_is_computed():
    order = dict(ORDER, items=[{"title": f"item {n}", "quantity": 1, "price": "1.00"} for n in range(MAX_ITEMS + 1)])
    card = {**order, "expires": NOW + 60, "sig": "0" * 64}
    assert refusal(card) == f"card.items: must be a list of 1-{MAX_ITEMS} items"
    with pytest.raises(AppError):
        card_sign(order, key=KEY, expires=NOW + 60)


@pytest.mark.parametrize("link", ["javascript:alert(1)", "ftp://mall.example/p/42", "/p/42", "https://",
                                  "https://mall.example/p/42 x", "https://mall.example/" + "a" * 500])
def test_a_link_that_is_not_an_absolute_http_url_is_refused(link):
    with pytest.raises(AppError) as raised:
        card_sign(dict(PRODUCT, link=link), key=KEY, expires=NOW + 60)
    assert raised.value.msg.startswith("card.link: must be an absolute http(s) URL")


@pytest.mark.parametrize("field,value", [
    ("price", 129), ("price", 129.0), ("price", "129"), ("price", "129.5"), ("price", "-1.00"), ("price", "01.00"),
    ("title", ""), ("title", "   "), ("title", "x" * 201), ("title", "two\nlines"), ("title", "\u202eevil"),
    ("title", 42), ("id", 42), ("id", ""), ("id", "a b"), ("image", "data:image/png;base64,AAAA"),
])
def test_fields_of_the_wrong_type_or_size_are_refused(field, value):
    with pytest.raises(AppError) as raised:
        card_sign(dict(PRODUCT, **{field: value}), key=KEY, expires=NOW + 60)
    assert raised.value.msg.startswith(f"card.{field}: ")


def test_order_items_are_checked_one_by_one():
    for item, where in (({"title": "x", "quantity": 0, "price": "1.00"}, "quantity"),
                        ({"title": "x", "quantity": True, "price": "1.00"}, "quantity"),
                        ({"title": "x", "quantity": 1}, "price"),
                        ({"title": "x", "quantity": 1, "price": "1.00", "sku": "s"}, "sku")):
        with pytest.raises(AppError) as raised:
            card_sign(dict(ORDER, items=[item]), key=KEY, expires=NOW + 60)
        assert raised.value.msg.startswith(f"card.items[0].{where}: ")


def test_cards_are_refused_while_the_mall_key_is_unset(settings):
    card = signed()
    settings.IM_MALL_API_KEY = ""
    assert refusal(card) == "card: cards are disabled on this server (IM_MALL_API_KEY is not set)"


def test_a_page_link_carries_the_signed_card_as_base64url():
    card = signed()
    assert card_from_link_value(card_link_value(card)) == card
    with pytest.raises(AppError):
        card_from_link_value("not base64 at all!")
    with pytest.raises(AppError):
        card_from_link_value(card_link_value([1, 2]))


# --- A card's message ---------------------------------------------------------------------------


def run(user, content, channel=None) -> tuple[dict, list]:
    frame, pushes = handlers.run(factories.caller_of(user, channel_name=channel),
                                 Envelope(cls="chat", action="sendMsg", content=content))
    return frame, factories.decode_pushes(pushes)


def fresh(card=PRODUCT) -> dict:
    return card_sign(dict(card), key=KEY, expires=int(time.time()) + 600)


@pytest.mark.django_db(transaction=True)
def test_a_card_in_a_private_chat_is_a_text_message_with_the_card_as_an_extra_field(alice, bob):
    # when alice sends a card (a text and a msg of her own, which the server replaces)
    frame, pushes = run(alice, send_content(bob.pk, "ignored", card=fresh()))

    # then the reply says what was stored
    assert frame["code"] == 1, frame
    text = "[Product] Blue shirt 蓝色衬衫 ¥129.00 https://mall.example/p/42"
    assert frame["result"]["msg"] == text and frame["result"]["card"] == PRODUCT
    # bob's 200 is the compat shape (text, readable) plus the verified card, without its signature
    pushed = [p.result for p in pushes if p.code == Code.MESSAGE]
    assert len(pushed) == 1
    assert (pushed[0]["msg_type"], pushed[0]["msg"], pushed[0]["card"]) == (1, text, PRODUCT)
    assert list(pushed[0])[-1] == "card"  # after every compat and ext field
    message = Message.objects.get(pk=frame["result"]["msg_id"])
    assert (message.msg, message.msg_type, message.card) == (text, 1, PRODUCT)
    assert Conversation.objects.get(chat_id=message.conversation.chat_id).last_msg == text


@pytest.mark.django_db(transaction=True)
def test_a_refused_card_stores_nothing(alice, bob):
    card = fresh()
    card["price"] = "1.00"

    frame, pushes = run(alice, send_content(bob.pk, "hi", card=card))

    assert frame["code"] == 0 and frame["msg"].startswith("card.sig: does not match")
    assert pushes == [] and not Message.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_cards_are_refused_in_groups_and_as_images(alice, bob):
    frame, _ = run(alice, {"chat_type": 2, "to_uid": 1, "msg_type": 1, "msg": "", "card": fresh()})
    assert (frame["code"], frame["msg"]) == (0, "card: only in private and customer-service chats")
    frame, _ = run(alice, send_content(bob.pk, "x", msg_type=2, card=fresh()))
    assert (frame["code"], frame["msg"]) == (0, "msg_type: a card is sent as 1 (text)")
    assert not Message.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_messages_without_a_card_keep_their_exact_shape(alice, bob):
    frame, pushes = run(alice, send_content(bob.pk, "plain", card=None))

    assert set(frame["result"]) == {"msg_id", "chat_id", "seq", "createtime", "client_msg_id"}
    pushed = [p.result for p in pushes if p.code == Code.MESSAGE][0]
    assert "card" not in pushed
    record = handlers.run(factories.caller_of(bob), Envelope(cls="user", action="chatRecord",
                                                             content={"chat_id": pushed["chat_id"]}))[0]
    assert "card" not in record["result"]["rows"][0]


@pytest.mark.django_db(transaction=True)
def test_a_recalled_card_loses_its_card(alice, bob):
    frame, _ = run(alice, send_content(bob.pk, "", card=fresh()))
    recalled, _ = handlers.run(factories.caller_of(alice), Envelope(cls="chat", action="recall",
                                                                    content={"msg_id": frame["result"]["msg_id"]}))
    assert recalled["code"] == 1
    assert Message.objects.get(pk=frame["result"]["msg_id"]).card is None


@pytest.mark.django_db(transaction=True)
@synchronously
async def test_over_the_socket_the_card_reaches_the_peer_and_every_history(alice, bob):
    # given both connected, and a first message so the conversation exists (the batch path)
    alices, bobs = await open_socket(alice), await open_socket(bob)
    await request(alices, "chat", "sendMsg", send_content(bob.pk, "hello"))
    await bobs.receive_json_from()

    # when alice sends an order card with a client_msg_id, twice (a resend)
    content = send_content(bob.pk, "", card=fresh(ORDER), client_msg_id="card-1")
    reply = await request(alices, "chat", "sendMsg", content)
    again = await request(alices, "chat", "sendMsg", content)

    # then
    shown = dict(ORDER)
    assert reply["code"] == 1 and reply["result"]["card"] == shown
    assert again["result"] == reply["result"]  # idempotent, card and text included
    pushed = await bobs.receive_json_from()
    assert pushed["code"] == 200 and pushed["result"]["card"] == shown
    assert pushed["result"]["msg"].startswith("[Order 2024-001] shipped")
    assert await bobs.receive_nothing(timeout=0.1)
    record = await request(bobs, "user", "chatRecord", {"chat_id": reply["result"]["chat_id"]})
    assert record["result"]["rows"][0]["card"] == shown and "card" not in record["result"]["rows"][1]
    synced = await request(bobs, "chat", "sync", {"chats": {reply["result"]["chat_id"]: 0}})
    assert [m.get("card") for m in synced["result"]["messages"]] == [None, shown]
    recent = await request(bobs, "user", "recentChat", {"is_service": False})
    assert recent["result"]["rows"][0]["last_msg"] == pushed["result"]["msg"]

    # and a tampered card over the socket: code 0 naming card, nothing stored or pushed
    forged = fresh(ORDER)
    forged["total"] = "0.01"
    refused = await request(alices, "chat", "sendMsg", send_content(bob.pk, "", card=forged))
    assert refused["code"] == 0 and refused["msg"].startswith("card.sig")
    assert await bobs.receive_nothing(timeout=0.1)
    await alices.disconnect()
    await bobs.disconnect()
