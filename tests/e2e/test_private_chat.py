"""Private chat against one real daphne (SQLite, in-memory layer), with the compat client's frames.

Covers PROTOCOL.md sections 1-4 and 7 for chat_type 1: replies, pushes and their JSON types,
several devices, history, unread counts, read receipts, hiding, idempotent resends, typing, every
error path of section 2, socket credentials and the Origin rule.
"""

import asyncio
import json
import time

import httpx
import pytest
from websockets.client import ClientProtocol
from websockets.exceptions import InvalidStatus
from websockets.frames import Frame, Opcode
from websockets.protocol import State
from websockets.uri import parse_uri

from tests.e2e.harness import (
    Client,
    Server,
    Site,
    User,
    client_frame,
    craft_token,
    http_post,
    private_chat_id,
    run,
    send_msg_frame,
    send_ok,
)

pytestmark = pytest.mark.e2e

COMPAT_PUSH_FIELDS = ["nickname", "avatar", "id", "chat_id", "chat_type", "msg_type", "msg", "createtime"]
EXT_PUSH_FIELDS = ["msg_id", "seq", "from_uid", "to_uid", "client_msg_id"]
REPLY_FIELDS = ["msg_id", "chat_id", "seq", "createtime", "client_msg_id"]
RECENT_ROW_FIELDS = ["id", "uid", "chat_id", "shop_id", "friend_uid", "friend_name", "friend_avatar", "last_msg",
                     "last_uid", "last_time", "chat_type", "msg_type", "unread_count"]
RECORD_ROW_FIELDS = ["avatar", "nickname", "chat_id", "from_uid", "to_uid", "chat_type", "msg_type", "msg",
                     "createtime", "mine"]
NO_SUCH_USER_ID = 987_654_321


@pytest.fixture(scope="module")
def site(sqlite_site: Site) -> Site:
    return sqlite_site


@pytest.fixture(scope="module")
def server(sqlite_site: Site) -> Server:
    return sqlite_site.servers[0]


def is_int(value) -> bool:
    return type(value) is int


def assert_absolute_http_url(value, server: Server) -> None:
    assert isinstance(value, str) and value.startswith(f"http://127.0.0.1:{server.port}/"), value


async def recent_row(client: Client, chat_id: str) -> tuple[dict | None, dict]:
    """The caller's row for chat_id in user.recentChat (None if not listed), and the whole result."""
    reply = await client.request("user", "recentChat", {"is_service": False})
    assert reply["code"] == 102, reply
    rows = [row for row in reply["result"]["rows"] if row["chat_id"] == chat_id]
    assert len(rows) <= 1, reply
    return (rows[0] if rows else None), reply["result"]


# --- Sending and receiving ------------------------------------------------------------------------


def test_sender_gets_a_reply_with_the_stored_message_identity(site, server):
    alice, bob = site.users(2)

    async def scenario():
        async with await Client.as_user(server, alice) as a:
            before = int(time.time())
            await a.send(send_msg_frame(bob.id, "hello bob"))
            reply = await a.reply()
            assert list(reply) == ["code", "msg", "result"]
            assert reply["code"] == 1 and reply["msg"] is None
            result = reply["result"]
            assert list(result) == REPLY_FIELDS
            assert is_int(result["msg_id"]) and result["msg_id"] > 0
            assert result["chat_id"] == private_chat_id(alice.id, bob.id)
            assert result["seq"] == 1
            assert is_int(result["createtime"]) and before - 2 <= result["createtime"] <= time.time() + 2
            assert result["client_msg_id"] is None

    run(scenario())


def test_receiver_gets_the_message_pushed_with_code_200(site, server):
    alice, bob = site.users(2)

    async def scenario():
        async with await Client.as_user(server, alice) as a, await Client.as_user(server, bob) as b:
            sent = await send_ok(a, send_msg_frame(bob.id, "你好 bob"))
            push = await b.expect_code(200)
            assert list(push) == ["code", "msg", "result"] and push["msg"] is None
            result = push["result"]
            assert list(result) == COMPAT_PUSH_FIELDS + EXT_PUSH_FIELDS
            assert result["nickname"] == alice.name
            assert_absolute_http_url(result["avatar"], server)
            assert result["id"] == alice.id
            assert result["chat_id"] == f"{min(alice.id, bob.id)}_{max(alice.id, bob.id)}" == sent["chat_id"]
            assert result["chat_type"] == 1 and result["msg_type"] == 1
            assert result["msg"] == "你好 bob"
            assert result["createtime"] == sent["createtime"]
            assert result["msg_id"] == sent["msg_id"] and result["seq"] == sent["seq"] == 1
            assert result["from_uid"] == alice.id and result["to_uid"] == bob.id
            assert result["client_msg_id"] is None
            for name in ("id", "chat_type", "msg_type", "createtime", "msg_id", "seq", "from_uid", "to_uid"):
                assert is_int(result[name]), (name, result[name])

    run(scenario())


def test_two_users_chat_both_ways_with_every_chat_id_form_and_seq_rises_by_one(site, server):
    alice, bob = site.users(2)
    chat_id = private_chat_id(alice.id, bob.id)
    # (sender, chat_id as the compat client sends it): "" on a deep link, null, then the real id.
    turns = [("a", ""), ("b", None), ("a", chat_id), ("b", chat_id), ("a", None), ("b", "")]

    async def scenario():
        async with await Client.as_user(server, alice) as a, await Client.as_user(server, bob) as b:
            clients = {"a": (a, b, alice, bob), "b": (b, a, bob, alice)}
            for number, (who, chat_id_sent) in enumerate(turns, start=1):
                sender, receiver, me, peer = clients[who]
                text = f"turn {number} from {me.name}"
                sent = await send_ok(sender, send_msg_frame(peer.id, text, chat_id=chat_id_sent))
                push = (await receiver.expect_code(200))["result"]
                assert sent["seq"] == number and push["seq"] == number
                assert sent["chat_id"] == push["chat_id"] == chat_id
                assert push["msg"] == text and push["id"] == me.id
                assert push["from_uid"] == me.id and push["to_uid"] == peer.id
            for client in (a, b):
                assert not [f for f in await client.settle() if f["code"] in (200, 307)]

    run(scenario())


