"""The chat socket through imchat.asgi.application: replies, pushes, errors and limits (PROTOCOL.md 2, 4)."""

import json

import pytest
from channels.db import database_sync_to_async

from chat import services
from chat.models import Message
from tests.factories import open_socket, request, send_content, socket, synchronously, token_for

pytestmark = pytest.mark.django_db(transaction=True)

PONG = {"code": -1, "msg": "PONG", "result": None}


def chat_id_of(a, b) -> str:
    return f"{min(a.pk, b.pk)}_{max(a.pk, b.pk)}"


@database_sync_to_async
def stored_messages(chat_id: str) -> list[tuple[int, int, str]]:
    return list(Message.objects.filter(conversation__chat_id=chat_id).order_by("seq").values_list("pk", "seq", "msg"))


async def close_all(*communicators) -> None:
    for communicator in communicators:
        await communicator.disconnect()


class Droppable:
    """The server's end of sockets whose connection can be lost: from then on every send raises, as
    ASGI 2.4 lets a server do (uvicorn raises its ClientDisconnected, an OSError; daphne drops it)."""

    def __init__(self):
        self.lost = False

    def serving(self, application):
        async def served(scope, receive, send):
            async def send_unless_lost(message):
                if self.lost:
                    raise OSError("connection lost")
                await send(message)

            await application(scope, receive, send_unless_lost)

        return served


@synchronously
async def test_two_users_chat_each_gets_the_reply_or_the_200_push(alice, bob):
    # given both are connected
    alices, bobs = await open_socket(alice), await open_socket(bob)
    chat_id = chat_id_of(alice, bob)

    # when alice writes
    reply = await request(alices, "chat", "sendMsg", send_content(bob.pk, "hi bob"))

    # then the message was stored when the reply came, and bob got it pushed with code 200
    assert reply["code"] == 1 and reply["msg"] is None
    assert reply["result"]["chat_id"] == chat_id and reply["result"]["seq"] == 1
    assert await stored_messages(chat_id) == [(reply["result"]["msg_id"], 1, "hi bob")]
    pushed = await bobs.receive_json_from()
    assert pushed["code"] == 200 and pushed["msg"] is None
    assert pushed["result"]["msg"] == "hi bob"
    assert pushed["result"]["id"] == alice.pk
    assert pushed["result"]["msg_id"] == reply["result"]["msg_id"]
    assert pushed["result"]["avatar"].startswith("http")
    assert await alices.receive_nothing(timeout=0.1)  # the sending socket gets no push

    # and when bob answers, alice gets it
    answer = await request(bobs, "chat", "sendMsg", send_content(alice.pk, "hi alice"))
    pushed_back = await alices.receive_json_from()
    assert answer["result"]["seq"] == 2
    assert (pushed_back["code"], pushed_back["result"]["msg"], pushed_back["result"]["seq"]) == (200, "hi alice", 2)

    await close_all(alices, bobs)


@synchronously
async def test_the_senders_other_device_gets_307_and_the_sending_one_only_the_reply(alice, bob):
    # given alice on a phone and a laptop, bob on one device
    phone, laptop, bobs = await open_socket(alice), await open_socket(alice), await open_socket(bob)

    # when alice writes from her phone
    reply = await request(phone, "chat", "sendMsg", send_content(bob.pk, "from my phone"))

    # then
    own = await laptop.receive_json_from()
    theirs = await bobs.receive_json_from()
    assert reply["code"] == 1
    assert own["code"] == 307 and theirs["code"] == 200
    assert own["result"] == theirs["result"]
    assert own["result"]["msg_id"] == reply["result"]["msg_id"]
    assert await phone.receive_nothing(timeout=0.1)
    assert await laptop.receive_nothing(timeout=0.05)
    assert await bobs.receive_nothing(timeout=0.05)

    await close_all(phone, laptop, bobs)


@synchronously
async def test_every_device_of_the_receiver_gets_the_200_push(alice, bob):
    alices, bob_phone, bob_laptop = await open_socket(alice), await open_socket(bob), await open_socket(bob)

    reply = await request(alices, "chat", "sendMsg", send_content(bob.pk))

    for device in (bob_phone, bob_laptop):
        pushed = await device.receive_json_from()
        assert (pushed["code"], pushed["result"]["msg_id"]) == (200, reply["result"]["msg_id"])

    await close_all(alices, bob_phone, bob_laptop)


@synchronously
async def test_a_read_receipt_reaches_the_peer_and_the_readers_other_devices_only(alice, bob):
    # given bob has an unread message on two devices
    alices, bob_phone, bob_laptop = await open_socket(alice), await open_socket(bob), await open_socket(bob)
    await request(alices, "chat", "sendMsg", send_content(bob.pk))
    await bob_phone.receive_json_from()
    await bob_laptop.receive_json_from()
    chat_id = chat_id_of(alice, bob)

    # when bob reads it on his phone
    reply = await request(bob_phone, "chat", "setChatRead", {"chat_id": chat_id})

    # then
    receipt = {"code": 301, "msg": None, "result": {"chat_id": chat_id, "reader_uid": bob.pk, "seq": 1}}
    assert reply == {"code": 1, "msg": None, "result": {"chat_id": chat_id, "seq": 1}}
    assert await alices.receive_json_from() == receipt
    assert await bob_laptop.receive_json_from() == receipt
    assert await bob_phone.receive_nothing(timeout=0.1)

    await close_all(alices, bob_phone, bob_laptop)


