"""chat.sync (catching up by seq and by time) and chat.recall (PROTOCOL.md section 4).

Requests go through `chat.handlers.run`; each request's on-commit callbacks are run when it returns,
inside a collector, so the pushes are what the consumer would send. The group recall is also checked
through real sockets.
"""

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from django.test import TestCase
from django.utils import timezone

from chat import handlers, realtime
from chat.models import Conversation, Message, Participant
from chat.protocol import Envelope, dumps
from tests.factories import caller_of, open_socket, request, synchronously

pytestmark = pytest.mark.django_db

PUSHED_MESSAGE_KEYS = ["nickname", "avatar", "id", "chat_id", "chat_type", "msg_type", "msg", "createtime",
                       "msg_id", "seq", "from_uid", "to_uid", "client_msg_id"]


@dataclass
class Outcome:
    frame: dict
    pushed: list[tuple[str, int, dict, str | None]]  # (group, code, result, exclude_channel)

    @property
    def code(self) -> int:
        return self.frame["code"]

    @property
    def result(self):
        return self.frame["result"]


def run(user, cls: str, action: str, content: dict | None = None, *, channel: str | None = None) -> Outcome:
    with realtime.collecting() as pushes:
        with TestCase.captureOnCommitCallbacks(execute=True):
            frame, _ = handlers.run(caller_of(user, channel_name=channel),
                                    Envelope(cls=cls, action=action, content=content or {}))
    pushed = []
    for push in pushes:
        if push.text:
            decoded = json.loads(push.text)
            pushed.append((push.group, decoded["code"], decoded["result"], push.exclude_channel))
    return Outcome(json.loads(dumps(frame)), pushed)


def ok(outcome: Outcome, code: int = 1) -> Outcome:
    assert outcome.code == code, outcome.frame
    return outcome


def send(sender, to, msg: str) -> dict:
    """A private message (`to` a user) or a group message (`to` a group id); the reply's result."""
    if isinstance(to, int):
        content = {"to_uid": to, "chat_type": 2, "msg_type": 1, "msg": msg, "chat_id": ""}
    else:
        content = {"to_uid": to.pk, "chat_type": 1, "msg_type": 1, "msg": msg, "chat_id": ""}
    return ok(run(sender, "chat", "sendMsg", content)).result


def sync(user, **content) -> dict:
    return ok(run(user, "chat", "sync", content)).result


def seqs(result: dict) -> list[tuple[str, int]]:
    return [(message["chat_id"], message["seq"]) for message in result["messages"]]


def chat_id_of(a, b) -> str:
    return f"{min(a.pk, b.pk)}_{max(a.pk, b.pk)}"


def create_group(owner, *members) -> int:
    outcome = ok(run(owner, "group", "create", {"name": "Hikers", "uids": [m.pk for m in members]}))
    return outcome.result["group_id"]


def backdate(msg_id: int, moment: datetime) -> None:
    Message.objects.filter(pk=msg_id).update(created_at=moment)


def history(user, chat_id: str) -> list[str]:
    record = ok(run(user, "user", "chatRecord", {"chat_id": chat_id}), 201).result
    return [row["msg"] for row in reversed(record["rows"])]


# --- chat.sync by cursor -------------------------------------------------------------------------


def test_sync_returns_the_messages_after_each_cursor_by_conversation_then_seq(alice, bob, carol):
    # given two conversations
    for n in range(1, 6):
        send(alice if n % 2 else bob, bob if n % 2 else alice, f"ab{n}")
    for n in range(1, 4):
        send(carol, alice, f"ac{n}")
    ab, ac = chat_id_of(alice, bob), chat_id_of(alice, carol)

    # when alice has ab up to seq 2 and nothing of ac
    result = sync(alice, chats={ab: 2, ac: 0})

    # then
    assert seqs(result) == [(ab, 3), (ab, 4), (ab, 5), (ac, 1), (ac, 2), (ac, 3)]
    assert result["more"] is False
    assert [m["msg"] for m in result["messages"]] == ["ab3", "ab4", "ab5", "ac1", "ac2", "ac3"]
    for message in result["messages"]:
        assert list(message) == PUSHED_MESSAGE_KEYS


def test_a_client_that_is_up_to_date_gets_nothing(alice, bob):
    send(alice, bob, "one")

    assert sync(bob, chats={chat_id_of(alice, bob): 1}) == {"messages": [], "more": False}