def test_a_message_sent_with_chat_id_alone_reaches_the_peer(site, server):
    alice, bob = site.users(2)
    chat_id = private_chat_id(alice.id, bob.id)

    async def scenario():
        async with await Client.as_user(server, alice) as a, await Client.as_user(server, bob) as b:
            await send_ok(a, send_msg_frame(bob.id, "first"))
            frame = send_msg_frame(0, "by chat_id only", chat_id=chat_id)
            del frame["content"]["to_uid"]
            sent = await send_ok(a, frame)
            assert sent["seq"] == 2
            push = (await b.expect(lambda f: f["code"] == 200 and f["result"]["seq"] == 2))["result"]
            assert push["msg"] == "by chat_id only" and push["to_uid"] == bob.id

    run(scenario())


def test_senders_other_socket_gets_307_and_the_sending_socket_only_the_reply(site, server):
    alice, bob = site.users(2)

    async def scenario():
        async with (
            await Client.as_user(server, alice) as phone,
            await Client.as_user(server, alice) as laptop,
            await Client.as_user(server, bob) as b,
        ):
            sent = await send_ok(phone, send_msg_frame(bob.id, "from my phone"))
            own = await laptop.expect_code(307)
            push = await b.expect_code(200)
            assert own == push | {"code": 307}
            assert own["result"]["msg_id"] == sent["msg_id"] and own["result"]["id"] == alice.id
            assert await phone.settle() == []
            assert not [f for f in await laptop.settle() if f["code"] in (200, 307)]
            assert not [f for f in await b.settle() if f["code"] in (200, 307)]

    run(scenario())


def test_every_socket_of_the_receiver_gets_the_push(site, server):
    alice, bob = site.users(2)

    async def scenario():
        async with (
            await Client.as_user(server, alice) as a,
            await Client.as_user(server, bob) as b1,
            await Client.as_user(server, bob) as b2,
        ):
            sent = await send_ok(a, send_msg_frame(bob.id, "to both of your devices"))
            first, second = await b1.expect_code(200), await b2.expect_code(200)
            assert first == second
            assert first["result"]["msg_id"] == sent["msg_id"]
            for client in (b1, b2):
                assert not [f for f in await client.settle() if f["code"] in (200, 307)]

    run(scenario())


def test_resending_a_client_msg_id_returns_the_same_message_and_pushes_nothing(site, server):
    alice, bob = site.users(2)

    async def scenario():
        async with await Client.as_user(server, alice) as a, await Client.as_user(server, bob) as b:
            frame = send_msg_frame(bob.id, "exactly once", client_msg_id="c-0001")
            first = await send_ok(a, frame)
            assert first["client_msg_id"] == "c-0001"
            push = (await b.expect_code(200))["result"]
            assert push["client_msg_id"] == "c-0001" and push["msg_id"] == first["msg_id"]
            again = await send_ok(a, frame)
            assert again == first
            assert not [f for f in await b.settle() if f["code"] == 200]
            later = await send_ok(a, send_msg_frame(bob.id, "the next one"))
            assert later["seq"] == first["seq"] + 1
            next_push = (await b.expect_code(200))["result"]
            assert next_push["msg_id"] == later["msg_id"]
            record = await b.request("user", "chatRecord", {"chat_id": first["chat_id"]})
            assert record["result"]["total"] == 2

    run(scenario())


def test_class_and_action_are_matched_case_insensitively(site, server):
    alice, bob = site.users(2)

    async def scenario():
        async with await Client.as_user(server, alice) as a, await Client.as_user(server, bob) as b:
            frame = send_msg_frame(bob.id, "shouting") | {"class": "Chat", "action": "SENDMSG"}
            await send_ok(a, frame)
            assert (await b.expect_code(200))["result"]["msg"] == "shouting"

    run(scenario())


def test_numbers_sent_as_numeric_strings_are_accepted_and_sent_back_as_numbers(site, server):
    alice, bob = site.users(2)

    async def scenario():
        async with await Client.as_user(server, alice) as a, await Client.as_user(server, bob) as b:
            frame = send_msg_frame(str(bob.id), "strings", chat_type="1", msg_type="1", shop_id="0", role_type="0")
            sent = await send_ok(a, frame)
            push = (await b.expect_code(200))["result"]
            for name in ("id", "chat_type", "msg_type", "to_uid", "from_uid", "seq", "msg_id"):
                assert is_int(push[name]), (name, push)
            assert push["to_uid"] == bob.id and sent["seq"] == 1

    run(scenario())


def test_pipelined_requests_get_one_reply_each_in_request_order(site, server):
    alice, bob = site.users(2)

    async def scenario():
        async with await Client.as_user(server, alice) as a:
            frames = [
                send_msg_frame(bob.id, "one") | {"req_id": 1},
                {"class": "user", "action": "recentChat", "content": None, "req_id": 2},
                {"class": "chat", "action": "nosuch", "req_id": 3},
                send_msg_frame(bob.id, "two") | {"req_id": 4},
                {"class": "chat", "req_id": 5},
                {"class": "user", "action": "friendList", "req_id": 6},
                send_msg_frame(bob.id, "three") | {"req_id": 7},
            ]
            for frame in frames:
                await a.send(frame)
            replies = [await a.reply() for _ in frames]
            assert [reply.get("req_id") for reply in replies] == [1, 2, 3, 4, 5, 6, 7]
            assert [reply["code"] for reply in replies] == [1, 102, 0, 1, 0, 100, 1]
            assert [replies[i]["result"]["seq"] for i in (0, 3, 6)] == [1, 2, 3]
            assert await a.settle() == []

    run(scenario())


