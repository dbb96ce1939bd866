"""Chat writes and reads against the database, and exactly what they push (PROTOCOL.md sections 4, 7)."""

import json

import pytest
from django.db import transaction
from django.test import RequestFactory

from chat import handlers, realtime, selectors, services
from chat.models import Conversation, Message, Participant
from chat.protocol import Envelope, dumps
from customer_service.models import Shop
from imchat.links import base_url_from_request
from tests.factories import BASE_URL, caller_of, decode_pushes, make_user, send_content

pytestmark = pytest.mark.django_db

RECENT_ROW_TYPES = {
    "id": int,
    "uid": int,
    "chat_id": str,
    "shop_id": int,
    "friend_uid": int,
    "friend_name": str,
    "friend_avatar": str,
    "last_msg": str,
    "last_uid": int,
    "last_time": int,
    "chat_type": int,
    "msg_type": int,
    "unread_count": int,
}
PUSHED_MESSAGE_KEYS = ["nickname", "avatar", "id", "chat_id", "chat_type", "msg_type", "msg", "createtime",
                       "msg_id", "seq", "from_uid", "to_uid", "client_msg_id"]


def send(sender, receiver, msg="hello", *, channel_name=None, **options):
    return services.private_message_send(
        caller=caller_of(sender, channel_name=channel_name),
        to_uid=receiver.pk,
        chat_id=options.get("chat_id"),
        msg_type=options.get("msg_type", 1),
        msg=msg,
        client_msg_id=options.get("client_msg_id"),
    )


def run(user, cls, action, content=None, *, channel_name=None, req_id=None, base_url=BASE_URL):
    """One request through the handler table, as the consumer runs it; the frame as the client decodes it."""
    caller = caller_of(user, channel_name=channel_name, base_url=base_url)
    frame, pushes = handlers.run(caller, Envelope(cls=cls, action=action, content=content or {}, req_id=req_id))
    return json.loads(dumps(frame)), decode_pushes(pushes)


def recent(user, **content):
    frame, _ = run(user, "user", "recentChat", content)
    assert frame["code"] == 102, frame
    return frame["result"]


def row_of(user, chat_id):
    rows = [row for row in recent(user)["rows"] if row["chat_id"] == chat_id]
    return rows[0] if rows else None


def chat_id_of(a, b) -> str:
    return f"{min(a.pk, b.pk)}_{max(a.pk, b.pk)}"


def assert_json_int(value) -> None:
    assert isinstance(value, int) and not isinstance(value, bool), value


# --- Sending ------------------------------------------------------------------------------------


def test_a_private_message_is_stored_before_the_call_returns_with_seq_from_one(alice, bob):
    # when alice sends three messages and bob answers
    stored = [send(alice, bob, f"m{n}") for n in (1, 2, 3)]
    answer = send(bob, alice, "m4")

    # then every one is stored, in one conversation, seq 1..4
    chat_id = chat_id_of(alice, bob)
    assert [s.seq for s in stored + [answer]] == [1, 2, 3, 4]
    assert {s.chat_id for s in stored + [answer]} == {chat_id}
    rows = list(Message.objects.filter(conversation__chat_id=chat_id).order_by("seq")
                .values_list("pk", "seq", "msg", "sender_id", "to_uid", "chat_type", "msg_type"))
    assert rows == [
        (stored[0].msg_id, 1, "m1", alice.pk, bob.pk, 1, 1),
        (stored[1].msg_id, 2, "m2", alice.pk, bob.pk, 1, 1),
        (stored[2].msg_id, 3, "m3", alice.pk, bob.pk, 1, 1),
        (answer.msg_id, 4, "m4", bob.pk, alice.pk, 1, 1),
    ]
    assert Conversation.objects.get(chat_id=chat_id).last_seq == 4


def test_the_reply_carries_the_stored_identity(alice, bob):
    stored = send(alice, bob, "hi", client_msg_id="c-1")

    message = Message.objects.get(pk=stored.msg_id)
    assert stored.as_reply() == {
        "msg_id": message.pk,
        "chat_id": chat_id_of(alice, bob),
        "seq": 1,
        "createtime": int(message.created_at.timestamp()),
        "client_msg_id": "c-1",
    }


