"""Customer service end to end: real daphne processes, real sockets, the compat client's frames.

Covers PROTOCOL.md sections 4 (chat.sendMsg chat_type 4, service.*, user.recentChat is_service)
and 5 (routing): sticky sessions, hand-back by status and by dropped sockets after the grace,
the queue with the shop's offline notice, transfer and close, impostors, capacity under
concurrent arrivals on two processes, presence of a killed process, and the merchant's admin.

The routing tests run twice: on SQLite with the in-memory layer (one process), and on PostgreSQL
and Redis with two processes, agents and consumers spread over both. Both sites are this module's
own, started with a one-second agent grace so the grace can be waited out; the test of the grace
after a crashed process starts a third site with a longer grace. Shops and agents are made with
the `createshop` and `addagent` commands.
"""

import asyncio
import json
import re
import secrets
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
import psycopg
import pytest

from tests.e2e.harness import (Client, Server, Site, User, base_env, postgres_redis_deployment, run, send_msg_frame,
                               send_ok)

pytestmark = pytest.mark.e2e

GRACE_SECONDS = 1
PRESENCE_TTL_SECONDS = 3  # harness.base_env sets IM_PRESENCE_TTL=3
OFFLINE_NOTICE = "We are away right now (e2e notice)."
SITE_SETTINGS = {"IM_AGENT_GRACE_SECONDS": str(GRACE_SECONDS)}
QUIET = 0.25


# --- Sites of this module ---------------------------------------------------------------------------


@contextmanager
def sqlite_deployment(**settings: str) -> Iterator[Site]:
    with tempfile.TemporaryDirectory(prefix="imchat-e2e-cs-") as var_dir:
        site = Site(env=base_env(var_dir, **settings))
        site.migrate()
        try:
            site.start(1)
            yield site
        finally:
            site.stop()


@pytest.fixture(scope="module")
def cs_sqlite_site() -> Iterator[Site]:
    """SQLite, the in-memory layer, one daphne; agent grace 1 s."""
    with sqlite_deployment(**SITE_SETTINGS) as site:
        yield site


@pytest.fixture(scope="module")
def cs_scale_out_site() -> Iterator[Site]:
    """PostgreSQL + Redis, two daphne processes; agent grace 1 s."""
    with postgres_redis_deployment(2, **SITE_SETTINGS) as site:
        yield site


@pytest.fixture(
    scope="module",
    params=[
        pytest.param("cs_sqlite_site", id="sqlite"),
        pytest.param("cs_scale_out_site", id="postgres-redis", marks=[pytest.mark.postgres, pytest.mark.redis]),
    ],
)
def site(request) -> Site:
    return request.getfixturevalue(request.param)


def spread(site: Site, index: int) -> Server:
    """The server for the index-th socket of a test: alternating over the site's first two processes."""
    servers = site.servers[:2]
    return servers[index % len(servers)]


# --- Shops, agents, frames ------------------------------------------------------------------------


@dataclass(frozen=True)
class ShopInfo:
    id: int
    name: str
    agent_records: dict[int, int]  # agent user id -> agent record id


def last_line(output: str) -> str:
    return output.strip().splitlines()[-1]


def open_shop(site: Site, owner: User, agents: list[User] = (), *, status: str = "online", max_sessions: int = 10,
              offline: list[User] = (), cli: bool = False) -> ShopInfo:
    """`createshop` owned by `owner`, then `addagent` for each agent; returns the ids they print.

    Each manage.py process costs over a second here, so by default the commands run through
    `call_command` in one `manage.py shell` (the same commands, parsed the same way); `cli=True`
    runs each as its own manage.py process instead.
    """
    name = f"Shop {secrets.token_hex(3)}"
    wanted = [(agent, status) for agent in agents] + [(agent, "offline") for agent in offline]
    shop_args = ["createshop", name, "--owner", owner.name, "--offline-notice", OFFLINE_NOTICE]
    agent_args = [["addagent", "{shop}", agent.name, "--status", agent_status, "--max-sessions", str(max_sessions)]
                  for agent, agent_status in wanted]
    if cli:
        shop_id = int(last_line(site.manage(*shop_args)))
        records = [int(last_line(site.manage(*[a.format(shop=shop_id) for a in args]))) for args in agent_args]
    else:
        code = (
            "import io, json\n"
            "from django.core.management import call_command\n"
            "def last_line(*args):\n"
            "    out = io.StringIO()\n"
            "    call_command(*args, stdout=out, stderr=io.StringIO())\n"
            "    return int(out.getvalue().strip().splitlines()[-1])\n"
            f"shop = last_line(*{shop_args!r})\n"
            f"records = [last_line(*[a.format(shop=shop) for a in args]) for args in {agent_args!r}]\n"
            "print(json.dumps([shop, records]))\n"
        )
        shop_id, records = json.loads(last_line(site.manage("shell", "-c", code)))
    return ShopInfo(shop_id, name, {agent.id: record for (agent, _), record in zip(wanted, records)})


def service_chat_id(shop_id: int, user_id: int) -> str:
    return f"{shop_id}____{user_id}"


def to_shop(shop_id: int, msg: str, **content) -> dict:
    """A consumer's chat.sendMsg to a shop, exactly as the compat client sends it."""
    return send_msg_frame(shop_id, msg, chat_type=4, **content)