@synchronously
async def test_typing_reaches_the_other_side_as_302(alice, bob):
    alices, bobs = await open_socket(alice), await open_socket(bob)
    await request(alices, "chat", "sendMsg", send_content(bob.pk))
    await bobs.receive_json_from()

    reply = await request(alices, "chat", "typing", {"chat_id": chat_id_of(alice, bob)})

    assert reply["code"] == 1
    assert await bobs.receive_json_from() == {
        "code": 302, "msg": None, "result": {"chat_id": chat_id_of(alice, bob), "uid": alice.pk}
    }
    assert await alices.receive_nothing(timeout=0.1)

    await close_all(alices, bobs)


@synchronously
async def test_typing_reaches_the_typists_other_sockets_but_not_the_typing_one(alice, bob):
    # given alice on her phone and her laptop, chatting with bob
    phone, laptop, bobs = await open_socket(alice), await open_socket(alice), await open_socket(bob)
    await request(phone, "chat", "sendMsg", send_content(bob.pk))
    await bobs.receive_json_from()
    await laptop.receive_json_from()  # the 307 of her own message

    # when she types on her phone
    reply = await request(phone, "chat", "typing", {"chat_id": chat_id_of(alice, bob)})

    # then her laptop and bob see it; the phone gets the reply only
    typing = {"code": 302, "msg": None, "result": {"chat_id": chat_id_of(alice, bob), "uid": alice.pk}}
    assert reply["code"] == 1
    assert await laptop.receive_json_from() == typing
    assert await bobs.receive_json_from() == typing
    assert await phone.receive_nothing(timeout=0.1)

    await close_all(phone, laptop, bobs)


@synchronously
async def test_the_friend_list_counts_friends_with_an_open_socket_as_online(alice, bob):
    # given alice and bob have chatted
    alices, bobs = await open_socket(alice), await open_socket(bob)
    await request(alices, "chat", "sendMsg", send_content(bob.pk))
    await bobs.receive_json_from()

    # when bob is connected, then when he is gone
    while_connected = await request(alices, "user", "friendList")
    await bobs.disconnect()
    after_leaving = await request(alices, "user", "friendList")

    # then
    assert while_connected["code"] == 100
    assert while_connected["result"]["friend"][0]["online"] == 1
    assert [f["id"] for f in while_connected["result"]["friend"][0]["list"]] == [bob.pk]
    assert after_leaving["result"]["friend"][0]["online"] == 0

    await alices.disconnect()


@synchronously
async def test_a_socket_lost_before_its_reply_is_sent_still_goes_offline(alice, bob):
    from imchat.asgi import application

    # given alice and bob have chatted, bob on a connection that can be lost
    connection = Droppable()
    alices, bobs = await open_socket(alice), socket(f"/?token={token_for(bob)}",
                                                    application=connection.serving(application))
    assert (await bobs.connect())[0]
    await request(alices, "chat", "sendMsg", send_content(bob.pk))
    await bobs.receive_json_from()

    # when bob's connection is lost while his heartbeat is in hand: the reply's send raises
    connection.lost = True
    await bobs.send_to(text_data="ping")
    await bobs.disconnect()

    # then his socket was closed as any other: he is offline for alice
    friends = await request(alices, "user", "friendList")
    assert friends["result"]["friend"][0]["online"] == 0

    await alices.disconnect()


@synchronously
async def test_socket_avatars_are_built_from_im_public_url_when_set(alice, bob, settings):
    settings.IM_PUBLIC_URL = "https://im.example.com"
    alices, bobs = await open_socket(alice), await open_socket(bob)

    mine = await request(alices, "user", "friendList")
    await request(alices, "chat", "sendMsg", send_content(bob.pk))
    pushed = await bobs.receive_json_from()

    assert mine["result"]["mine"]["avatar"] == "https://im.example.com/media/avatars/alice.png"
    assert pushed["result"]["avatar"] == "https://im.example.com/media/avatars/alice.png"
    await close_all(alices, bobs)


# --- One reply per request, in order, with req_id -----------------------------------------------


@synchronously
async def test_the_text_ping_heartbeat_gets_pong(alice):
    communicator = await open_socket(alice)

    await communicator.send_to(text_data="ping")

    assert await communicator.receive_json_from() == PONG
    await communicator.disconnect()


@pytest.mark.parametrize("text", ["[1,2]", '"hello"', "{}", '{"class": null, "action": "x"}', '{"class": ""}'])
@synchronously
async def test_json_that_is_no_request_gets_pong(alice, text):
    communicator = await open_socket(alice)

    await communicator.send_to(text_data=text)

    assert await communicator.receive_json_from() == PONG
    await communicator.disconnect()