def test_req_id_is_echoed_in_the_reply(site, server):
    alice, bob = site.users(2)

    async def scenario():
        async with await Client.as_user(server, alice) as a:
            for req_id in ("r-17", 17):
                await a.send(send_msg_frame(bob.id, "with req_id") | {"req_id": req_id})
                reply = await a.reply()
                assert reply["code"] == 1 and reply["req_id"] == req_id
            reply = await a.request("chat", "sendMsg", {"to_uid": bob.id, "chat_type": 0, "msg_type": 1, "msg": "x"},
                                    req_id="bad-1")
            assert reply["code"] == 0 and reply["req_id"] == "bad-1"
            reply = await a.request("chat", "nosuch", {}, req_id="bad-2")
            assert reply["code"] == 0 and reply["req_id"] == "bad-2"
            reply = await a.request("chat", "sendMsg", [], req_id="bad-3")
            assert reply["code"] == 0 and reply["req_id"] == "bad-3"

    run(scenario())


def test_a_user_made_by_createimuser_with_a_mintoken_token_can_chat(site, server):
    (bob,) = site.users(1)
    wanted_id = 5_000_000 + int(time.time()) % 1_000_000
    name = f"mall{wanted_id}"
    assert site.createimuser(name, "--id", str(wanted_id)) == wanted_id
    mall_user = User(id=wanted_id, name=name, token=site.mintoken(name))

    async def scenario():
        async with await Client.as_user(server, mall_user) as m, await Client.as_user(server, bob) as b:
            sent = await send_ok(m, send_msg_frame(bob.id, "from the mall"))
            assert sent["chat_id"] == private_chat_id(wanted_id, bob.id)
            push = (await b.expect_code(200))["result"]
            assert push["id"] == wanted_id and push["nickname"] == name

    run(scenario())


# --- History, conversation list, receipts, hiding, typing -----------------------------------------


def test_chat_record_lists_the_history_newest_first_with_mine(site, server):
    alice, bob = site.users(2)
    chat_id = private_chat_id(alice.id, bob.id)

    async def scenario():
        async with await Client.as_user(server, alice) as a, await Client.as_user(server, bob) as b:
            await send_ok(a, send_msg_frame(bob.id, "one"))
            await send_ok(b, send_msg_frame(alice.id, "two"))
            await send_ok(a, send_msg_frame(bob.id, "three", chat_id=chat_id))
            for viewer, client in ((alice, a), (bob, b)):
                for content in ({"chat_id": chat_id}, {"to_uid": (bob if viewer is alice else alice).id,
                                                       "chat_type": 1}):
                    reply = await client.request("user", "chatRecord", content)
                    assert reply["code"] == 201 and reply["msg"] is None, reply
                    result = reply["result"]
                    assert result["total"] == 3 and is_int(result["total"])
                    rows = result["rows"]
                    assert [row["msg"] for row in rows] == ["three", "two", "one"]
                    assert [row["mine"] for row in rows] == [
                        viewer is alice, viewer is bob, viewer is alice
                    ]
                    for row in rows:
                        assert list(row)[: len(RECORD_ROW_FIELDS)] == RECORD_ROW_FIELDS
                        assert row["chat_id"] == chat_id
                        assert type(row["mine"]) is bool
                        for name in ("from_uid", "to_uid", "chat_type", "msg_type", "createtime"):
                            assert is_int(row[name]), (name, row)
                        assert_absolute_http_url(row["avatar"], server)
                    assert [row["from_uid"] for row in rows] == [alice.id, bob.id, alice.id]
                    assert [row["nickname"] for row in rows] == [alice.name, bob.name, alice.name]

    run(scenario())


def test_http_get_chat_record_with_the_authorizations_header_returns_the_same_history(site, server):
    alice, bob = site.users(2)
    chat_id = private_chat_id(alice.id, bob.id)

    async def scenario():
        async with await Client.as_user(server, alice) as a:
            await send_ok(a, send_msg_frame(bob.id, "over http too"))
            await send_ok(a, send_msg_frame(bob.id, "and again"))
            return (await a.request("user", "chatRecord", {"chat_id": chat_id}))["result"]

    over_socket = run(scenario())
    body = http_post(server, "/user/getChatRecord", {"chat_id": chat_id}, token=bob.token)
    assert body["code"] == 1, body
    assert [row["msg"] for row in body["result"]["rows"]] == ["and again", "over http too"]
    assert body["result"]["total"] == 2
    assert [row["mine"] for row in body["result"]["rows"]] == [False, False]
    as_alice = http_post(server, "/user/getChatRecord", {"to_uid": bob.id, "chat_type": 1}, token=alice.token)
    assert as_alice["result"] == over_socket
    assert http_post(server, "/user/getChatRecord", {"chat_id": chat_id}) == {
        "code": 401, "msg": "请登录", "result": None,
    }