def as_agent(shop_id: int, consumer_id: int, msg: str, **content) -> dict:
    """An agent's reply for the shop."""
    return send_msg_frame(consumer_id, msg, chat_type=4, role_type="service",
                          chat_id=service_chat_id(shop_id, consumer_id), **content)


def is_event(event: str, chat_id: str) -> Callable[[dict], bool]:
    return lambda frame: (frame.get("code") == 305 and frame["result"]["event"] == event
                          and frame["result"]["chat_id"] == chat_id)


def is_message(chat_id: str, seq: int | None = None, code: int = 200) -> Callable[[dict], bool]:
    return lambda frame: (frame.get("code") == code and frame["result"]["chat_id"] == chat_id
                          and (seq is None or frame["result"]["seq"] == seq))


def session_event(chat_id: str, shop_id: int, event: str, agent_uid: int = 0, queue_position: int = 0,
                  **ext) -> dict:
    """A 305's result; `ext` the event's ext fields (queued: eta_seconds; closed: session_id, rate_until)."""
    return {"chat_id": chat_id, "shop_id": shop_id, "event": event, "agent_uid": agent_uid,
            "queue_position": queue_position, **ext}


def compat_part(result: dict) -> dict:
    """The compat fields of a 305 (PROTOCOL.md section 4), without the ext ones."""
    return {key: result[key] for key in ("chat_id", "shop_id", "event", "agent_uid", "queue_position")}


async def collect(client: Client, done: Callable[[list[dict]], bool], *, timeout: float = 8,
                  what: str = "") -> list[dict]:
    """Every push (buffered or new, in arrival order) until `done(pushes)` holds."""
    frames, client.buffer = client.buffer, []
    deadline = time.monotonic() + timeout
    while not done(frames):
        left = deadline - time.monotonic()
        assert left > 0, f"{client.label}: {what or 'expected frames'} not complete within {timeout}s; got {frames}"
        try:
            frames.append(await client._next(left))
        except TimeoutError:
            continue
    return frames


async def quiet(client: Client) -> list[dict]:
    """Pushes that arrive until the socket has been quiet for a moment (nothing expected)."""
    return [frame for frame in await client.settle(quiet=QUIET) if frame.get("code") != -1]


async def stray(*clients: Client, codes: tuple[int, ...] = (200, 305)) -> list[list[dict]]:
    """Per client (checked side by side), the pushes with these codes that arrive before it goes quiet."""
    settled = await asyncio.gather(*(quiet(client) for client in clients))
    return [[frame for frame in frames if frame["code"] in codes] for frames in settled]


def of_code(frames: list[dict], code: int) -> list[dict]:
    return [frame for frame in frames if frame.get("code") == code]


def brief(frames: list[dict]) -> list[str]:
    """Pushes in a line each, for failure messages."""
    lines = []
    for frame in frames:
        result = frame["result"]
        if frame["code"] == 305:
            lines.append(f"305 {result['event']} {result['chat_id']} agent {result['agent_uid']}")
        else:
            lines.append(f"{frame['code']} {result.get('chat_id')} seq {result.get('seq')} to_uid "
                         f"{result.get('to_uid')} {result.get('msg')!r}")
    return lines


# --- 1. Sticky routing ------------------------------------------------------------------------------


def test_a_consumers_messages_keep_going_to_the_agent_who_got_the_session(site):
    owner, first, second, consumer = site.users(4)
    shop = open_shop(site, owner, [first, second])
    chat_id = service_chat_id(shop.id, consumer.id)

    async def scenario():
        async with (
            await Client.as_user(spread(site, 0), first) as a1,
            await Client.as_user(spread(site, 1), second) as a2,
            await Client.as_user(spread(site, 1), consumer) as c,
        ):
            sent = await send_ok(c, to_shop(shop.id, "hello shop"))
            assert sent["chat_id"] == chat_id and sent["seq"] == 1
            assigned = (await c.expect(is_event("assigned", chat_id), what="305 assigned"))["result"]
            serving_id = assigned["agent_uid"]
            assert serving_id in (first.id, second.id)
            assert assigned == session_event(chat_id, shop.id, "assigned", serving_id)
            serving, other = (a1, a2) if serving_id == first.id else (a2, a1)
            assert (await serving.expect(is_event("assigned", chat_id)))["result"] == assigned

            for seq, text in enumerate(["hello shop", "are you there?", "third one"], start=1):
                if seq > 1:
                    assert (await send_ok(c, to_shop(shop.id, text)))["seq"] == seq
                push = (await serving.expect(is_message(chat_id, seq), what=f"200 seq {seq}"))["result"]
                assert push["msg"] == text and push["chat_type"] == 4 and push["shop_id"] == shop.id
                assert push["id"] == consumer.id and push["nickname"] == consumer.name
                assert push["from_uid"] == consumer.id and push["to_uid"] == serving_id

            # The agent answers for the shop: the consumer sees the shop, and the agent's own name aside.
            reply = await send_ok(serving, as_agent(shop.id, consumer.id, "how can I help?"))
            assert reply["chat_id"] == chat_id and reply["seq"] == 4
            answer = (await c.expect(is_message(chat_id, 4)))["result"]
            assert "id" not in answer and answer["nickname"] == shop.name
            assert answer["service_nickname"] == (first if serving is a1 else second).name
            assert answer["from_uid"] == serving_id and answer["to_uid"] == consumer.id

            assert await stray(serving, other, c) == [[], [], []]

            rows = (await serving.request("user", "recentChat", {"is_service": True}))
            assert rows["code"] == 102, rows
            row = next(row for row in rows["result"]["rows"] if row["chat_id"] == chat_id)
            assert row["friend_uid"] == consumer.id and row["shop_id"] == shop.id and row["chat_type"] == 4

    run(scenario())