def test_the_receiver_gets_200_and_the_senders_other_sockets_get_307(alice, bob, captured_pushes):
    # when
    with captured_pushes() as sent:
        stored = send(alice, bob, "hello bob", channel_name="alice-socket-1")

    # then one push to two groups: 200 to bob, 307 to alice's sockets except the sending one
    assert [(s.group, s.code, s.exclude) for s in sent] == [
        (realtime.user_group(bob.pk), 200, "alice-socket-1"),
        (realtime.user_group(alice.pk), 307, "alice-socket-1"),
    ]
    to_bob, to_alice = sent
    assert to_bob.msg is None and to_bob.result == to_alice.result
    assert list(to_bob.result) == PUSHED_MESSAGE_KEYS
    assert to_bob.result == {
        "nickname": "Alice",
        "avatar": f"{BASE_URL}/media/avatars/alice.png",
        "id": alice.pk,
        "chat_id": chat_id_of(alice, bob),
        "chat_type": 1,
        "msg_type": 1,
        "msg": "hello bob",
        "createtime": stored.createtime,
        "msg_id": stored.msg_id,
        "seq": 1,
        "from_uid": alice.pk,
        "to_uid": bob.pk,
        "client_msg_id": None,
    }


def test_every_number_in_a_pushed_message_is_a_json_number(alice, bob, captured_pushes):
    with captured_pushes() as sent:
        send(alice, bob, "typed")

    result = sent[0].result
    for name in ("id", "chat_type", "msg_type", "createtime", "msg_id", "seq", "from_uid", "to_uid"):
        assert_json_int(result[name])
    assert isinstance(result["chat_id"], str)


def test_a_message_sent_over_http_reaches_every_socket_of_the_sender_with_307(alice, bob, captured_pushes):
    with captured_pushes() as sent:
        send(alice, bob, channel_name=None)

    assert [(s.group, s.code, s.exclude) for s in sent] == [
        (realtime.user_group(bob.pk), 200, None),
        (realtime.user_group(alice.pk), 307, None),
    ]


def test_unread_is_derived_the_receiver_counts_up_and_the_sender_stays_at_zero(alice, bob):
    # given
    send(alice, bob, "one")
    send(alice, bob, "two")

    # when
    bobs, alices = recent(bob), recent(alice)

    # then
    assert bobs["rows"][0]["unread_count"] == 2 and bobs["unread_count"] == 2
    assert alices["rows"][0]["unread_count"] == 0 and alices["unread_count"] == 0


def test_replying_marks_the_earlier_messages_read(alice, bob):
    # given
    send(alice, bob, "one")
    send(alice, bob, "two")

    # when
    send(bob, alice, "three")

    # then
    assert row_of(bob, chat_id_of(alice, bob))["unread_count"] == 0
    assert row_of(alice, chat_id_of(alice, bob))["unread_count"] == 1
    assert Participant.objects.get(user=bob).last_read_seq == 3


def test_sending_to_yourself_is_a_bad_request(alice):
    frame, pushes = run(alice, "chat", "sendMsg", send_content(alice.pk))

    assert (frame["code"], frame["msg"]) == (0, "to_uid: cannot message yourself")
    assert pushes == [] and not Message.objects.exists()


def test_sending_to_a_user_that_does_not_exist_is_not_found(alice):
    frame, _ = run(alice, "chat", "sendMsg", send_content(987654))

    assert frame["code"] == -404
    assert not Message.objects.exists() and not Conversation.objects.exists()


def test_sending_to_an_inactive_user_is_not_found(alice):
    gone = make_user(is_active=False)

    frame, _ = run(alice, "chat", "sendMsg", send_content(gone.pk))

    assert frame["code"] == -404


def test_sending_into_a_chat_id_that_is_not_yours_is_forbidden(alice, bob, carol):
    frame, _ = run(alice, "chat", "sendMsg", send_content(None, chat_id=chat_id_of(bob, carol)))

    assert frame["code"] == -403
    assert not Message.objects.exists()


