"""Group chat and system notices against real daphne processes and real WebSocket clients.

One SQLite site (one process, in-memory layer) for a group's life, and the scale-out site (PostgreSQL,
Redis, two processes) for a notice to everyone sent by `manage.py sendnotice --all` while 200 users
are connected across both processes.
"""

import asyncio

import psycopg
import pytest

from tests.e2e.harness import Client, Server, Site, User, run, send_ok

pytestmark = pytest.mark.e2e

CONNECTED_USERS = 200
CONNECT_BATCH = 50


def group_frame(group_id: int, msg: str) -> dict:
    """chat.sendMsg to a group, as the compat client builds it."""
    return {"class": "chat", "action": "sendMsg",
            "content": {"to_uid": group_id, "chat_type": 2, "msg_type": 1, "msg": msg, "chat_id": "", "shop_id": 0,
                        "role_type": 0}}


async def unread(client: Client, chat_id: str) -> tuple[int | None, dict]:
    """The caller's unread count for chat_id (None if not listed), and their whole recentChat result."""
    reply = await client.request("user", "recentChat", {"is_service": False})
    assert reply["code"] == 102, reply
    rows = [row for row in reply["result"]["rows"] if row["chat_id"] == chat_id]
    return (rows[0]["unread_count"] if rows else None), reply["result"]


def codes(frames: list[dict]) -> list[int]:
    return [frame["code"] for frame in frames]


# --- A group's life on one process ---------------------------------------------------------------


def test_a_three_member_group_chats_and_a_kicked_member_is_cut_off(sqlite_site: Site):
    server = sqlite_site.servers[0]
    alice, bob, carol = sqlite_site.users(3)

    async def scenario():
        async with (
            await Client.as_user(server, alice) as phone,
            await Client.as_user(server, alice) as laptop,
            await Client.as_user(server, bob) as b,
            await Client.as_user(server, carol) as c,
        ):
            everyone = {"phone": phone, "laptop": laptop, "bob": b, "carol": c}
            # alice creates the group from her phone; bob and carol hear they (not she) were invited
            created = await phone.request("group", "create", {"name": "Hikers", "uids": [bob.id, carol.id]})
            assert created["code"] == 1, created
            group_id, chat_id = created["result"]["group_id"], created["result"]["chat_id"]
            assert chat_id == f"g{group_id}"
            for member in (b, c):
                invited = (await member.expect_code(306))["result"]
                assert (invited["event"], invited["group_id"]) == ("invited", group_id)
                assert invited["uids"] == [bob.id, carol.id]
            for client in everyone.values():
                await client.settle(quiet=0.1)

            # each member writes once: the two others get 200, the sender's other socket 307
            turns = [("phone", alice, "from alice"), ("bob", bob, "from bob"), ("carol", carol, "from carol")]
            for name, user, text in turns:
                sent = await send_ok(everyone[name], group_frame(group_id, text))
                frames = {other: await client.settle(quiet=0.1) for other, client in everyone.items()}
                expected = {
                    other: ([] if other == name else [307] if user == alice and other == "laptop" else [200])
                    for other in everyone
                }
                assert {other: codes(got) for other, got in frames.items()} == expected, frames
                for got in frames.values():
                    for frame in got:
                        result = frame["result"]
                        assert (result["msg_id"], result["msg"], result["chat_id"]) == (sent["msg_id"], text, chat_id)
                        assert (result["chat_type"], result["id"], result["to_uid"]) == (2, user.id, group_id)

            # unread counts: what others wrote since each one last wrote
            assert (await unread(phone, chat_id))[0] == 2
            assert (await unread(b, chat_id))[0] == 1
            assert (await unread(c, chat_id))[0] == 0

            # alice kicks carol: carol hears it, then nothing more, and may no longer send
            kicked = await phone.request("group", "kick", {"group_id": group_id, "uid": carol.id})
            assert kicked["code"] == 1, kicked
            event = (await c.expect_code(306))["result"]
            assert (event["event"], event["uids"]) == ("kicked", [carol.id])
            await c.settle(quiet=0.1)
            for client in (phone, laptop, b):
                await client.settle(quiet=0.1)

            after = await send_ok(b, group_frame(group_id, "carol is gone"))
            for client in (phone, laptop):
                assert (await client.expect_code(200))["result"]["msg_id"] == after["msg_id"]
            assert await c.settle() == []
            refused = await c.request("chat", "sendMsg", group_frame(group_id, "let me back")["content"])
            assert refused["code"] == -403, refused
            for client in (phone, laptop, b):
                assert not [f for f in await client.settle(quiet=0.1) if f["code"] in (200, 307)]

            # and carol's list stops where she left: "from carol", nothing unread
            count, result = await unread(c, chat_id)
            row = next(row for row in result["rows"] if row["chat_id"] == chat_id)
            assert (count, row["last_msg"]) == (0, "from carol")
            assert (await unread(phone, chat_id))[0] == 3

    run(scenario())


# --- A notice to everyone across two processes ---------------------------------------------------


async def connect_all(servers: list[Server], users: list[User]) -> list[Client]:
    """One socket per user, alternating between the processes, opened in batches."""
    clients: list[Client] = []
    for start in range(0, len(users), CONNECT_BATCH):
        batch = users[start:start + CONNECT_BATCH]
        clients += await asyncio.gather(*(
            Client.as_user(servers[(start + offset) % len(servers)], user) for offset, user in enumerate(batch)
        ))
    return clients


@pytest.mark.postgres
@pytest.mark.redis
def test_a_notice_to_everyone_reaches_200_users_on_two_processes_exactly_once(scale_out_site: Site):
    site = scale_out_site
    users = site.users(CONNECTED_USERS + 1)
    connected, offline = users[:CONNECTED_USERS], users[-1]
    text = "Scheduled maintenance at 02:00"

    async def scenario():
        clients = await connect_all(site.servers, connected)
        try:
            assert {client.label.rsplit("@", 1)[1] for client in clients} == {str(s.port) for s in site.servers}

            # when staff send a notice to everyone from the command line
            output = await asyncio.to_thread(site.manage, "sendnotice", "--all", text)
            notice_id = int(output.strip().splitlines()[-1])

            # then every connected user gets it once, as a code-200 system message
            pushes = await asyncio.gather(*(client.expect_code(200) for client in clients))
            for push in pushes:
                result = push["result"]
                assert (result["chat_type"], result["chat_id"], result["msg"]) == (3, "sys_0", text)
                assert (result["from_uid"], result["to_uid"]) == (0, 0) and "id" not in result
            rest = await asyncio.gather(*(client.settle(quiet=0.2) for client in clients))
            assert [frames for frames in rest if any(f["code"] == 200 for f in frames)] == []
        finally:
            await asyncio.gather(*(client.close() for client in clients), return_exceptions=True)

        # and a user who was offline sees it, unread, when they next look
        async with await Client.as_user(site.servers[1], offline) as late:
            count, result = await unread(late, "sys_0")
            assert count == 1 and result["unread_count"] == 1, result
        return notice_id

    notice_id = run(scenario(), timeout=90)

    with psycopg.connect(site.postgres_url) as db:
        notices = db.execute("SELECT id FROM chat_notice").fetchall()
        stored = db.execute(
            "SELECT count(*) FROM chat_message m JOIN chat_conversation c ON c.id = m.conversation_id "
            "WHERE c.chat_id = 'sys_0'"
        ).fetchone()[0]
    assert notices == [(notice_id,)] and stored == 1