def test_paging_with_limit_and_advanced_cursors_loses_and_repeats_nothing(alice, bob, carol):
    # given three conversations: 7, 4 and 6 messages
    group_id = create_group(alice, bob, carol)
    for n in range(7):
        send(bob, alice, f"ab{n}")
    for n in range(4):
        send(alice, carol, f"ac{n}")
    for n in range(6):
        send(carol if n % 2 else bob, group_id, f"g{n}")
    expected = (
        [(chat_id_of(alice, bob), seq) for seq in range(1, 8)]
        + [(chat_id_of(alice, carol), seq) for seq in range(1, 5)]
        + [(f"g{group_id}", seq) for seq in range(1, 7)]
    )
    cursors = {chat_id: 0 for chat_id, _ in expected}

    # when alice catches up 5 at a time, advancing her cursors after each page
    got, pages = [], []
    for _ in range(10):
        page = sync(alice, chats=cursors, limit=5)
        pages.append((len(page["messages"]), page["more"]))
        got.extend(seqs(page))
        for chat_id, seq in seqs(page):
            cursors[chat_id] = max(cursors[chat_id], seq)
        if not page["more"]:
            break

    # then every message once, in order, in four pages
    assert pages == [(5, True), (5, True), (5, True), (2, False)]
    assert sorted(got) == sorted(expected) and len(got) == len(set(got))
    for chat_id in cursors:
        mine = [seq for cid, seq in got if cid == chat_id]
        assert mine == sorted(mine)


def test_limit_defaults_to_200_and_is_capped_at_500(alice, bob):
    # given 501 messages (stored in bulk: the cap is what is under test)
    send(bob, alice, "m1")
    conversation = Conversation.objects.get(chat_id=chat_id_of(alice, bob))
    now = timezone.now()
    Message.objects.bulk_create([
        Message(conversation=conversation, seq=seq, sender=bob, chat_type=1, msg_type=1, msg=f"m{seq}",
                to_uid=alice.pk, created_at=now)
        for seq in range(2, 502)
    ])
    Conversation.objects.filter(pk=conversation.pk).update(last_seq=501)

    default = sync(alice, chats={conversation.chat_id: 0})
    capped = sync(alice, chats={conversation.chat_id: 0}, limit=10_000)

    assert (len(default["messages"]), default["more"]) == (200, True)
    assert (len(capped["messages"]), capped["more"]) == (500, True)
    assert capped["messages"][-1]["seq"] == 500


def test_conversations_the_caller_may_not_read_are_left_out_silently(alice, bob, carol):
    # given alice's own chat, a chat of others, a group she is not in, and another user's notice box
    send(alice, bob, "mine")
    send(bob, carol, "theirs")
    group_id = create_group(bob, carol)
    send(carol, group_id, "their group")

    # when she asks for all of them
    result = sync(alice, chats={chat_id_of(alice, bob): 0, chat_id_of(bob, carol): 0, f"g{group_id}": 0,
                                f"sys_{bob.pk}": 0, "not-a-chat-id": 0})

    # then she gets her own and nothing else, and no error
    assert seqs(result) == [(chat_id_of(alice, bob), 1)]


def test_sync_content_that_is_not_a_map_of_cursors_is_a_bad_request(alice):
    outcome = run(alice, "chat", "sync", {"chats": [1, 2]})

    assert outcome.code == 0 and outcome.frame["msg"].startswith("chats: ")


# --- chat.sync by time ---------------------------------------------------------------------------


def test_since_adds_the_callers_other_conversations_from_that_second_inclusive(alice, bob, carol):
    # given messages around the moment `since` (whole seconds), in a listed and an unlisted conversation
    since = int(timezone.now().timestamp()) - 100
    at = lambda offset: datetime.fromtimestamp(since, tz=UTC) + timedelta(seconds=offset)  # noqa: E731
    ab, ac, bc = chat_id_of(alice, bob), chat_id_of(alice, carol), chat_id_of(bob, carol)
    listed_old = send(bob, alice, "listed, long ago")["msg_id"]
    too_early = send(carol, alice, "a moment before since")["msg_id"]
    same_second = send(carol, alice, "in the very second of since")["msg_id"]
    later = send(alice, carol, "after since")["msg_id"]
    not_hers = send(bob, carol, "not alice's")["msg_id"]
    backdate(listed_old, at(-1000))
    backdate(too_early, at(-0.3))
    backdate(same_second, at(0.7))
    backdate(later, at(30))
    backdate(not_hers, at(30))

    # when alice syncs the chat she has listed, plus everything since `since`
    result = sync(alice, chats={ab: 0}, since=since)

    # then the listed chat by cursor, the other from `since` on, and nothing of others' chats
    assert seqs(result) == [(ab, 1), (ac, 2), (ac, 3)]
    assert result["messages"][1]["createtime"] == since
    assert bc not in {chat_id for chat_id, _ in seqs(result)}