# --- 2. Fallback ------------------------------------------------------------------------------------


def test_an_agent_going_offline_by_status_hands_the_session_to_another_at_once(site):
    owner, first, second, consumer = site.users(4)
    shop = open_shop(site, owner, [first, second])
    chat_id = service_chat_id(shop.id, consumer.id)

    async def scenario():
        async with (
            await Client.as_user(spread(site, 0), first) as a1,
            await Client.as_user(spread(site, 1), second) as a2,
            await Client.as_user(spread(site, 0), consumer) as c,
        ):
            agents = {first.id: a1, second.id: a2}
            await send_ok(c, to_shop(shop.id, "one"))
            serving_id = (await c.expect(is_event("assigned", chat_id)))["result"]["agent_uid"]
            other_id = second.id if serving_id == first.id else first.id
            serving, other = agents[serving_id], agents[other_id]
            await serving.expect(is_event("assigned", chat_id))
            await send_ok(c, to_shop(shop.id, "two"))
            for seq in (1, 2):
                await serving.expect(is_message(chat_id, seq))
            serving_user = first if serving_id == first.id else second
            laptop = await Client.as_user(spread(site, 1), serving_user)  # the agent's second device

            reply = await serving.request("service", "setStatus", {"status": "offline"})
            assert reply["code"] == 1 and reply["result"] == {"status": "offline", "shop_ids": [shop.id]}, reply
            status = await laptop.expect_code(304)
            assert status["result"] == {"shop_id": shop.id, "uid": serving_id, "status": "offline"}
            await laptop.close()

            pushes = await collect(other, lambda fs: len(of_code(fs, 200)) >= 2, what="305 + backlog")
            assert of_code(pushes, 305)[0]["result"] == session_event(chat_id, shop.id, "assigned", other_id)
            assert pushes.index(of_code(pushes, 305)[0]) < pushes.index(of_code(pushes, 200)[0])
            backlog = [f["result"] for f in of_code(pushes, 200)]
            assert [(m["seq"], m["msg"]) for m in backlog] == [(1, "one"), (2, "two")]
            moved = await c.expect(is_event("assigned", chat_id), what="305 assigned to the other agent")
            assert moved["result"]["agent_uid"] == other_id

            await send_ok(c, to_shop(shop.id, "three"))
            push = (await other.expect(is_message(chat_id, 3)))["result"]
            assert push["msg"] == "three" and push["to_uid"] == other_id
            assert await stray(serving, c, codes=(200, 304, 305, 307)) == [[], []], "304 goes to the other devices"

    run(scenario())


def test_an_agent_whose_sockets_drop_keeps_the_session_for_the_grace_then_it_moves(site):
    owner, first, second, consumer = site.users(4)
    shop = open_shop(site, owner, [first, second])
    chat_id = service_chat_id(shop.id, consumer.id)
    users = {first.id: first, second.id: second}

    async def scenario():
        async with (
            await Client.as_user(spread(site, 0), first) as a1,
            await Client.as_user(spread(site, 1), second) as a2,
            await Client.as_user(spread(site, 1), consumer) as c,
        ):
            agents = {first.id: a1, second.id: a2}
            await send_ok(c, to_shop(shop.id, "before the drop"))
            serving_id = (await c.expect(is_event("assigned", chat_id)))["result"]["agent_uid"]
            other_id = second.id if serving_id == first.id else first.id
            serving, other = agents[serving_id], agents[other_id]
            await serving.expect(is_message(chat_id, 1))

            await serving.close()  # the agent's only socket: the phone lost its connection
            await asyncio.sleep(0.2)
            dropped_at = time.monotonic()
            await send_ok(c, to_shop(shop.id, "within the grace"))
            assert time.monotonic() - dropped_at < GRACE_SECONDS, "too slow to test the grace"
            assert await stray(other, c) == [[], []]

            await asyncio.sleep(max(0.0, dropped_at + GRACE_SECONDS + 0.5 - time.monotonic()))
            await send_ok(c, to_shop(shop.id, "after the grace"))
            pushes = await collect(other, lambda fs: len(of_code(fs, 200)) >= 3, what="305 + backlog + new")
            assert [f["result"] for f in of_code(pushes, 305)] == [
                session_event(chat_id, shop.id, "assigned", other_id)
            ]
            assert [(f["result"]["seq"], f["result"]["msg"]) for f in of_code(pushes, 200)] == [
                (1, "before the drop"), (2, "within the grace"), (3, "after the grace")
            ]
            assert (await c.expect(is_event("assigned", chat_id)))["result"]["agent_uid"] == other_id

            # The first agent comes back and finds the message of the grace in the shop's history.
            async with await Client.as_user(spread(site, 0), users[serving_id]) as back:
                record = await back.request("user", "chatRecord", {"chat_id": chat_id, "role_type": "service"})
                assert record["code"] == 201, record
                rows = record["result"]["rows"]
                assert [(row["msg"], row["to_uid"]) for row in rows] == [
                    ("after the grace", other_id), ("within the grace", serving_id), ("before the drop", serving_id)
                ]
                assert record["result"]["total"] == 3

    run(scenario())


