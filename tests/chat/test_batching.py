"""Sends that arrive together: `handlers.run_batch` and the socket dispatcher that feeds it (SQLite).

On SQLite a batch is one transaction of `message_append`s; PostgreSQL stores it in one SQL
statement, and tests/e2e/test_batching_postgres.py holds that statement to the same promises.
"""

import json

import pytest
from channels.db import database_sync_to_async
from django.db import connection
from django.test.utils import CaptureQueriesContext

from chat import groups, handlers, services
from chat.models import Conversation, Message, Participant
from chat.protocol import Caller, Envelope, dumps
from customer_service import services as service_services
from tests.factories import (Sent, caller_of, decode_pushes, make_user, open_socket, send_content,
                             synchronously)

pytestmark = pytest.mark.django_db(transaction=True)

NO_SUCH_USER = 987654321


def sendmsg(user, content: dict, *, req_id=None, channel: str | None = None) -> tuple[Caller, Envelope]:
    """One chat.sendMsg request as the socket hands it to the batch."""
    return caller_of(user, channel_name=channel), Envelope(cls="chat", action="sendMsg", content=content,
                                                           req_id=req_id)


def run_batch(*requests: tuple[Caller, Envelope]) -> tuple[list[dict], list[Sent]]:
    """The reply frames as the client decodes them, and the decoded pushes."""
    frames, pushes = handlers.run_batch(list(requests))
    return [json.loads(dumps(frame)) for frame in frames], decode_pushes(pushes)


def conversation_of(a, b) -> Conversation:
    """The private conversation of two users, opened (no message yet) if it was not."""
    return services.conversation_open_private(user=a, peer=b)


def row_of(conversation: Conversation, user) -> Participant:
    return Participant.objects.get(conversation=conversation, user=user)


def messages_in(conversation: Conversation) -> list[tuple[int, int, str]]:
    """(seq, sender id, text) of every stored message, by seq."""
    return list(Message.objects.filter(conversation=conversation).order_by("seq")
                .values_list("seq", "sender_id", "msg"))


def group_content(group_id: int, msg: str) -> dict:
    return {"to_uid": group_id, "chat_type": 2, "msg_type": 1, "msg": msg, "chat_id": f"g{group_id}", "shop_id": 0,
            "role_type": 0}


def shop_content(shop_id: int, msg: str) -> dict:
    return {"to_uid": shop_id, "chat_type": 4, "msg_type": 1, "msg": msg, "chat_id": "", "shop_id": 0,
            "role_type": 0}


# --- handlers.run_batch ------------------------------------------------------------------------


def test_senders_sharing_a_conversation_get_consecutive_seqs_in_request_order(alice, bob, carol):
    # given two conversations with no message yet
    ab, ac = conversation_of(alice, bob), conversation_of(alice, carol)

    # when one batch interleaves both parties of one and a message of the other
    frames, _ = run_batch(
        sendmsg(alice, send_content(bob.pk, "a1"), req_id=1),
        sendmsg(bob, send_content(alice.pk, "b1"), req_id=2),
        sendmsg(alice, send_content(carol.pk, "c1"), req_id=3),
        sendmsg(alice, send_content(bob.pk, "a2", chat_id=ab.chat_id), req_id=4),
        sendmsg(bob, send_content(alice.pk, "b2"), req_id=5),
    )

    # then each request has its own reply, seqs follow the request order per conversation
    assert [(f["code"], f["req_id"], f["result"]["chat_id"], f["result"]["seq"]) for f in frames] == [
        (1, 1, ab.chat_id, 1), (1, 2, ab.chat_id, 2), (1, 3, ac.chat_id, 1), (1, 4, ab.chat_id, 3),
        (1, 5, ab.chat_id, 4),
    ]
    assert messages_in(ab) == [(1, alice.pk, "a1"), (2, bob.pk, "b1"), (3, alice.pk, "a2"), (4, bob.pk, "b2")]
    assert messages_in(ac) == [(1, alice.pk, "c1")]
    assert [f["result"]["msg_id"] for f in frames] == [
        Message.objects.get(conversation=conversation, seq=f["result"]["seq"]).pk
        for conversation, f in zip([ab, ab, ac, ab, ab], frames)
    ]
    # and the summary is the newest message, each sender has read up to the last seq they sent
    ab.refresh_from_db()
    ac.refresh_from_db()
    assert (ab.last_seq, ab.last_msg, ab.last_uid) == (4, "b2", bob.pk)
    assert (ac.last_seq, ac.last_msg, ac.last_uid) == (1, "c1", alice.pk)
    assert row_of(ab, alice).last_read_seq == 3
    assert row_of(ab, bob).last_read_seq == 4
    assert row_of(ac, alice).last_read_seq == 1
    assert row_of(ac, carol).last_read_seq == 0