def test_unread_count_rises_for_the_receiver_and_stays_zero_for_the_sender(site, server):
    alice, bob = site.users(2)
    chat_id = private_chat_id(alice.id, bob.id)

    async def scenario():
        async with await Client.as_user(server, alice) as a, await Client.as_user(server, bob) as b:
            for number in (1, 2, 3):
                await send_ok(a, send_msg_frame(bob.id, f"unread {number}"))
                row, result = await recent_row(b, chat_id)
                assert row["unread_count"] == number and result["unread_count"] == number
                mine, mine_result = await recent_row(a, chat_id)
                assert mine["unread_count"] == 0 and mine_result["unread_count"] == 0
            assert list(row) == RECENT_ROW_FIELDS
            assert row["uid"] == bob.id and row["chat_id"] == chat_id and row["shop_id"] == 0
            assert row["friend_uid"] == alice.id and row["friend_name"] == alice.name
            assert_absolute_http_url(row["friend_avatar"], server)
            assert row["last_msg"] == "unread 3" and row["last_uid"] == alice.id
            assert row["chat_type"] == 1 and row["msg_type"] == 1
            for name in ("id", "uid", "shop_id", "friend_uid", "last_uid", "last_time", "chat_type", "msg_type",
                         "unread_count"):
                assert is_int(row[name]), (name, row)
            assert mine["friend_uid"] == bob.id and mine["uid"] == alice.id

    run(scenario())


def test_set_chat_read_resets_unread_and_sends_a_read_receipt_to_the_peer(site, server):
    alice, bob = site.users(2)
    chat_id = private_chat_id(alice.id, bob.id)

    async def scenario():
        async with (
            await Client.as_user(server, alice) as a,
            await Client.as_user(server, bob) as b1,
            await Client.as_user(server, bob) as b2,
        ):
            await send_ok(a, send_msg_frame(bob.id, "read me"))
            await send_ok(a, send_msg_frame(bob.id, "and me"))
            reply = await b1.request("chat", "setChatRead", {"chat_id": chat_id, "role_type": 0})
            assert reply["code"] == 1, reply
            receipt = await a.expect_code(301)
            assert receipt["result"] == {"chat_id": chat_id, "reader_uid": bob.id, "seq": 2}
            assert (await b2.expect_code(301))["result"] == receipt["result"]
            assert not [f for f in await b1.settle() if f["code"] == 301]
            row, result = await recent_row(b1, chat_id)
            assert row["unread_count"] == 0 and result["unread_count"] == 0
            await send_ok(a, send_msg_frame(bob.id, "one more"))
            row, _ = await recent_row(b2, chat_id)
            assert row["unread_count"] == 1

    run(scenario())


def test_del_chat_hides_the_conversation_until_a_new_message_arrives(site, server):
    alice, bob = site.users(2)
    chat_id = private_chat_id(alice.id, bob.id)

    async def scenario():
        async with await Client.as_user(server, alice) as a, await Client.as_user(server, bob) as b:
            await send_ok(a, send_msg_frame(bob.id, "before hiding"))
            reply = await b.request("chat", "delChat", {"chat_id": chat_id, "role_type": 0})
            assert reply["code"] == 1, reply
            row, _ = await recent_row(b, chat_id)
            assert row is None
            still, _ = await recent_row(a, chat_id)
            assert still is not None
            record = await b.request("user", "chatRecord", {"chat_id": chat_id})
            assert record["result"]["total"] == 1
            await send_ok(a, send_msg_frame(bob.id, "after hiding"))
            row, _ = await recent_row(b, chat_id)
            assert row is not None and row["last_msg"] == "after hiding"

    run(scenario())


def test_typing_is_relayed_to_the_peer_as_302(site, server):
    alice, bob = site.users(2)
    chat_id = private_chat_id(alice.id, bob.id)

    async def scenario():
        async with await Client.as_user(server, alice) as a, await Client.as_user(server, bob) as b:
            await send_ok(a, send_msg_frame(bob.id, "hi"))
            reply = await a.request("chat", "typing", {"chat_id": chat_id})
            assert reply["code"] == 1, reply
            event = await b.expect_code(302)
            assert event == {"code": 302, "msg": None, "result": {"chat_id": chat_id, "uid": alice.id}}
            assert not [f for f in await a.settle() if f["code"] == 302]
            record = await a.request("user", "chatRecord", {"chat_id": chat_id})
            assert record["result"]["total"] == 1

    run(scenario())


# The requests that name a conversation by chat_id.
CHAT_ID_ACTIONS = [
    ("chat", "setChatRead"),
    ("chat", "delChat"),
    ("chat", "typing"),
]


@pytest.mark.parametrize(("cls", "action"), CHAT_ID_ACTIONS, ids=[f"{c}.{a}" for c, a in CHAT_ID_ACTIONS])
def test_actions_on_a_chat_id_refuse_a_missing_a_malformed_and_someone_elses_conversation(site, server, cls, action):
    alice, bob, carol = site.users(3)
    others = private_chat_id(bob.id, carol.id)

    async def scenario():
        async with await Client.as_user(server, bob) as b, await Client.as_user(server, alice) as a:
            await send_ok(b, send_msg_frame(carol.id, "not for alice"))
            missing = await a.request(cls, action, {"role_type": 0})
            assert missing["code"] == 0 and "chat_id" in missing["msg"], missing
            malformed = await a.request(cls, action, {"chat_id": "not-a-chat"})
            assert malformed["code"] == 0 and "chat_id" in malformed["msg"], malformed
            foreign = await a.request(cls, action, {"chat_id": others})
            assert foreign["code"] in (-403, -404), foreign
            assert not [f for f in await b.settle() if f["code"] in (301, 302)]
            record = await a.request("user", "chatRecord", {"chat_id": others})
            assert record["code"] in (-403, -404), record

    run(scenario())