def test_since_alone_covers_every_conversation_of_the_caller(alice, bob, carol):
    since = int(timezone.now().timestamp()) - 5
    send(bob, alice, "from bob")
    send(carol, alice, "from carol")
    group_id = create_group(carol, alice)
    send(carol, group_id, "in the group")

    result = sync(alice, since=since)

    assert sorted(m["msg"] for m in result["messages"]) == ["from bob", "from carol", "in the group"]


# --- chat.sync and group membership --------------------------------------------------------------


def test_a_member_who_left_a_group_syncs_nothing_sent_after_leaving(alice, bob, carol):
    # given carol saw two messages, left, then two more were sent
    group_id = create_group(alice, bob, carol)
    chat_id = f"g{group_id}"
    send(alice, group_id, "one")
    send(bob, group_id, "two")
    ok(run(carol, "group", "leave", {"group_id": group_id}))
    send(alice, group_id, "three")
    send(bob, group_id, "four")
    since = int(timezone.now().timestamp()) - 60

    # then by cursor or by time she gets only her time in the group
    assert seqs(sync(carol, chats={chat_id: 0})) == [(chat_id, 1), (chat_id, 2)]
    assert seqs(sync(carol, chats={chat_id: 2})) == []
    assert seqs(sync(carol, since=since)) == [(chat_id, 1), (chat_id, 2)]
    assert seqs(sync(bob, chats={chat_id: 2})) == [(chat_id, 3), (chat_id, 4)]


def test_a_member_invited_later_syncs_nothing_from_before_joining(alice, bob, carol):
    group_id = create_group(alice, bob)
    chat_id = f"g{group_id}"
    send(alice, group_id, "before carol")
    ok(run(alice, "group", "invite", {"group_id": group_id, "uids": [carol.pk]}))
    send(bob, group_id, "after carol")

    assert [m["msg"] for m in sync(carol, chats={chat_id: 0})["messages"]] == ["after carol"]


# --- chat.recall ---------------------------------------------------------------------------------


def test_the_sender_recalls_a_message_and_its_text_is_replaced_for_everyone(alice, bob):
    # given
    oops = send(alice, bob, "oops, wrong chat")
    send(alice, bob, "this one stays")
    chat_id = chat_id_of(alice, bob)

    # when
    outcome = run(alice, "chat", "recall", {"msg_id": oops["msg_id"]}, channel="alice-1")

    # then a 303 to bob and to alice's other sockets, and the text is gone from every history
    event = {"msg_id": oops["msg_id"], "chat_id": chat_id, "seq": 1}
    assert outcome.frame == {"code": 1, "msg": None, "result": event}
    assert outcome.pushed == [
        (realtime.user_group(bob.pk), 303, event, None),
        (realtime.user_group(alice.pk), 303, event, "alice-1"),
    ]
    recalled = Message.objects.get(pk=oops["msg_id"]).msg
    assert recalled != "oops, wrong chat"
    for user in (alice, bob):
        assert history(user, chat_id) == [recalled, "this one stays"]
    assert [m["msg"] for m in sync(bob, chats={chat_id: 0})["messages"]] == [recalled, "this one stays"]


def test_recalling_the_latest_message_replaces_it_in_the_conversation_lists(alice, bob):
    sent = send(alice, bob, "secret")

    ok(run(alice, "chat", "recall", {"msg_id": sent["msg_id"]}))

    recalled = Message.objects.get(pk=sent["msg_id"]).msg
    for user in (alice, bob):
        rows = ok(run(user, "user", "recentChat"), 102).result["rows"]
        assert rows[0]["last_msg"] == recalled != "secret"


def test_only_the_sender_may_recall(alice, bob):
    sent = send(alice, bob, "mine")

    outcome = run(bob, "chat", "recall", {"msg_id": sent["msg_id"]})

    assert outcome.code == -403 and outcome.pushed == []
    assert Message.objects.get(pk=sent["msg_id"]).msg == "mine"