def test_a_batch_brings_hidden_rows_back_but_leaves_rows_of_members_who_left(alice, bob, carol):
    # given bob and alice hid their chat; carol's row in hers is hidden and marked as left
    ab, ac = conversation_of(alice, bob), conversation_of(alice, carol)
    Participant.objects.filter(conversation=ab).update(hidden=True)
    Participant.objects.filter(conversation=ac, user=carol).update(hidden=True, left_seq=0, last_read_seq=0)

    # when
    frames, _ = run_batch(sendmsg(alice, send_content(bob.pk, "back?")), sendmsg(alice, send_content(carol.pk, "hi")))

    # then
    assert [f["code"] for f in frames] == [1, 1]
    assert row_of(ab, bob).hidden is False
    assert row_of(ab, alice).hidden is False
    left = row_of(ac, carol)
    assert (left.hidden, left.left_seq, left.last_read_seq) == (True, 0, 0)


def test_the_first_message_to_a_new_peer_opens_the_conversation_in_the_batch(alice, bob):
    # given alice has chatted with bob, never with dave
    ab = conversation_of(alice, bob)
    dave = make_user(username="dave")

    # when one batch holds messages to both
    frames, sent = run_batch(
        sendmsg(alice, send_content(bob.pk, "to bob")),
        sendmsg(alice, send_content(dave.pk, "hello dave")),
        sendmsg(bob, send_content(alice.pk, "to alice")),
    )

    # then all are stored, dave's in a new conversation with both parties' rows
    assert [f["code"] for f in frames] == [1, 1, 1]
    ad = Conversation.objects.get(chat_id=frames[1]["result"]["chat_id"])
    assert messages_in(ad) == [(1, alice.pk, "hello dave")]
    assert set(Participant.objects.filter(conversation=ad).values_list("user_id", flat=True)) == {alice.pk, dave.pk}
    assert messages_in(ab) == [(1, alice.pk, "to bob"), (2, bob.pk, "to alice")]
    assert [s.result["msg"] for s in sent if s.group == f"user.{dave.pk}" and s.code == 200] == ["hello dave"]


def test_first_messages_open_their_conversations_together_in_the_same_few_queries_however_many(alice):
    # given peers alice never wrote to, one of them deactivated, and both directions of one pair
    peers = [make_user() for _ in range(6)]
    gone = make_user(is_active=False)

    def firsts(count: int) -> list:
        return [sendmsg(alice, send_content(peer.pk, f"hi {peer.pk}")) for peer in peers[:count]]

    # when a batch opens one conversation, and another opens four (plus a message to the
    # deactivated user, and the first reply of a peer whose conversation the batch opens too)
    with CaptureQueriesContext(connection) as one:
        services.private_conversations_open({0: services.private_draft(
            caller=caller_of(alice), to_uid=peers[5].pk, chat_id=None, msg_type=1, msg="x", client_msg_id=None)})
    frames, _ = run_batch(*firsts(4), sendmsg(alice, send_content(gone.pk, "hello?")),
                          sendmsg(peers[0], send_content(alice.pk, "hi back")))
    with CaptureQueriesContext(connection) as four:
        services.private_conversations_open({index: services.private_draft(
            caller=caller_of(alice), to_uid=peer.pk, chat_id=None, msg_type=1, msg="x", client_msg_id=None)
            for index, peer in enumerate(peers[1:5])})

    # then every first message is stored in its new conversation with both parties' rows
    assert [f["code"] for f in frames] == [1, 1, 1, 1, -404, 1]
    for peer, frame in zip(peers[:4], frames):
        conversation = Conversation.objects.get(chat_id=frame["result"]["chat_id"])
        assert messages_in(conversation)[0] == (1, alice.pk, f"hi {peer.pk}")
        assert sorted(Participant.objects.filter(conversation=conversation).values_list("user_id", "peer_user_id")) \
            == sorted([(alice.pk, peer.pk), (peer.pk, alice.pk)])
    assert frames[5]["result"]["seq"] == 2
    assert not Conversation.objects.filter(participants__user=gone).exists()
    # and opening conversations costs the same queries for four as for one (opened again: no rows twice)
    assert len(four) == len(one)
    assert Participant.objects.filter(conversation__chat_id=frames[1]["result"]["chat_id"]).count() == 2