def test_friend_list_shows_the_chat_partner_and_counts_them_online(site, server):
    alice, bob = site.users(2)

    async def scenario():
        async with await Client.as_user(server, alice) as a:
            async with await Client.as_user(server, bob):
                await send_ok(a, send_msg_frame(bob.id, "be my friend"))
                reply = await a.request("user", "friendList")
                assert reply["code"] == 100, reply
                mine, groups = reply["result"]["mine"], reply["result"]["friend"]
                assert mine["id"] == alice.id and mine["nickname"] == alice.name
                assert_absolute_http_url(mine["avatar"], server)
                assert [friend["id"] for friend in groups[0]["list"]] == [bob.id]
                assert groups[0]["online"] == 1
            deadline = time.monotonic() + 5
            while (await a.request("user", "friendList"))["result"]["friend"][0]["online"] != 0:
                assert time.monotonic() < deadline, "bob still counted online after closing his socket"
                await asyncio.sleep(0.1)

    run(scenario())


# --- Error paths of PROTOCOL.md section 2 ---------------------------------------------------------

PONG = {"code": -1, "msg": "PONG", "result": None}

# (id, raw frame, expected reply: a dict for an exact match, or (code, text the msg must contain)).
BAD_FRAMES = [
    ("text ping", "ping", PONG),
    ("not json", "{oops", PONG),
    ("json array", "[1, 2]", PONG),
    ("json number", "42", PONG),
    ("json string", '"chat"', PONG),
    ("json null", "null", PONG),
    ("json true", "true", PONG),
    ("no class", '{"action": "sendMsg", "content": {}}', PONG),
    ("class null", '{"class": null, "action": "sendMsg"}', PONG),
    ("class empty", '{"class": "", "action": "sendMsg"}', PONG),
    ("no action", '{"class": "chat", "content": {}}', {"code": 0, "msg": "missing action", "result": None}),
    ("action null", '{"class": "chat", "action": null}', {"code": 0, "msg": "missing action", "result": None}),
    ("action empty", '{"class": "chat", "action": ""}', {"code": 0, "msg": "missing action", "result": None}),
    ("unknown action", '{"class": "Chat", "action": "flyAway"}',
     {"code": 0, "msg": "unknown action Chat.flyAway", "result": None}),
    ("unknown class", '{"class": "Nosuch", "action": "sendMsg"}',
     {"code": 0, "msg": "unknown action Nosuch.sendMsg", "result": None}),
    ("content array", '{"class": "user", "action": "recentChat", "content": [1]}', (0, "content")),
    ("content string", '{"class": "user", "action": "recentChat", "content": "x"}', (0, "content")),
    ("content number", '{"class": "user", "action": "recentChat", "content": 5}', (0, "content")),
    ("binary frame", b'{"class": "user", "action": "recentChat"}',
     {"code": 0, "msg": "text frames only", "result": None}),
]


@pytest.mark.parametrize(("frame", "expected"), [case[1:] for case in BAD_FRAMES], ids=[c[0] for c in BAD_FRAMES])
def test_a_bad_frame_gets_its_answer_and_the_socket_keeps_working(site, server, frame, expected):
    alice, bob = site.users(2)

    async def scenario():
        async with await Client.as_user(server, alice) as a, await Client.as_user(server, bob) as b:
            await a.send(frame)
            reply = await a.reply()
            if isinstance(expected, dict):
                assert reply == expected
            else:
                code, text = expected
                assert reply["code"] == code and text in reply["msg"] and reply["result"] is None, reply
            sent = await send_ok(a, send_msg_frame(bob.id, "still here"))
            assert (await b.expect_code(200))["result"]["msg_id"] == sent["msg_id"]

    run(scenario())


def sendmsg_content(**changes) -> dict:
    return {"chat_type": 1, "msg_type": 1, "msg": "hi", "chat_id": "", "shop_id": 0, "role_type": 0, **changes}


# (id, content changes on top of a good private message from alice to bob, expected code, text in msg)
BAD_SENDS = [
    ("chat_type 0", lambda alice, bob: {"chat_type": 0}, 0, "chat_type"),
    ("chat_type missing", lambda alice, bob: {"chat_type": None}, 0, "chat_type"),
    ("chat_type 9", lambda alice, bob: {"chat_type": 9}, 0, "chat_type"),
    ("msg_type 0", lambda alice, bob: {"msg_type": 0}, 0, "msg_type"),
    ("msg_type 3", lambda alice, bob: {"msg_type": 3}, 0, "msg_type"),
    ("msg empty", lambda alice, bob: {"msg": ""}, 0, "msg"),
    ("msg too long", lambda alice, bob: {"msg": "x" * 5001}, 0, "msg"),
    ("image that is no url", lambda alice, bob: {"msg_type": 2, "msg": "not a url"}, 0, "msg"),
    ("image with a relative path", lambda alice, bob: {"msg_type": 2, "msg": "/media/a.png"}, 0, "msg"),
    ("to_uid not a number", lambda alice, bob: {"to_uid": "abc"}, 0, "to_uid"),
    ("no such receiver", lambda alice, bob: {"to_uid": NO_SUCH_USER_ID}, -404, "to_uid"),
    ("system notice from a user", lambda alice, bob: {"chat_type": 3}, -403, ""),
    ("chat_id of other users", lambda alice, bob: {"chat_id": f"{NO_SUCH_USER_ID}_{NO_SUCH_USER_ID + 1}"}, -403, ""),
    ("chat_id not matching to_uid",
     lambda alice, bob: {"chat_id": private_chat_id(alice.id, bob.id), "to_uid": NO_SUCH_USER_ID}, 0, "chat_id"),
    ("message to yourself", lambda alice, bob: {"to_uid": alice.id}, 0, "to_uid"),
]


@pytest.mark.parametrize(("changes", "code", "text"), [case[1:] for case in BAD_SENDS],
                         ids=[case[0] for case in BAD_SENDS])