# --- 3. Queue and offline notice --------------------------------------------------------------------


def test_with_no_agent_connected_consumers_queue_with_the_offline_notice_until_an_agent_connects(site):
    owner, agent, *consumers = site.users(5)
    shop = open_shop(site, owner, [agent], max_sessions=2)  # online, but not connected yet
    chat_ids = [service_chat_id(shop.id, consumer.id) for consumer in consumers]

    def assert_offline_notice(result: dict, consumer: User, seq: int) -> None:
        assert "id" not in result, result
        assert result["nickname"] == shop.name and result["msg"] == OFFLINE_NOTICE
        assert result["chat_type"] == 4 and result["shop_id"] == shop.id and result["seq"] == seq
        assert result["from_uid"] == 0 and result["to_uid"] == consumer.id

    async def scenario():
        clients = [await Client.as_user(spread(site, i), consumer) for i, consumer in enumerate(consumers)]
        try:
            for position, (client, consumer, chat_id) in enumerate(zip(clients, consumers, chat_ids), start=1):
                sent = await send_ok(client, to_shop(shop.id, f"question {position}"))
                assert sent["chat_id"] == chat_id and sent["seq"] == 1
                queued = await client.expect(is_event("queued", chat_id), what="305 queued")
                assert queued["result"] == session_event(chat_id, shop.id, "queued", 0, position, eta_seconds=None)
                notice = await client.expect(is_message(chat_id), what="the offline notice")
                assert notice["code"] == 200
                assert_offline_notice(notice["result"], consumers[position - 1], 2)
            # Another message while queued: stored, but no second notice and no new place in the queue.
            assert (await send_ok(clients[0], to_shop(shop.id, "still there?")))["seq"] == 3
            assert await stray(clients[0]) == [[]]

            async with await Client.as_user(spread(site, 1), agent) as a:
                pushes = await collect(a, lambda fs: len(of_code(fs, 200)) >= 5 and len(of_code(fs, 305)) >= 2,
                                       what="two sessions with their backlog")
                pushes = [f for f in pushes if f["code"] in (200, 305)] + [
                    f for f in await quiet(a) if f["code"] in (200, 305)]
                assert [f["result"] for f in of_code(pushes, 305)] == [
                    session_event(chat_ids[0], shop.id, "assigned", agent.id),
                    session_event(chat_ids[1], shop.id, "assigned", agent.id),
                ], "oldest first, and only as many as max_sessions"
                for index, (consumer, chat_id) in enumerate(zip(consumers[:2], chat_ids[:2])):
                    session = [f for f in pushes if f["result"]["chat_id"] == chat_id]
                    assert session[0]["code"] == 305, "the 305 comes before the session's messages"
                    backlog = [f["result"] for f in session[1:]]
                    assert [f["code"] for f in session[1:]] == [200] * len(backlog)
                    assert [m["seq"] for m in backlog] == ([1, 2, 3] if index == 0 else [1, 2])
                    assert backlog[0]["msg"] == f"question {index + 1}" and backlog[0]["from_uid"] == consumer.id
                    assert backlog[0]["to_uid"] == 0, "a message keeps the to_uid it was stored with"
                    assert_offline_notice(backlog[1], consumer, 2)
                    if index == 0:
                        assert backlog[2]["msg"] == "still there?"
                assert len(pushes) == 7

                for client, chat_id in zip(clients[:2], chat_ids[:2]):
                    assigned = await client.expect(is_event("assigned", chat_id), what="305 assigned")
                    assert assigned["result"] == session_event(chat_id, shop.id, "assigned", agent.id)
                moved = await clients[2].expect(is_event("queued", chat_ids[2]), what="the new queue position")
                assert moved["result"] == session_event(chat_ids[2], shop.id, "queued", 0, 1, eta_seconds=None)
                assert await stray(*clients, codes=(305,)) == [[], [], []]
        finally:
            for client in clients:
                await client.close()

    run(scenario())