def test_a_chat_id_that_does_not_match_to_uid_is_a_bad_request(alice, bob, carol):
    frame, _ = run(alice, "chat", "sendMsg", send_content(carol.pk, chat_id=chat_id_of(alice, bob)))

    assert (frame["code"], frame["msg"]) == (0, "chat_id: does not match to_uid")


def test_the_chat_id_alone_names_the_receiver(alice, bob):
    frame, _ = run(alice, "chat", "sendMsg", send_content(None, chat_id=chat_id_of(alice, bob)))

    assert frame["code"] == 1 and frame["result"]["chat_id"] == chat_id_of(alice, bob)
    assert Message.objects.get().to_uid == bob.pk


def test_an_unsorted_chat_id_from_the_client_is_answered_with_the_canonical_one(alice, bob):
    unsorted = f"{max(alice.pk, bob.pk)}_{min(alice.pk, bob.pk)}"

    frame, _ = run(alice, "chat", "sendMsg", send_content(bob.pk, chat_id=unsorted))

    assert frame["code"] == 1 and frame["result"]["chat_id"] == chat_id_of(alice, bob)


@pytest.mark.parametrize("chat_id", ["", None])
def test_an_empty_or_null_chat_id_is_derived_from_to_uid(alice, bob, chat_id):
    frame, _ = run(alice, "chat", "sendMsg", send_content(bob.pk, chat_id=chat_id))

    assert frame["code"] == 1 and frame["result"]["chat_id"] == chat_id_of(alice, bob)


def test_what_the_compat_client_sends_numeric_strings_included_is_accepted(alice, bob):
    content = {"to_uid": str(bob.pk), "chat_type": "1", "msg_type": "1", "msg": "hi", "chat_id": "",
               "shop_id": 0, "role_type": 0}

    frame, _ = run(alice, "chat", "sendMsg", content)

    assert frame["code"] == 1
    assert frame["result"]["client_msg_id"] is None
    for name in ("msg_id", "seq", "createtime"):
        assert_json_int(frame["result"][name])


@pytest.mark.parametrize(
    "change, msg",
    [
        ({"chat_type": 0}, "chat_type: must be 1, 2, 3 or 4"),
        ({"chat_type": None}, "chat_type: required"),
        ({"msg_type": 0}, "msg_type: must be 1 (text) or 2 (image)"),
        ({"msg": ""}, "msg: required"),
        ({"to_uid": None}, "to_uid: required"),
        ({"client_msg_id": "x" * 65}, "client_msg_id: at most 64 characters"),
    ],
)
def test_invalid_send_content_is_a_bad_request_naming_the_field(alice, bob, change, msg):
    frame, _ = run(alice, "chat", "sendMsg", {**send_content(bob.pk), **change})

    assert (frame["code"], frame["msg"], frame["result"]) == (0, msg, None)


def test_a_system_notice_cannot_be_sent_by_a_user(alice, bob):
    frame, _ = run(alice, "chat", "sendMsg", send_content(bob.pk, chat_type=3))

    assert frame["code"] == -403


def test_a_message_longer_than_im_max_msg_chars_is_refused(alice, bob, settings):
    settings.IM_MAX_MSG_CHARS = 10

    too_long, _ = run(alice, "chat", "sendMsg", send_content(bob.pk, "x" * 11))
    just_right, _ = run(alice, "chat", "sendMsg", send_content(bob.pk, "x" * 10))

    assert (too_long["code"], too_long["msg"]) == (0, "msg: at most 10 characters")
    assert just_right["code"] == 1
    assert Message.objects.count() == 1


@pytest.mark.parametrize("url", ["/media/cat.png", "cat.png", "ftp://example.com/cat.png", "javascript:alert(1)"])
def test_an_image_message_needs_an_absolute_http_url(alice, bob, url):
    frame, _ = run(alice, "chat", "sendMsg", send_content(bob.pk, url, msg_type=2))

    assert frame["code"] == 0 and frame["msg"].startswith("msg: ")