@synchronously
async def test_req_id_is_echoed_in_replies_and_errors(alice, bob):
    communicator = await open_socket(alice)

    sent = await request(communicator, "chat", "sendMsg", send_content(bob.pk), req_id="r-1")
    unknown = await request(communicator, "chat", "dance", {}, req_id=2)
    no_action = await request(communicator, "chat", "", {}, req_id="r-3")
    bad_content = await request(communicator, "chat", "sendMsg", [1], req_id="r-4")

    assert (sent["code"], sent["req_id"]) == (1, "r-1")
    assert unknown == {"code": 0, "msg": "unknown action chat.dance", "result": None, "req_id": 2}
    assert no_action == {"code": 0, "msg": "missing action", "result": None, "req_id": "r-3"}
    assert bad_content == {"code": 0, "msg": "content: must be an object", "result": None, "req_id": "r-4"}
    await communicator.disconnect()


@synchronously
async def test_a_reply_without_req_id_has_no_req_id_key(alice):
    communicator = await open_socket(alice)

    reply = await request(communicator, "user", "recentChat", {})

    assert reply == {"code": 102, "msg": None, "result": {"rows": [], "unread_count": 0}}
    await communicator.disconnect()


@synchronously
async def test_every_request_gets_exactly_one_reply_in_request_order(alice, bob):
    # given several frames sent without waiting
    communicator = await open_socket(alice)
    frames = [
        json.dumps({"class": "chat", "action": "sendMsg", "content": send_content(bob.pk, "a"), "req_id": 1}),
        "ping",
        json.dumps({"class": "chat", "action": "nope", "req_id": 3}),
        json.dumps({"class": "chat", "action": "sendMsg", "content": send_content(bob.pk, "b"), "req_id": 4}),
        json.dumps({"class": "user", "action": "recentChat", "req_id": 5}),
    ]
    for text in frames:
        await communicator.send_to(text_data=text)

    # when
    replies = [await communicator.receive_json_from() for _ in frames]

    # then
    assert [(r["code"], r.get("req_id")) for r in replies] == [(1, 1), (-1, None), (0, 3), (1, 4), (102, 5)]
    assert replies[3]["result"]["seq"] == 2
    assert await communicator.receive_nothing(timeout=0.1)
    await communicator.disconnect()


@synchronously
async def test_a_binary_frame_is_refused_and_the_socket_stays_open(alice):
    communicator = await open_socket(alice)

    await communicator.send_to(bytes_data=b'{"class":"user","action":"recentChat"}')

    assert await communicator.receive_json_from() == {"code": 0, "msg": "text frames only", "result": None}
    assert (await request(communicator, "user", "recentChat"))["code"] == 102
    await communicator.disconnect()


# --- Faults and limits --------------------------------------------------------------------------


@synchronously
async def test_a_handler_crash_answers_500_and_the_socket_keeps_working(alice, bob, monkeypatch):
    # given opening the conversation fails unexpectedly (e.g. the database is down), in the batch
    # and again on the message's own path
    def broken(*args, **kwargs):
        raise RuntimeError("database unavailable")

    monkeypatch.setattr(services, "private_conversations_open", broken)
    communicator = await open_socket(alice)

    # when
    failed = await request(communicator, "chat", "sendMsg", send_content(bob.pk, client_msg_id="m-1"), req_id="x")

    # then a -500 reply, nothing stored, and the socket still answers
    assert failed["code"] == -500 and failed["result"] is None and failed["req_id"] == "x"
    assert isinstance(failed["msg"], str) and failed["msg"]
    assert await stored_messages(chat_id_of(alice, bob)) == []
    await communicator.send_to(text_data="ping")
    assert await communicator.receive_json_from() == PONG

    # and once the fault is gone, resending the same client_msg_id works
    monkeypatch.undo()
    resent = await request(communicator, "chat", "sendMsg", send_content(bob.pk, client_msg_id="m-1"))
    assert resent["code"] == 1 and resent["result"]["client_msg_id"] == "m-1"
    await communicator.disconnect()


@synchronously
async def test_a_frame_over_the_limit_gets_a_reply_then_close_4009(alice, settings):
    # given
    settings.IM_MAX_FRAME_BYTES = 256
    communicator = await open_socket(alice)

    # when
    await communicator.send_to(text_data=json.dumps(
        {"class": "chat", "action": "sendMsg", "content": send_content(alice.pk, "x" * 300)}
    ))

    # then
    assert await communicator.receive_json_from() == {"code": 0, "msg": "frame too large", "result": None}
    closed = await communicator.receive_output()
    assert closed == {"type": "websocket.close", "code": 4009}
    await communicator.disconnect()


@synchronously
async def test_a_frame_under_the_limit_is_processed(alice, bob, settings):
    settings.IM_MAX_FRAME_BYTES = 1024
    communicator = await open_socket(alice)

    reply = await request(communicator, "chat", "sendMsg", send_content(bob.pk, "x" * 300))

    assert reply["code"] == 1
    await communicator.disconnect()