def test_an_agent_set_online_and_then_freeing_room_takes_the_oldest_queued_sessions(site):
    owner, agent, *consumers = site.users(4)
    shop = open_shop(site, owner, offline=[agent], max_sessions=1)
    chat_ids = [service_chat_id(shop.id, consumer.id) for consumer in consumers]

    async def scenario():
        async with (
            await Client.as_user(spread(site, 0), agent) as a,  # connected, but offline
            await Client.as_user(spread(site, 1), consumers[0]) as c1,
            await Client.as_user(spread(site, 0), consumers[1]) as c2,
        ):
            for position, (client, chat_id) in enumerate(((c1, chat_ids[0]), (c2, chat_ids[1])), start=1):
                await send_ok(client, to_shop(shop.id, f"waiting {position}"))
                queued = await client.expect(is_event("queued", chat_id))
                assert queued["result"]["queue_position"] == position
                await client.expect(is_message(chat_id, 2), what="the offline notice")

            reply = await a.request("service", "setStatus", {"status": "online", "shop_id": shop.id})
            assert reply["code"] == 1, reply
            pushes = await collect(a, lambda fs: len(of_code(fs, 200)) >= 2, what="the oldest session")
            assert [f["result"] for f in of_code(pushes, 305)] == [
                session_event(chat_ids[0], shop.id, "assigned", agent.id)]
            assert [(f["result"]["chat_id"], f["result"]["seq"]) for f in of_code(pushes, 200)] == [
                (chat_ids[0], 1), (chat_ids[0], 2)]
            assert (await c1.expect(is_event("assigned", chat_ids[0])))["result"]["agent_uid"] == agent.id
            assert (await c2.expect(is_event("queued", chat_ids[1])))["result"]["queue_position"] == 1
            assert await stray(a) == [[]], "max_sessions 1: the second stays queued"

            reply = await a.request("service", "close", {"chat_id": chat_ids[0]})
            assert reply["code"] == 1, reply
            pushes = await collect(a, lambda fs: len(of_code(fs, 200)) >= 2, what="the next queued session")
            # Its own close is an echo (only the reply); the session it frees up is a delivery (PROTOCOL.md 2).
            assert [f["result"] for f in of_code(pushes, 305)] == [
                session_event(chat_ids[1], shop.id, "assigned", agent.id)]
            assert [(f["result"]["chat_id"], f["result"]["seq"]) for f in of_code(pushes, 200)] == [
                (chat_ids[1], 1), (chat_ids[1], 2)]
            assert (await c2.expect(is_event("assigned", chat_ids[1])))["result"]["agent_uid"] == agent.id
            assert (await c1.expect(is_event("closed", chat_ids[0])))["result"]["agent_uid"] == agent.id

    run(scenario())


@pytest.mark.postgres
@pytest.mark.redis
def test_setagentstatus_from_the_command_line_hands_sessions_over_live_with_redis(cs_scale_out_site):
    site = cs_scale_out_site
    owner, first, second, consumer = site.users(4)
    shop = open_shop(site, owner, [first], offline=[second])
    chat_id = service_chat_id(shop.id, consumer.id)

    async def scenario():
        async with (
            await Client.as_user(site.servers[0], first) as a1,
            await Client.as_user(site.servers[1], second) as a2,
            await Client.as_user(site.servers[1], consumer) as c,
        ):
            await send_ok(c, to_shop(shop.id, "hello"))
            for client in (a1, c):
                assert (await client.expect(is_event("assigned", chat_id)))["result"]["agent_uid"] == first.id
            await a1.expect(is_message(chat_id, 1))

            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, site.manage, "setagentstatus", str(shop.id), second.name, "online")
            assert (await a2.expect_code(304))["result"] == {"shop_id": shop.id, "uid": second.id, "status": "online"}
            await loop.run_in_executor(None, site.manage, "setagentstatus", str(shop.id), first.name, "offline")
            assert (await a1.expect_code(304))["result"] == {"shop_id": shop.id, "uid": first.id, "status": "offline"}
            pushes = await collect(a2, lambda fs: bool(of_code(fs, 200)), what="305 + backlog")
            assert [f["result"] for f in of_code(pushes, 305)] == [
                session_event(chat_id, shop.id, "assigned", second.id)]
            assert [f["result"]["msg"] for f in of_code(pushes, 200)] == ["hello"]
            assert (await c.expect(is_event("assigned", chat_id)))["result"]["agent_uid"] == second.id

    run(scenario())


# --- 4. Transfer and close --------------------------------------------------------------------------


def test_an_agent_transfers_a_session_to_an_online_colleague_and_closes_it(site):
    owner, first, second, away, consumer = site.users(5)
    shop = open_shop(site, owner, [first, second], offline=[away])
    chat_id = service_chat_id(shop.id, consumer.id)

    async def scenario():
        async with (
            await Client.as_user(spread(site, 0), first) as a1,
            await Client.as_user(spread(site, 1), first) as a1_laptop,
            await Client.as_user(spread(site, 1), second) as a2,
            await Client.as_user(spread(site, 0), second) as a2_laptop,
            await Client.as_user(spread(site, 1), away) as a3,
            await Client.as_user(spread(site, 0), consumer) as c,
        ):
            agents = {first.id: (a1, a1_laptop), second.id: (a2, a2_laptop)}
            await send_ok(c, to_shop(shop.id, "I need help"))
            serving_id = (await c.expect(is_event("assigned", chat_id)))["result"]["agent_uid"]
            target_id = second.id if serving_id == first.id else first.id
            (serving, serving_laptop), (target, target_laptop) = agents[serving_id], agents[target_id]
            for client in (serving, serving_laptop):
                await client.expect(is_event("assigned", chat_id))
                await client.expect(is_message(chat_id, 1))

            refused = await serving.request("service", "transfer", {"chat_id": chat_id, "to_uid": away.id})
            assert refused["code"] == 0 and "to_uid" in refused["msg"], refused
            refused = await serving.request("service", "transfer", {"chat_id": chat_id, "to_uid": consumer.id})
            assert refused["code"] == 0, refused

            reply = await serving.request("service", "transfer", {"chat_id": chat_id, "to_uid": target_id})
            assert reply["code"] == 1 and reply["result"] == {"chat_id": chat_id, "agent_uid": target_id}, reply
            transferred = session_event(chat_id, shop.id, "transferred", target_id)
            # PROTOCOL.md 2: an echo for the acting agent, so their other socket hears it, the acting one not.
            for client in (serving_laptop, target, target_laptop, c):
                assert (await client.expect(is_event("transferred", chat_id)))["result"] == transferred

            await send_ok(c, to_shop(shop.id, "after the transfer"))
            assert (await target.expect(is_message(chat_id, 2)))["result"]["to_uid"] == target_id
            assert await stray(serving, serving_laptop) == [[], []]

            reply = await target.request("service", "close", {"chat_id": chat_id})
            assert reply["code"] == 1 and reply["result"] == {"chat_id": chat_id}, reply
            closed = session_event(chat_id, shop.id, "closed", target_id)
            for client in (target_laptop, serving, serving_laptop, a3, c):
                result = (await client.expect(is_event("closed", chat_id), what="305 closed"))["result"]
                assert compat_part(result) == closed and result["rate_until"] > time.time() + 3600
                assert isinstance(result["session_id"], int)
            assert await stray(serving, target) == [[], []]  # no 305 of its own action on the acting socket

            # A new session: back to the agent who served this consumer last, though the other has waited longer.
            await send_ok(c, to_shop(shop.id, "one more question"))
            reopened = session_event(chat_id, shop.id, "assigned", target_id)
            assert (await c.expect(is_event("assigned", chat_id)))["result"] == reopened
            pushes = await collect(target, lambda fs: bool(of_code(fs, 200)), what="305 + the new message")
            assert [f["result"] for f in of_code(pushes, 305)] == [reopened]
            assert [(m["result"]["seq"], m["result"]["msg"]) for m in of_code(pushes, 200)] == [
                (3, "one more question")]
            assert await stray(serving, target) == [[], []]

    run(scenario())