def test_a_bad_send_msg_is_refused_and_the_socket_keeps_working(site, server, changes, code, text):
    alice, bob = site.users(2)
    content = sendmsg_content(**{"to_uid": bob.id, **changes(alice, bob)})

    async def scenario():
        async with await Client.as_user(server, alice) as a, await Client.as_user(server, bob) as b:
            reply = await a.request("chat", "sendMsg", content, req_id="bad")
            assert reply["code"] == code and text in reply["msg"], reply
            assert reply["result"] is None and reply["req_id"] == "bad"
            assert not [f for f in await b.settle() if f["code"] == 200]
            sent = await send_ok(a, send_msg_frame(bob.id, "still here"))
            assert sent["seq"] == 1, "the refused message must not have taken a seq"
            assert (await b.expect_code(200))["result"]["msg_id"] == sent["msg_id"]

    run(scenario())


def test_an_image_message_with_an_absolute_url_is_delivered(site, server):
    alice, bob = site.users(2)
    url = "https://cdn.example.com/a.png"

    async def scenario():
        async with await Client.as_user(server, alice) as a, await Client.as_user(server, bob) as b:
            await send_ok(a, send_msg_frame(bob.id, url, msg_type=2))
            push = (await b.expect_code(200))["result"]
            assert push["msg_type"] == 2 and push["msg"] == url

    run(scenario())


def test_a_frame_over_the_size_limit_gets_frame_too_large_then_close_4009(site, server):
    alice, bob = site.users(2)

    async def scenario():
        async with await Client.as_user(server, alice) as a:
            await a.send(send_msg_frame(bob.id, "x" * 70_000))
            assert await a.reply() == {"code": 0, "msg": "frame too large", "result": None}
            assert await a.closed() == 4009

    run(scenario())


def test_the_size_limit_counts_bytes_not_characters(site, server):
    alice, bob = site.users(2)

    async def scenario():
        async with await Client.as_user(server, alice) as a:
            # 22,000 CJK characters are 66,000 bytes of UTF-8: over 65,536 though far fewer characters.
            await a.send(send_msg_frame(bob.id, "字" * 22_000))
            assert await a.reply() == {"code": 0, "msg": "frame too large", "result": None}
            assert await a.closed() == 4009

    run(scenario())


def test_a_binary_frame_over_the_size_limit_is_closed_4009_too(site, server):
    (alice,) = site.users(1)

    async def scenario():
        async with await Client.as_user(server, alice) as a:
            await a.send(b"x" * 70_000)
            assert await a.reply() == {"code": 0, "msg": "frame too large", "result": None}
            assert await a.closed() == 4009

    run(scenario())


def test_a_message_of_exactly_the_character_limit_is_delivered(site, server):
    alice, bob = site.users(2)

    async def scenario():
        async with await Client.as_user(server, alice) as a, await Client.as_user(server, bob) as b:
            await send_ok(a, send_msg_frame(bob.id, "字" * 5000))
            assert (await b.expect_code(200))["result"]["msg"] == "字" * 5000

    run(scenario())


def test_a_frame_just_under_the_size_limit_is_answered_normally(site, server):
    alice, bob = site.users(2)

    async def scenario():
        async with await Client.as_user(server, alice) as a:
            overhead = len(json.dumps(send_msg_frame(bob.id, "")).encode())
            frame = send_msg_frame(bob.id, "x" * (65_536 - overhead))
            assert len(json.dumps(frame).encode()) == 65_536
            await a.send(frame)
            reply = await a.reply()
            assert reply["code"] == 0 and "msg" in reply["msg"], reply  # too long a message, not a frame
            await send_ok(a, send_msg_frame(bob.id, "fine"))

    run(scenario())


# --- Frames as the network cuts them ---------------------------------------------------------------
# The server reads a whole, masked text frame itself and leaves anything else to autobahn
# (imchat/frames.py). These write a client's frames straight to the socket, packed and cut as TCP may.


def packed_sends(to_uid: int, count: int) -> tuple[list[str], bytes]:
    """`count` sendMsg frames (short and over 125 bytes: both length encodings) and a ping, in one run of bytes."""
    texts = [f"packed {n} " + "长" * (60 * n) for n in range(count)]
    frames = [client_frame(json.dumps(send_msg_frame(to_uid, text), ensure_ascii=False)) for text in texts]
    return texts, b"".join(frames) + client_frame("ping")


async def answered_in_order(sender: Client, receiver: Client, texts: list[str]) -> None:
    replies = [await sender.reply() for _ in texts]
    assert [reply["code"] for reply in replies] == [1] * len(texts), replies
    assert [reply["result"]["seq"] for reply in replies] == sorted({reply["result"]["seq"] for reply in replies})
    assert await sender.reply() == PONG
    assert [(await receiver.expect_code(200))["result"]["msg"] for _ in texts] == texts


def test_requests_packed_in_one_write_are_answered_in_order(site, server):
    alice, bob = site.users(2)

    async def scenario():
        async with await Client.as_user(server, alice) as a, await Client.as_user(server, bob) as b:
            texts, data = packed_sends(bob.id, 5)
            a.ws.transport.write(data)
            await answered_in_order(a, b, texts)

    run(scenario())


def test_requests_cut_at_every_byte_are_answered_in_order(site, server):
    alice, bob = site.users(2)

    async def scenario():
        async with await Client.as_user(server, alice) as a, await Client.as_user(server, bob) as b:
            texts, data = packed_sends(bob.id, 3)
            for index in range(len(data)):
                a.ws.transport.write(data[index:index + 1])
                await asyncio.sleep(0.0005)
            await answered_in_order(a, b, texts)

    run(scenario())