def test_an_unknown_peer_gets_404_and_the_rest_of_the_batch_is_stored(alice, bob):
    ab = conversation_of(alice, bob)

    frames, sent = run_batch(
        sendmsg(alice, send_content(bob.pk, "one"), req_id="r1"),
        sendmsg(alice, send_content(NO_SUCH_USER, "nobody"), req_id="r2"),
        sendmsg(bob, send_content(alice.pk, "two"), req_id="r3"),
    )

    assert frames[1] == {"code": -404, "msg": "to_uid: no such user", "result": None, "req_id": "r2"}
    assert [(frames[0]["code"], frames[0]["result"]["seq"]), (frames[2]["code"], frames[2]["result"]["seq"])] == [
        (1, 1), (1, 2)]
    assert messages_in(ab) == [(1, alice.pk, "one"), (2, bob.pk, "two")]
    assert not Conversation.objects.filter(chat_id__contains=str(NO_SUCH_USER)).exists()
    assert not [s for s in sent if s.group == f"user.{NO_SUCH_USER}"]


def test_bad_input_gets_its_error_frame_and_the_rest_of_the_batch_is_stored(alice, bob, carol):
    ab = conversation_of(alice, bob)
    bc = conversation_of(bob, carol)
    no_msg = send_content(bob.pk)
    del no_msg["msg"]

    frames, _ = run_batch(
        sendmsg(alice, no_msg, req_id="missing"),
        sendmsg(alice, send_content(bob.pk, "kept 1"), req_id="ok-1"),
        sendmsg(alice, send_content(alice.pk, "to myself"), req_id="self"),
        sendmsg(alice, send_content(None, "not mine", chat_id=bc.chat_id), req_id="foreign"),
        sendmsg(alice, send_content(bob.pk, "x", msg_type=9), req_id="type"),
        sendmsg(bob, send_content(alice.pk, "kept 2"), req_id="ok-2"),
    )

    assert frames[0] == {"code": 0, "msg": "msg: required", "result": None, "req_id": "missing"}
    assert frames[2] == {"code": 0, "msg": "to_uid: cannot message yourself", "result": None, "req_id": "self"}
    assert frames[3] == {"code": -403, "msg": "not a participant of this chat", "result": None, "req_id": "foreign"}
    assert frames[4] == {"code": 0, "msg": "msg_type: must be 1 (text) or 2 (image)", "result": None,
                         "req_id": "type"}
    assert [(f["code"], f["req_id"], f["result"]["seq"]) for f in (frames[1], frames[5])] == [
        (1, "ok-1", 1), (1, "ok-2", 2)]
    assert messages_in(ab) == [(1, alice.pk, "kept 1"), (2, bob.pk, "kept 2")]
    assert messages_in(bc) == []


def test_group_and_customer_service_messages_in_a_batch_are_stored_one_by_one(alice, bob, carol):
    # given a group of alice, bob and carol, and a shop with no agent online
    conversation_of(alice, bob)
    group = groups.group_create(caller=caller_of(alice), name="Team", uids=[bob.pk, carol.pk])
    shop = service_services.shop_create(name="Tea House", owner=make_user(username="merchant"))

    # when one batch mixes every chat type
    frames, sent = run_batch(
        sendmsg(alice, send_content(bob.pk, "private")),
        sendmsg(bob, group_content(group.pk, "to the team"), channel="bob.phone"),
        sendmsg(carol, shop_content(shop.pk, "is the shop open?")),
        sendmsg(carol, {**send_content(alice.pk, "a notice"), "chat_type": 3}, req_id="sys"),
    )

    # then
    assert [f["code"] for f in frames[:3]] == [1, 1, 1], frames
    assert frames[3] == {"code": -403, "msg": "system notices cannot be sent by users", "result": None,
                         "req_id": "sys"}
    team = Conversation.objects.get(chat_id=f"g{group.pk}")
    assert messages_in(team) == [(1, bob.pk, "to the team")]
    assert frames[1]["result"] | {"createtime": 0} == {"msg_id": Message.objects.get(conversation=team).pk,
                                                       "chat_id": team.chat_id, "seq": 1, "createtime": 0,
                                                       "client_msg_id": None}
    service = Conversation.objects.get(chat_id=frames[2]["result"]["chat_id"])
    assert service.chat_id == f"{shop.pk}____{carol.pk}"
    assert messages_in(service)[0] == (1, carol.pk, "is the shop open?")
    to_team = [s for s in sent if s.group == f"chatgroup.{group.pk}"]
    assert [(s.code, s.result["msg"], s.exclude) for s in to_team] == [(200, "to the team", "bob.phone")]