# --- 5. Impostors -----------------------------------------------------------------------------------


def test_only_the_shops_agents_may_speak_for_it_and_nobody_writes_into_anothers_chat(site):
    owner, agent, victim, impostor, other_owner, other_agent = site.users(6)
    shop = open_shop(site, owner, [agent])
    open_shop(site, other_owner, [other_agent])
    chat_id = service_chat_id(shop.id, victim.id)

    async def scenario():
        async with (
            await Client.as_user(spread(site, 0), agent) as a,
            await Client.as_user(spread(site, 1), victim) as v,
            await Client.as_user(spread(site, 0), impostor) as i,
            await Client.as_user(spread(site, 1), other_agent) as o,
        ):
            await send_ok(v, to_shop(shop.id, "my order number is 42"))
            assigned = session_event(chat_id, shop.id, "assigned", agent.id)
            for client in (a, v):
                assert (await client.expect(is_event("assigned", chat_id)))["result"] == assigned
            await a.expect(is_message(chat_id, 1))

            forbidden = [
                (i, as_agent(shop.id, victim.id, "consumer posing as the shop")),
                (i, send_msg_frame(victim.id, "role_type 1", chat_type=4, role_type=1, shop_id=shop.id)),
                (i, as_agent(shop.id, impostor.id, "into my own chat as the shop")),
                (o, as_agent(shop.id, victim.id, "an agent of another shop")),
            ]
            for client, frame in forbidden:
                await client.send(frame)
                reply = await client.reply()
                assert reply["code"] == -403 and reply["result"] is None, (frame, reply)

            await i.send(to_shop(shop.id, "writing into someone else's chat", chat_id=chat_id))
            reply = await i.reply()
            assert reply["code"] in (0, -403) and "chat_id" in reply["msg"], reply

            # The shop's own agent may not write first to someone who never wrote to the shop.
            await a.send(as_agent(shop.id, impostor.id, "the shop writing first"))
            reply = await a.reply()
            assert reply["code"] == -404 and reply["result"] is None, reply

            assert await stray(v, a, o, i, codes=(200, 305, 307)) == [[], [], [], []]
            for client, content in ((v, {"chat_id": chat_id}), (a, {"chat_id": chat_id, "role_type": "service"})):
                record = await client.request("user", "chatRecord", content)
                assert record["code"] == 201 and record["result"]["total"] == 1, record
                assert [row["msg"] for row in record["result"]["rows"]] == ["my order number is 42"]
            reply = await i.request("user", "recentChat", {"is_service": True})
            assert reply["code"] == -403, reply
            reply = await i.request("user", "recentChat", {"is_service": False})
            assert not [row for row in reply["result"]["rows"] if row["chat_type"] == 4], reply

    run(scenario())


# --- 6. Capacity under concurrency (PostgreSQL + Redis, two processes) ------------------------------