def test_a_message_in_fragments_with_a_ping_between_is_one_request(site, server):
    (alice,) = site.users(1)

    async def scenario():
        async with await Client.as_user(server, alice) as a:
            a.ws.transport.write(client_frame('{"class": "user", ', fin=False) + client_frame(b"", Opcode.PING)
                                 + client_frame('"action": "recentChat"}', Opcode.CONT) + client_frame("ping"))
            assert (await a.reply())["code"] == 102
            assert await a.reply() == PONG
            for part in (client_frame('{"class": "user", ', fin=False), client_frame(b"", Opcode.PING),
                         client_frame('"action": ', Opcode.CONT, fin=False),
                         client_frame('"recentChat"}', Opcode.CONT), client_frame("ping")):
                a.ws.transport.write(part)  # each in a read of its own
                await asyncio.sleep(0.05)
            assert (await a.reply())["code"] == 102
            assert await a.reply() == PONG

    run(scenario())


def test_a_whole_text_frame_inside_a_fragmented_message_drops_the_socket(site, server):
    """RFC 6455 5.4: a data frame other than a continuation while a message is open is a protocol error."""
    (alice,) = site.users(1)

    async def scenario():
        async with await Client.as_user(server, alice) as a:
            a.ws.transport.write(client_frame('{"class": "user", ', fin=False))
            await asyncio.sleep(0.1)
            a.ws.transport.write(client_frame("ping"))
            assert await a.closed() == 1006
            assert a.buffer == []

    run(scenario())


@pytest.mark.parametrize("odd_one", [
    pytest.param(client_frame(b'{"msg": "\xff"}'), id="invalid UTF-8"),
    pytest.param(Frame(Opcode.TEXT, b"ping").serialize(mask=False), id="unmasked"),
])
def test_a_broken_frame_among_good_ones_drops_only_its_own_socket(site, server, odd_one):
    """autobahn fails such a connection by dropping it (RFC 6455 7.1.7); the server and others go on."""
    alice, bob = site.users(2)

    async def scenario():
        async with await Client.as_user(server, alice) as a, await Client.as_user(server, bob) as b:
            a.ws.transport.write(client_frame("ping") + odd_one + client_frame("ping"))
            assert await a.closed() == 1006
            await b.ready()
            async with await Client.as_user(server, alice) as again:
                await send_ok(again, send_msg_frame(bob.id, "after the broken frame"))
                assert (await b.expect_code(200))["result"]["msg"] == "after the broken frame"

    run(scenario())


@pytest.fixture(scope="module")
def pinging_server(site) -> Server:
    """One more daphne on the same site that pings a socket idle for a second and drops it two
    seconds later unless answered (daphne's keepalive; its checks run every 2 s)."""
    (started,) = site.start(1, options=("--ping-interval", "1", "--ping-timeout", "2"))
    return started


class RawSocket:
    """websockets' sans-I/O client on a bare connection, its pongs never sent: it never answers the
    server's pings (as a client busy elsewhere may not)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, protocol: ClientProtocol):
        self.reader, self.writer, self.protocol = reader, writer, protocol
        self.pings = self.texts = 0

    @classmethod
    async def open(cls, server: Server, user: User) -> "RawSocket":
        protocol = ClientProtocol(parse_uri(server.socket_url(user.token)))
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        protocol.send_request(protocol.connect())
        writer.write(b"".join(protocol.data_to_send()))
        while protocol.state is State.CONNECTING:
            protocol.receive_data(await asyncio.wait_for(reader.read(1 << 16), 5))
        assert protocol.state is State.OPEN, protocol.handshake_exc
        return cls(reader, writer, protocol)

    async def read_until_closed(self) -> None:
        """Count the server's frames (pings, texts) until it closes the connection."""
        while True:
            try:
                data = await self.reader.read(1 << 16)
            except ConnectionError:
                return
            if not data:
                return
            self.protocol.receive_data(data)
            self.protocol.data_to_send()  # its pongs: dropped
            for event in self.protocol.events_received():
                if isinstance(event, Frame):
                    self.pings += event.opcode is Opcode.PING
                    self.texts += event.opcode is Opcode.TEXT


def test_requests_keep_a_socket_whose_pongs_are_late_as_autobahn_would(site, pinging_server):
    """A data frame stands in for the pong a ping waits for (autobahn's autoPingRestartOnAnyTraffic),
    also for the frames the server reads without autobahn."""
    (alice,) = site.users(1)

    async def scenario():
        sock = await RawSocket.open(pinging_server, alice)
        reading = asyncio.ensure_future(sock.read_until_closed())
        for _ in range(8):  # 12 s, idle long enough between requests to be pinged; no ping answered
            sock.writer.write(client_frame("ping"))
            await asyncio.sleep(1.5)
        assert not reading.done(), "dropped while sending requests"
        assert sock.pings >= 2 and sock.texts == 8, (sock.pings, sock.texts)
        sock.writer.close()
        await reading

    run(scenario())


def test_a_silent_socket_that_never_answers_a_ping_is_dropped(site, pinging_server):
    """The control for the test above: the same server does drop an unanswered ping."""
    (alice,) = site.users(1)

    async def scenario():
        sock = await RawSocket.open(pinging_server, alice)
        await asyncio.wait_for(sock.read_until_closed(), 10)
        assert sock.pings >= 1

    run(scenario())


# --- Credentials (PROTOCOL.md section 1) ----------------------------------------------------------