def test_recalling_a_message_that_does_not_exist_is_not_found(alice):
    assert run(alice, "chat", "recall", {"msg_id": 987654}).code == -404
    assert run(alice, "chat", "recall", {}).code == 0


def test_a_message_can_be_recalled_only_within_im_recall_seconds(alice, bob, settings):
    # given a 60-second window, one message 59 s old and one 61 s old
    settings.IM_RECALL_SECONDS = 60
    fresh, stale = send(alice, bob, "fresh"), send(alice, bob, "stale")
    now = timezone.now()
    backdate(fresh["msg_id"], now - timedelta(seconds=59))
    backdate(stale["msg_id"], now - timedelta(seconds=61))

    # when
    in_time = run(alice, "chat", "recall", {"msg_id": fresh["msg_id"]})
    too_late = run(alice, "chat", "recall", {"msg_id": stale["msg_id"]})

    # then
    assert in_time.code == 1
    assert too_late.code == 0 and too_late.frame["msg"].startswith("msg_id: ")
    assert too_late.pushed == []
    assert Message.objects.get(pk=stale["msg_id"]).msg == "stale"


def test_with_im_recall_seconds_0_a_message_a_second_old_cannot_be_recalled(alice, bob, settings):
    settings.IM_RECALL_SECONDS = 0
    sent = send(alice, bob, "said is said")
    backdate(sent["msg_id"], timezone.now() - timedelta(seconds=1))

    outcome = run(alice, "chat", "recall", {"msg_id": sent["msg_id"]})

    assert outcome.code == 0
    assert Message.objects.get(pk=sent["msg_id"]).msg == "said is said"


def test_a_recalled_group_message_is_replaced_for_a_member_who_has_since_left(alice, bob, carol):
    group_id = create_group(alice, bob, carol)
    sent = send(alice, group_id, "regrettable")
    ok(run(carol, "group", "leave", {"group_id": group_id}))

    ok(run(alice, "chat", "recall", {"msg_id": sent["msg_id"]}))

    assert "regrettable" not in history(carol, f"g{group_id}")
    assert Participant.objects.get(conversation__chat_id=f"g{group_id}", user=carol).left_seq == 1


@pytest.mark.django_db(transaction=True)
@synchronously
async def test_a_group_recall_reaches_each_other_socket_once_and_not_the_recalling_one(alice, bob, carol):
    # given alice on two sockets, bob and carol on one each, in a group, and a message from alice's phone
    phone, laptop, bobs, carols = (await open_socket(alice), await open_socket(alice), await open_socket(bob),
                                   await open_socket(carol))
    sockets = (phone, laptop, bobs, carols)
    group = (await request(phone, "group", "create", {"name": "Hikers", "uids": [bob.pk, carol.pk]}))["result"]
    for socket in sockets:
        await drain(socket)  # the 306 invited
    sent = await request(phone, "chat", "sendMsg",
                         {"to_uid": group["group_id"], "chat_type": 2, "msg_type": 1, "msg": "oops", "chat_id": ""})
    assert sent["code"] == 1, sent
    for socket in sockets:
        await drain(socket)

    # when alice recalls it from her phone
    reply = await request(phone, "chat", "recall", {"msg_id": sent["result"]["msg_id"]})

    # then every other socket gets exactly one 303, the phone only the reply
    event = {"code": 303, "msg": None,
             "result": {"msg_id": sent["result"]["msg_id"], "chat_id": group["chat_id"], "seq": 1}}
    assert reply["code"] == 1
    received = {name: await drain(socket) for name, socket in zip(("phone", "laptop", "bob", "carol"), sockets)}
    assert received == {"phone": [], "laptop": [event], "bob": [event], "carol": [event]}
    for socket in sockets:
        await socket.disconnect()


async def drain(socket, timeout: float = 0.1) -> list[dict]:
    frames = []
    while not await socket.receive_nothing(timeout=timeout):
        frames.append(await socket.receive_json_from())
    return frames


def test_since_0_means_from_the_beginning(alice, bob, carol):
    # a fresh install has no cursors and asks for everything since the epoch
    send(bob, alice, "from bob")
    send(carol, alice, "from carol")

    result = sync(alice, since=0)

    assert sorted(m["msg"] for m in result["messages"]) == ["from bob", "from carol"]