@pytest.mark.postgres
@pytest.mark.redis
def test_consumers_arriving_at_once_on_two_processes_never_push_an_agent_over_capacity(cs_scale_out_site):
    site = cs_scale_out_site
    owner, first, second, *consumers = site.users(13)
    shop = open_shop(site, owner, [first, second], max_sessions=2)

    async def scenario():
        a1 = await Client.as_user(site.servers[0], first)
        a2 = await Client.as_user(site.servers[1], second)
        clients = [await Client.as_user(spread(site, i), consumer) for i, consumer in enumerate(consumers)]
        try:
            replies = await asyncio.gather(*(
                send_ok(client, to_shop(shop.id, f"rush {n}")) for n, client in enumerate(clients)
            ))
            assert [reply["seq"] for reply in replies] == [1] * len(clients)

            async def only_305(client: Client, chat_id: str) -> dict:
                event = await client.expect(lambda f: f["code"] == 305 and f["result"]["chat_id"] == chat_id,
                                            what="a 305")
                assert of_code(await quiet(client), 305) == [], "exactly one 305 per consumer"
                return event["result"]

            events = await asyncio.gather(*(
                only_305(client, service_chat_id(shop.id, consumer.id)) for client, consumer in zip(clients, consumers)
            ))
            assigned = [e for e in events if e["event"] == "assigned"]
            queued = [e for e in events if e["event"] == "queued"]
            assert len(assigned) == 4 and len(queued) == 6, events
            assert sorted(e["agent_uid"] for e in assigned) == sorted([first.id] * 2 + [second.id] * 2)
            assert sorted(e["queue_position"] for e in queued) == [1, 2, 3, 4, 5, 6]
            for agent, client in ((first, a1), (second, a2)):
                pushes = await collect(client, lambda fs: len(of_code(fs, 305)) >= 2 and len(of_code(fs, 200)) >= 2)
                pushes += await quiet(client)
                mine = {e["chat_id"] for e in assigned if e["agent_uid"] == agent.id}
                assert {f["result"]["chat_id"] for f in of_code(pushes, 305)} == mine
                assert len(of_code(pushes, 305)) == 2 and len(of_code(pushes, 200)) == 2, pushes
        finally:
            for client in [a1, a2, *clients]:
                await client.close()

    run(scenario())
    with psycopg.connect(site.postgres_url) as db:
        open_by_agent = dict(db.execute(
            "SELECT agent_id, count(*) FROM customer_service_servicesession "
            "WHERE shop_id = %s AND state = 'open' GROUP BY agent_id", [shop.id]).fetchall())
        states = dict(db.execute(
            "SELECT state, count(*) FROM customer_service_servicesession WHERE shop_id = %s GROUP BY state",
            [shop.id]).fetchall())
    assert open_by_agent == {first.id: 2, second.id: 2}
    assert states == {"open": 4, "queued": 6}


# --- 7. Presence across processes ------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.redis
def test_an_agent_on_a_killed_process_gets_no_new_messages_after_the_presence_ttl_and_grace(cs_scale_out_site):
    site = cs_scale_out_site
    live = site.servers[0]
    (doomed,) = site.start(1)  # a third process of this module's own site, so the others keep serving
    owner, far, near, consumer, newcomer = site.users(5)
    shop = open_shop(site, owner, [far, near])
    chat_id = service_chat_id(shop.id, consumer.id)
    new_chat_id = service_chat_id(shop.id, newcomer.id)

    async def scenario():
        f = await Client.as_user(doomed, far)
        try:
            async with await Client.as_user(live, consumer) as c:
                await send_ok(c, to_shop(shop.id, "to whoever is there"))
                assigned = await c.expect(is_event("assigned", chat_id))
                assert assigned["result"]["agent_uid"] == far.id, "the only connected agent is on process 2"
                assert (await f.expect(is_message(chat_id, 1)))["result"]["to_uid"] == far.id

                async with await Client.as_user(live, near) as n:
                    doomed.kill()  # SIGKILL: no disconnect is ever recorded for the far agent's socket
                    killed_at = time.monotonic()
                    await asyncio.sleep(max(0.0, killed_at + PRESENCE_TTL_SECONDS + GRACE_SECONDS + 0.5
                                            - time.monotonic()))
                    await send_ok(c, to_shop(shop.id, "anyone alive?"))
                    moved = await c.expect(is_event("assigned", chat_id), what="305 assigned to the live agent")
                    assert moved["result"]["agent_uid"] == near.id
                    pushes = await collect(n, lambda fs: len(of_code(fs, 200)) >= 2, what="305 + backlog")
                    assert [x["result"]["agent_uid"] for x in of_code(pushes, 305)] == [near.id]
                    assert [(x["result"]["seq"], x["result"]["to_uid"]) for x in of_code(pushes, 200)] == [
                        (1, far.id), (2, near.id)]

                    async with await Client.as_user(live, newcomer) as nc:
                        await send_ok(nc, to_shop(shop.id, "new here"))
                        first_event = await nc.expect(is_event("assigned", new_chat_id))
                        assert first_event["result"]["agent_uid"] == near.id
                        await n.expect(is_message(new_chat_id, 1))
        finally:
            try:
                await asyncio.wait_for(f.ws.close(), 2)
            except Exception:  # noqa: BLE001 - its server is gone
                pass

    run(scenario())


# --- 8. The merchant's admin, over HTTP ------------------------------------------------------------


def admin_login(server: Server, username: str, password: str) -> httpx.Client:
    http = httpx.Client(base_url=server.http_url, trust_env=False, follow_redirects=False, timeout=10)
    page = http.get("/admin/login/")
    assert page.status_code == 200, page.text[:500]
    token = http.cookies["csrftoken"]
    done = http.post("/admin/login/", data={"username": username, "password": password,
                                             "csrfmiddlewaretoken": token, "next": "/admin/"})
    assert done.status_code == 302 and done.headers["location"] == "/admin/", (done.status_code, done.text[:800])
    return http