BAD_CREDENTIALS = [
    ("missing", lambda user: None),
    ("empty", lambda user: ""),
    ("garbage", lambda user: "not-a-jwt"),
    ("wrong secret", lambda user: craft_token(user.id, secret="another-secret-" + "x" * 32)),
    ("expired", lambda user: craft_token(user.id, ttl=-60)),
    ("wrong issuer", lambda user: craft_token(user.id, issuer="someone-else")),
    ("alg none", lambda user: craft_token(user.id, algorithm="none")),
    ("HS512", lambda user: craft_token(user.id, algorithm="HS512")),
    ("no user id", lambda user: craft_token(None)),
    ("user that does not exist", lambda user: craft_token(NO_SUCH_USER_ID)),
]


@pytest.mark.parametrize("make_token", [case[1] for case in BAD_CREDENTIALS], ids=[c[0] for c in BAD_CREDENTIALS])
def test_bad_credentials_get_code_minus_200_then_close_4401(site, server, make_token):
    (user,) = site.users(1)
    token = make_token(user)

    async def scenario():
        client = await Client.open(server.socket_url(token) if token is not None else server.ws_url)
        try:
            first = await client.reply()
            assert list(first) == ["code", "msg", "result"]
            assert first["code"] == -200 and isinstance(first["msg"], str) and first["msg"], first
            assert first["result"] is None
            assert await client.closed() == 4401
            assert client.buffer == [], "nothing may follow the -200 frame"
        finally:
            await client.close()

    run(scenario())


def test_an_open_socket_is_not_cut_when_its_token_expires(site, server):
    alice, bob = site.users(2)

    async def scenario():
        token = craft_token(alice.id, ttl=2)
        async with await Client.open(server.socket_url(token)) as a:
            await a.ready()
            await asyncio.sleep(2.5)
            sent = await send_ok(a, send_msg_frame(bob.id, "my token expired meanwhile"))
            assert sent["seq"] == 1
            async with await Client.open(server.socket_url(token)) as late:
                assert (await late.reply())["code"] == -200, "the token should have expired by now"

    run(scenario())


def test_a_token_minted_by_the_mall_with_sub_is_accepted(site, server):
    (user,) = site.users(1)

    async def scenario():
        token = craft_token(None, sub=str(user.id))
        async with await Client.open(server.socket_url(token)) as client:
            await client.ready()

    run(scenario())


@pytest.mark.parametrize(
    "header",
    [
        ("authorizations", "bear {token}"),
        ("authorizations", "Bearer {token}"),
        ("authorizations", "{token}"),
        ("Authorization", "Bearer {token}"),
    ],
    ids=["authorizations bear", "authorizations Bearer", "authorizations bare token", "Authorization Bearer"],
)
def test_header_credentials_open_a_working_socket(site, server, header):
    alice, bob = site.users(2)
    name, template = header

    async def scenario():
        headers = {name: template.format(token=alice.token)}
        async with await Client.open(server.ws_url, additional_headers=headers) as a:
            await a.ready()
            async with await Client.as_user(server, bob) as b:
                await send_ok(a, send_msg_frame(bob.id, "via a header"))
                assert (await b.expect_code(200))["result"]["id"] == alice.id

    run(scenario())


def test_the_query_token_wins_over_a_header(site, server):
    alice, bob = site.users(2)

    async def scenario():
        headers = {"authorizations": f"bear {bob.token}"}
        async with await Client.open(server.socket_url("not-a-jwt"), additional_headers=headers) as client:
            assert (await client.reply())["code"] == -200
            assert await client.closed() == 4401
        async with await Client.open(server.socket_url(alice.token), additional_headers=headers) as client:
            await client.ready()
            mine = (await client.request("user", "friendList"))["result"]["mine"]
            assert mine["id"] == alice.id

    run(scenario())


@pytest.mark.parametrize("path", ["/ws/", "/ws"])
def test_the_ws_path_is_an_alias_of_the_root(site, server, path):
    alice, bob = site.users(2)

    async def scenario():
        async with await Client.as_user(server, alice, path=path) as a, await Client.as_user(server, bob) as b:
            await send_ok(a, send_msg_frame(bob.id, f"via {path}"))
            assert (await b.expect_code(200))["result"]["msg"] == f"via {path}"

    run(scenario())


# --- Origin (PROTOCOL.md sections 1 and 8) --------------------------------------------------------


def test_a_handshake_without_origin_is_accepted(site, server):
    (alice,) = site.users(1)

    async def scenario():
        async with await Client.as_user(server, alice) as client:
            assert "Origin" not in client.ws.request.headers

    run(scenario())


@pytest.mark.parametrize("origin", ["http://localhost:{port}", "http://127.0.0.1:{port}", "http://localhost"])
def test_a_browser_origin_from_allowed_hosts_is_accepted(site, server, origin):
    (alice,) = site.users(1)

    async def scenario():
        async with await Client.as_user(server, alice, origin=origin.format(port=server.port)) as client:
            assert client.ws.request.headers["Origin"] == origin.format(port=server.port)

    run(scenario())


@pytest.mark.parametrize("origin", ["http://evil.example", "http://localhost.evil.example", "null"])
def test_a_browser_origin_from_elsewhere_is_refused_with_http_403(site, server, origin):
    (alice,) = site.users(1)

    async def scenario():
        with pytest.raises(InvalidStatus) as refused:
            await Client.open(server.socket_url(alice.token), origin=origin)
        assert refused.value.response.status_code == 403

    run(scenario())


def test_http_get_root_answers_and_the_compat_paths_need_no_trailing_slash(site, server):
    (alice,) = site.users(1)
    assert httpx.get(server.http_url + "/", timeout=5, trust_env=False).status_code == 200
    for path in ("/user/index", "/user/index/"):
        body = http_post(server, path, token=alice.token)
        assert body["code"] == 1 and body["result"]["mine"]["id"] == alice.id, body