def test_a_resent_client_msg_id_answers_with_the_stored_message_and_takes_no_seq(alice, bob):
    # given alice's message c-1 was stored
    ab = conversation_of(alice, bob)
    (first,), _ = run_batch(sendmsg(alice, send_content(bob.pk, "first", client_msg_id="c-1")))
    assert first["code"] == 1

    # when she resends it in a batch with new messages
    frames, sent = run_batch(
        sendmsg(alice, send_content(bob.pk, "second", client_msg_id="c-2"), req_id=1),
        sendmsg(alice, send_content(bob.pk, "first", client_msg_id="c-1"), req_id=2),
        sendmsg(bob, send_content(alice.pk, "reply", client_msg_id="c-1"), req_id=3),  # bob's own c-1
        sendmsg(alice, send_content(bob.pk, "third"), req_id=4),
    )

    # then the resend answers with the stored message; the others are stored once, gap-free
    assert frames[1] == {"code": 1, "msg": None, "result": first["result"], "req_id": 2}
    assert [(f["code"], f["result"]["seq"]) for f in (frames[0], frames[2], frames[3])] == [(1, 2), (1, 3), (1, 4)]
    assert messages_in(ab) == [(1, alice.pk, "first"), (2, alice.pk, "second"), (3, bob.pk, "reply"),
                               (4, alice.pk, "third")]
    ab.refresh_from_db()
    assert (ab.last_seq, ab.last_msg) == (4, "third")
    # and nothing is pushed again for the resend
    assert sorted(s.result["msg"] for s in sent if s.code == 200) == ["reply", "second", "third"]


def test_the_same_new_client_msg_id_twice_in_one_batch_is_stored_once(alice, bob):
    ab = conversation_of(alice, bob)

    frames, sent = run_batch(
        sendmsg(alice, send_content(bob.pk, "tap", client_msg_id="double")),
        sendmsg(bob, send_content(alice.pk, "between")),
        sendmsg(alice, send_content(bob.pk, "tap", client_msg_id="double")),
    )

    assert [f["code"] for f in frames] == [1, 1, 1]
    assert frames[0]["result"] == frames[2]["result"]
    assert messages_in(ab) == [(1, alice.pk, "tap"), (2, bob.pk, "between")]
    assert [s.result["msg"] for s in sent if s.group == f"user.{bob.pk}" and s.code == 200] == ["tap"]


def test_a_batch_pushes_200_to_the_peer_and_307_to_the_senders_other_sockets(alice, bob):
    conversation_of(alice, bob)

    frames, sent = run_batch(
        sendmsg(alice, send_content(bob.pk, "hi bob", client_msg_id="a-1"), channel="alice.phone"),
        sendmsg(bob, send_content(alice.pk, "hi alice"), channel="bob.laptop"),
    )

    alices, bobs = frames[0]["result"], frames[1]["result"]
    assert [(s.group, s.code, s.exclude, s.result["msg_id"]) for s in sent] == [
        (f"user.{bob.pk}", 200, "alice.phone", alices["msg_id"]),  # one push each, skipping the sending socket
        (f"user.{alice.pk}", 307, "alice.phone", alices["msg_id"]),
        (f"user.{alice.pk}", 200, "bob.laptop", bobs["msg_id"]),
        (f"user.{bob.pk}", 307, "bob.laptop", bobs["msg_id"]),
    ]
    pushed = sent[0].result
    assert {key: pushed[key] for key in ("id", "from_uid", "to_uid", "chat_id", "chat_type", "msg_type", "msg",
                                         "seq", "client_msg_id", "createtime", "nickname")} == {
        "id": alice.pk, "from_uid": alice.pk, "to_uid": bob.pk, "chat_id": alices["chat_id"], "chat_type": 1,
        "msg_type": 1, "msg": "hi bob", "seq": 1, "client_msg_id": "a-1", "createtime": alices["createtime"],
        "nickname": "Alice",
    }
    assert pushed["avatar"] == "http://testserver/media/avatars/alice.png"
    assert sent[1].result == pushed
    assert (sent[2].result["id"], sent[2].result["seq"], sent[2].result["to_uid"]) == (bob.pk, 2, alice.pk)