@pytest.mark.parametrize("url", ["https://cdn.example.com/cat.png", "http://im.example.com/media/cat.png"])
def test_an_image_message_with_an_http_url_is_sent(alice, bob, url):
    frame, _ = run(alice, "chat", "sendMsg", send_content(bob.pk, url, msg_type=2))

    assert frame["code"] == 1
    assert Message.objects.get().msg_type == 2


# --- Idempotent resend and rollback (real commits: the consumer's path) -------------------------


@pytest.mark.django_db(transaction=True)
def test_resending_the_same_client_msg_id_stores_and_pushes_nothing_new(alice, bob):
    # given a message sent once
    content = send_content(bob.pk, "once", client_msg_id="phone-42")
    first, first_pushes = run(alice, "chat", "sendMsg", content, channel_name="alice-1")

    # when the client resends it (same client_msg_id), e.g. after a reconnect
    second, second_pushes = run(alice, "chat", "sendMsg", content, channel_name="alice-2")

    # then one message, one set of pushes, and the same reply
    assert first["code"] == second["code"] == 1
    assert second["result"] == first["result"]
    assert first["result"]["client_msg_id"] == "phone-42"
    assert Message.objects.count() == 1
    assert [(s.group, s.code) for s in first_pushes] == [
        (realtime.user_group(bob.pk), 200),
        (realtime.user_group(alice.pk), 307),
    ]
    assert first_pushes[0].result["client_msg_id"] == "phone-42"
    assert second_pushes == []


@pytest.mark.django_db(transaction=True)
def test_the_same_client_msg_id_from_another_sender_is_a_different_message(alice, bob):
    run(alice, "chat", "sendMsg", send_content(bob.pk, "from alice", client_msg_id="same"))
    run(bob, "chat", "sendMsg", send_content(alice.pk, "from bob", client_msg_id="same"))

    assert Message.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_a_committed_send_pushes_and_a_rolled_back_one_pushes_nothing(alice, bob):
    # given a send that commits
    with realtime.collecting() as committed:
        send(alice, bob, "kept")

    # when another send is rolled back by its caller's transaction
    with realtime.collecting() as rolled_back:
        with pytest.raises(RuntimeError):
            with transaction.atomic():
                send(alice, bob, "lost")
                raise RuntimeError("the caller's transaction fails")

    # then
    assert len(committed) == 2
    assert rolled_back == []
    assert list(Message.objects.values_list("msg", flat=True)) == ["kept"]
    assert Conversation.objects.get().last_seq == 1


# --- Read receipts, hiding, typing --------------------------------------------------------------


def test_marking_a_chat_read_zeroes_unread_and_sends_301_to_the_peer(alice, bob, captured_pushes):
    # given
    send(alice, bob, "one")
    send(alice, bob, "two")
    chat_id = chat_id_of(alice, bob)

    # when
    with captured_pushes() as sent:
        services.conversation_mark_read(caller=caller_of(bob, channel_name="bob-1"), chat_id=chat_id)

    # then
    assert row_of(bob, chat_id)["unread_count"] == 0
    receipt = {"chat_id": chat_id, "reader_uid": bob.pk, "seq": 2}
    assert [(s.group, s.code, s.result, s.exclude) for s in sent] == [
        (realtime.user_group(alice.pk), 301, receipt, None),
        (realtime.user_group(bob.pk), 301, receipt, "bob-1"),
    ]


@pytest.mark.django_db(transaction=True)
def test_set_chat_read_replies_with_the_latest_seq_read_and_pushes_the_receipt(alice, bob):
    # given
    for _ in range(3):
        send(alice, bob)
    chat_id = chat_id_of(alice, bob)

    # when
    frame, pushes = run(bob, "chat", "setChatRead", {"chat_id": chat_id, "role_type": 0}, channel_name="bob-1")

    # then
    assert frame == {"code": 1, "msg": None, "result": {"chat_id": chat_id, "seq": 3}}
    assert Participant.objects.get(user=bob).last_read_seq == 3
    assert [(s.group, s.code, s.result["seq"]) for s in pushes] == [
        (realtime.user_group(alice.pk), 301, 3),
        (realtime.user_group(bob.pk), 301, 3),
    ]