def test_a_merchant_sees_only_their_own_shops_agents_and_sessions_in_the_admin(cs_sqlite_site):
    site = cs_sqlite_site
    server = site.servers[0]
    merchant, password = f"merchantx{secrets.token_hex(3)}", "e2e-Merchant-pass-7319"
    other_owner, agent_a, agent_b, customer_a, customer_b = site.users(5)

    def merchants_shop() -> ShopInfo:
        site.createimuser(merchant, "--password", password, "--staff")
        return open_shop(site, User(0, merchant, ""), [agent_a], status="offline", cli=True)

    with ThreadPoolExecutor(max_workers=2) as pool:
        shop_a = pool.submit(merchants_shop)
        shop_b = pool.submit(open_shop, site, other_owner, [agent_b], status="offline", cli=True)
        shop_a, shop_b = shop_a.result(), shop_b.result()

    async def sessions():
        for customer, shop in ((customer_a, shop_a), (customer_b, shop_b)):
            async with await Client.as_user(server, customer) as c:
                await send_ok(c, to_shop(shop.id, "a question for the admin test"))
                await c.expect(is_event("queued", service_chat_id(shop.id, customer.id)))

    run(sessions())

    http = admin_login(server, merchant, password)
    try:
        agents = http.get("/admin/customer_service/serviceagent/")
        assert agents.status_code == 200, agents.text[:500]
        assert agent_a.name in agents.text and shop_a.name in agents.text
        assert agent_b.name not in agents.text and shop_b.name not in agents.text

        own = http.get(f"/admin/customer_service/serviceagent/{shop_a.agent_records[agent_a.id]}/change/")
        assert own.status_code == 200 and agent_a.name in own.text
        foreign = http.get(f"/admin/customer_service/serviceagent/{shop_b.agent_records[agent_b.id]}/change/")
        assert foreign.status_code in (302, 404), foreign.status_code
        if foreign.status_code == 302:
            assert foreign.headers["location"] == "/admin/"
        assert agent_b.name not in foreign.text

        listing = http.get("/admin/customer_service/servicesession/")
        assert listing.status_code == 200, listing.text[:500]
        assert customer_a.name in listing.text and shop_a.name in listing.text
        assert customer_b.name not in listing.text and shop_b.name not in listing.text
        assert re.search(r"1 service session", listing.text), "the count names one session"
    finally:
        http.close()


# --- 9. The grace after a crash (PostgreSQL + Redis, a site of its own) ---------------------------


CRASH_GRACE_SECONDS = 6


@pytest.mark.postgres
@pytest.mark.redis
def test_a_session_stays_with_its_agent_for_the_grace_after_the_agents_process_dies():
    """The grace counts from when the agent became unavailable (the process died), not from when they connected."""
    with postgres_redis_deployment(2, IM_AGENT_GRACE_SECONDS=str(CRASH_GRACE_SECONDS)) as site:
        live, doomed = site.servers
        owner, far, near, consumer = site.users(4)
        shop = open_shop(site, owner, [far, near])
        chat_id = service_chat_id(shop.id, consumer.id)

        async def scenario():
            f = await Client.as_user(doomed, far)
            connected_at = time.monotonic()
            try:
                async with await Client.as_user(live, consumer) as c, await Client.as_user(live, near) as n:
                    await send_ok(c, to_shop(shop.id, "before the crash"))
                    assert (await c.expect(is_event("assigned", chat_id)))["result"]["agent_uid"] == far.id
                    await f.expect(is_message(chat_id, 1))
                    # By the next message the agent's last connect is older than the grace, though the
                    # agent has been gone for less than it.
                    await asyncio.sleep(max(0.0, connected_at + CRASH_GRACE_SECONDS - PRESENCE_TTL_SECONDS
                                            - time.monotonic()))
                    doomed.kill()
                    killed_at = time.monotonic()
                    # Past the presence TTL (the agent now counts as gone), well within the grace.
                    await asyncio.sleep(max(0.0, killed_at + PRESENCE_TTL_SECONDS + 0.5 - time.monotonic()))
                    await send_ok(c, to_shop(shop.id, "within the grace after the crash"))
                    gone_for = time.monotonic() - killed_at
                    assert gone_for < CRASH_GRACE_SECONDS - 1, "too slow to test the grace"
                    to_near, to_consumer = await stray(n, c)
                    assert to_near == to_consumer == [], (
                        f"the session left its agent {gone_for:.1f} s after the agent's process died, within the "
                        f"{CRASH_GRACE_SECONDS} s grace (PROTOCOL.md 5, rule 1); the other agent got "
                        f"{brief(to_near)}, the consumer {brief(to_consumer)}"
                    )

                    # Gone for longer than the grace even when counted from when presence expired.
                    await asyncio.sleep(max(0.0, killed_at + PRESENCE_TTL_SECONDS + CRASH_GRACE_SECONDS + 0.5
                                            - time.monotonic()))
                    await send_ok(c, to_shop(shop.id, "after the grace"))
                    assert (await c.expect(is_event("assigned", chat_id)))["result"]["agent_uid"] == near.id
                    pushes = await collect(n, lambda fs: len(of_code(fs, 200)) >= 3, what="305 + backlog")
                    assert [(m["result"]["seq"], m["result"]["to_uid"]) for m in of_code(pushes, 200)] == [
                        (1, far.id), (2, far.id), (3, near.id)]
            finally:
                try:
                    await asyncio.wait_for(f.ws.close(), 2)
                except Exception:  # noqa: BLE001 - its server is gone
                    pass

        run(scenario())