# --- chat.dispatch: sockets sending at once -----------------------------------------------------

MESSAGES_PER_SOCKET = 8


@database_sync_to_async
def stored_seqs(chat_id: str) -> list[int]:
    return list(Message.objects.filter(conversation__chat_id=chat_id).order_by("seq").values_list("seq", flat=True))


async def replies_then_pushes(communicator, count: int) -> tuple[list[dict], list[dict]]:
    """Read until `count` replies came; the pushes that came meanwhile come back too."""
    replies, pushes = [], []
    while len(replies) < count:
        frame = await communicator.receive_json_from(timeout=5)
        (pushes if frame["code"] in (200, 307) else replies).append(frame)
    return replies, pushes


@synchronously
async def test_sockets_sending_at_once_are_all_acked_with_gap_free_seqs_and_each_push_arrives_once(
        alice, bob, carol, monkeypatch):
    # given (run_batch is watched, not replaced: the test proves requests were stored together)
    dave = await database_sync_to_async(make_user)(username="dave")
    batch_sizes = []
    real_run_batch = handlers.run_batch

    def watched_run_batch(requests):
        batch_sizes.append(len(requests))
        return real_run_batch(requests)

    monkeypatch.setattr(handlers, "run_batch", watched_run_batch)
    phone, laptop, bobs = await open_socket(alice), await open_socket(alice), await open_socket(bob)
    carols, daves = await open_socket(carol), await open_socket(dave)
    senders = [(phone, alice, bob), (laptop, alice, bob), (bobs, bob, alice), (carols, carol, dave),
               (daves, dave, carol)]

    # when every socket sends all its messages without waiting for a reply
    for number in range(MESSAGES_PER_SOCKET):
        for index, (communicator, _, peer) in enumerate(senders):
            await communicator.send_json_to({"class": "chat", "action": "sendMsg", "req_id": number,
                                             "content": send_content(peer.pk, f"s{index}#{number}")})
    received = [await replies_then_pushes(communicator, MESSAGES_PER_SOCKET) for communicator, *_ in senders]

    # then every request is acked, in request order, with seqs 1..N per conversation
    sender_of, seqs = {}, {}
    for index, ((communicator, user, _), (replies, _)) in enumerate(zip(senders, received)):
        assert [(r["code"], r["req_id"]) for r in replies] == [(1, n) for n in range(MESSAGES_PER_SOCKET)], replies
        socket_seqs = [r["result"]["seq"] for r in replies]
        assert socket_seqs == sorted(socket_seqs)
        for r in replies:
            sender_of[r["result"]["msg_id"]] = (index, user.pk)
            seqs.setdefault(r["result"]["chat_id"], []).append(r["result"]["seq"])
    assert {chat_id: sorted(found) for chat_id, found in seqs.items()} == {
        chat_id: list(range(1, len(found) + 1)) for chat_id, found in seqs.items()}
    for chat_id, found in seqs.items():
        assert await stored_seqs(chat_id) == sorted(found)
    assert sorted(len(found) for found in seqs.values()) == [2 * MESSAGES_PER_SOCKET, 3 * MESSAGES_PER_SOCKET]
    assert max(batch_sizes) > 1, batch_sizes

    # and every socket gets each message meant for it exactly once: 200 from the peer, 307 from
    # its own user's other socket, nothing for what it sent itself
    for index, ((communicator, user, peer), (_, pushes)) in enumerate(zip(senders, received)):
        expected = {msg_id: (200 if uid == peer.pk else 307) for msg_id, (by, uid) in sender_of.items()
                    if by != index and uid in (user.pk, peer.pk)}
        while len(pushes) < len(expected):
            pushes.append(await communicator.receive_json_from(timeout=5))
        assert await communicator.receive_nothing(timeout=0.2)
        got = {push["result"]["msg_id"]: push["code"] for push in pushes}
        assert len(got) == len(pushes), f"socket {index}: a message was pushed twice"
        assert got == expected, f"socket {index}"
    for communicator, *_ in senders:
        await communicator.disconnect()