def test_marking_a_chat_you_are_not_in_as_read_is_not_found(alice, bob, carol):
    send(bob, carol)

    frame, pushes = run(alice, "chat", "setChatRead", {"chat_id": chat_id_of(bob, carol)})

    assert frame["code"] == -404 and pushes == []


def test_a_hidden_conversation_leaves_the_list_and_a_new_message_brings_it_back(alice, bob):
    # given
    send(alice, bob, "one")
    chat_id = chat_id_of(alice, bob)

    # when bob deletes the chat from his list
    frame, _ = run(bob, "chat", "delChat", {"chat_id": chat_id, "role_type": 0})

    # then it is gone from bob's list only, and its history is kept
    assert frame == {"code": 1, "msg": None, "result": None}
    assert recent(bob)["rows"] == []
    assert row_of(alice, chat_id) is not None
    history, _ = run(bob, "user", "chatRecord", {"chat_id": chat_id})
    assert [row["msg"] for row in history["result"]["rows"]] == ["one"]

    # and when alice writes again, it is back, with the unread count
    send(alice, bob, "two")
    assert row_of(bob, chat_id)["unread_count"] == 2


def test_a_conversation_hidden_by_the_sender_comes_back_when_the_sender_writes(alice, bob):
    send(alice, bob, "one")
    run(alice, "chat", "delChat", {"chat_id": chat_id_of(alice, bob)})
    assert recent(alice)["rows"] == []

    send(alice, bob, "two")

    assert row_of(alice, chat_id_of(alice, bob))["last_msg"] == "two"


def test_typing_is_relayed_as_302_to_the_other_side_and_the_typists_other_sockets_and_never_stored(
    alice, bob, captured_pushes
):
    send(alice, bob)
    chat_id = chat_id_of(alice, bob)

    with captured_pushes() as sent:
        services.typing_relay(caller=caller_of(alice, channel_name="alice-1"), chat_id=chat_id)

    typing = {"chat_id": chat_id, "uid": alice.pk}
    assert [(s.group, s.code, s.result, s.exclude) for s in sent] == [
        (realtime.user_group(bob.pk), 302, typing, None),
        (realtime.user_group(alice.pk), 302, typing, "alice-1"),
    ]
    assert Message.objects.count() == 1


def test_typing_replies_code_1_and_typing_into_a_chat_you_are_not_in_is_not_found(alice, bob, carol):
    send(alice, bob)
    send(bob, carol)

    mine, _ = run(alice, "chat", "typing", {"chat_id": chat_id_of(alice, bob)})
    theirs, _ = run(alice, "chat", "typing", {"chat_id": chat_id_of(bob, carol)})

    assert (mine["code"], mine["result"]) == (1, None)
    assert theirs["code"] == -404


# --- The handler table --------------------------------------------------------------------------


@pytest.mark.parametrize("cls, action", [("chat", "nope"), ("Foo", "Bar"), ("user", "sendMsg")])
def test_an_unknown_action_is_a_bad_request_naming_it_as_sent(alice, cls, action):
    frame, pushes = run(alice, cls, action, req_id="r1")

    assert frame == {"code": 0, "msg": f"unknown action {cls}.{action}", "result": None, "req_id": "r1"}
    assert pushes == []


def test_class_and_action_are_matched_case_insensitively(alice, bob):
    frame, _ = run(alice, "CHAT", "SendMsg", send_content(bob.pk))

    assert frame["code"] == 1


def test_the_req_id_is_echoed_on_success_and_on_error(alice, bob):
    ok, _ = run(alice, "chat", "sendMsg", send_content(bob.pk), req_id="ok-1")
    failed, _ = run(alice, "chat", "sendMsg", send_content(alice.pk), req_id=17)

    assert ok["req_id"] == "ok-1"
    assert failed["req_id"] == 17


def test_friend_list_and_chat_record_answer_with_their_compat_codes(alice, bob):
    send(alice, bob)

    friends, _ = run(alice, "user", "friendList")
    record, _ = run(alice, "user", "chatRecord", {"to_uid": bob.pk, "chat_type": 1})

    assert friends["code"] == 100 and friends["result"]["mine"]["id"] == alice.pk
    assert record["code"] == 201 and record["result"]["total"] == 1


# --- user.recentChat ----------------------------------------------------------------------------


def test_recent_chat_for_is_service_from_someone_who_is_no_agent_is_forbidden(alice):
    frame, _ = run(alice, "user", "recentChat", {"is_service": True})

    assert frame["code"] == -403 and frame["result"] is None


def test_recent_chat_for_is_service_from_a_shop_owner_lists_the_shop_side(alice):
    Shop.objects.create(owner=alice, name="Alice's shop")

    frame, _ = run(alice, "user", "recentChat", {"is_service": True})

    assert frame == {"code": 102, "msg": None, "result": {"rows": [], "unread_count": 0}}


def test_recent_chat_of_a_user_with_no_conversations_is_an_empty_list(alice):
    assert recent(alice) == {"rows": [], "unread_count": 0}


def test_recent_chat_rows_have_exactly_the_protocol_fields_with_json_types(alice, bob, carol):
    # given alice chats with bob, then carol writes to alice
    send(alice, bob, "to bob")
    send(carol, alice, "from carol")

    # when
    result = recent(alice)

    # then newest first, every field of PROTOCOL.md section 4 with its section 7 type
    assert [row["chat_id"] for row in result["rows"]] == [chat_id_of(alice, carol), chat_id_of(alice, bob)]
    assert_json_int(result["unread_count"])
    assert result["unread_count"] == 1
    for row in result["rows"]:
        assert set(row) == set(RECENT_ROW_TYPES)
        for name, kind in RECENT_ROW_TYPES.items():
            if kind is int:
                assert_json_int(row[name])
            else:
                assert isinstance(row[name], str), (name, row[name])
    carol_row, bob_row = result["rows"]
    assert carol_row | {"id": 0, "last_time": 0} == {
        "id": 0,
        "uid": alice.pk,
        "chat_id": chat_id_of(alice, carol),
        "shop_id": 0,
        "friend_uid": carol.pk,
        "friend_name": "Carol",
        "friend_avatar": f"{BASE_URL}/static/img/avatar.png",
        "last_msg": "from carol",
        "last_uid": carol.pk,
        "last_time": 0,
        "chat_type": 1,
        "msg_type": 1,
        "unread_count": 1,
    }
    assert carol_row["last_time"] == Message.objects.get(msg="from carol").created_at.timestamp() // 1
    assert bob_row["friend_avatar"] == "https://cdn.example.com/bob.png"
    assert (bob_row["last_uid"], bob_row["unread_count"]) == (alice.pk, 0)


def test_recent_chat_avatars_are_absolute_urls_built_from_im_public_url_when_set(alice, bob, settings):
    # given
    settings.IM_PUBLIC_URL = "https://im.example.com"
    send(alice, bob)
    request = RequestFactory().post("/user/chatRecently", HTTP_HOST="10.0.0.5:9504")

    # when
    frame, _ = run(bob, "user", "recentChat", base_url=base_url_from_request(request))

    # then
    assert frame["result"]["rows"][0]["friend_avatar"] == "https://im.example.com/media/avatars/alice.png"


def test_recent_chat_avatars_use_the_request_host_without_im_public_url(alice, bob, settings):
    settings.IM_PUBLIC_URL = ""
    settings.ALLOWED_HOSTS = ["chat.example.com"]
    send(alice, bob)
    request = RequestFactory().post("/user/chatRecently", HTTP_HOST="chat.example.com:9504")

    frame, _ = run(bob, "user", "recentChat", base_url=base_url_from_request(request))

    assert frame["result"]["rows"][0]["friend_avatar"] == "http://chat.example.com:9504/media/avatars/alice.png"


def test_recent_chats_lists_every_conversation_newest_first(alice):
    # given a few conversations
    peers = [make_user() for _ in range(5)]
    for peer in peers:
        send(peer, alice)

    # when
    result = selectors.recent_chats(caller=caller_of(alice))

    # then all are listed, newest first
    assert [row["friend_uid"] for row in result["rows"]] == [peer.pk for peer in reversed(peers)]
    assert result["unread_count"] == 5
