"""notification.offline end to end: two daphne processes on PostgreSQL and Redis, real sockets, and
the mall's webhook endpoint (tests/api/receiver.py, checking each signature with the README's code).

An agent whose tab closed (the session still theirs through the grace) hears of the customer's
message; a customer who left hears of the agent's answer; a second message inside the window is
not reported, one after it is; a private message to a user who is not connected is reported too;
nobody outside a conversation can be made to hear.
"""

import asyncio
import json
import time

import psycopg
import pytest
import redis

from tests.api.receiver import webhook_receiver
from tests.e2e.harness import Client, Site, postgres_redis_deployment, run, send_msg_frame
from tests.e2e.test_customer_service import open_shop, service_chat_id, to_shop

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.redis]

SECRET = "e2e-webhook-secret-0123456789abcdef"
PRIVATE_WINDOW_SECONDS = 2
WAIT = 10


@pytest.fixture(scope="module")
def mall():
    with webhook_receiver(secret=SECRET) as receiver:
        yield receiver


@pytest.fixture(scope="module")
def site(mall):
    settings = {"IM_AGENT_GRACE_SECONDS": "600", "IM_WEBHOOK_URL": mall.url, "IM_WEBHOOK_SECRET": SECRET,
                "IM_WEBHOOK_POLL_SECONDS": "1", "IM_OFFLINE_NOTIFY_SECONDS": str(PRIVATE_WINDOW_SECONDS)}
    with postgres_redis_deployment(2, **settings) as site:
        yield site


def stored_notifications(site: Site) -> list[dict]:
    """What was queued for the mall (in the message's own transaction, so before its ack)."""
    with psycopg.connect(site.postgres_url) as db:
        rows = db.execute("SELECT body FROM customer_service_webhookdelivery WHERE event = 'notification.offline' "
                          "ORDER BY id").fetchall()
    return [json.loads(body)["data"] for (body,) in rows]


def delivered(mall, count: int) -> list[dict]:
    """The first `count` notification.offline deliveries the mall received (each correctly signed)."""
    deadline = time.monotonic() + WAIT
    while True:
        got = [r for r in mall.received if r.json["event"] == "notification.offline"]
        if len(got) >= count or time.monotonic() > deadline:
            break
        mall.wait_for(len(mall.received) + 1, 0.5)
    assert len(got) >= count, f"the mall got {len(got)} of {count}: {[r.json for r in got]}"
    assert all(r.signature_ok for r in got)
    return [r.json["data"] for r in got[:count]]


def wait_gone(site: Site, user_id: int) -> None:
    """Until presence (Redis) has no socket of the user: the server handled the close."""
    store = redis.Redis.from_url(site.env["REDIS_URL"])
    key = f"{site.env['IM_REDIS_PREFIX']}:presence:user:{user_id}"
    deadline = time.monotonic() + WAIT
    while store.hlen(key):
        assert time.monotonic() < deadline, f"user {user_id} still has sockets"
        time.sleep(0.05)
    store.close()


def answer_frame(shop_id: int, consumer_id: int, msg: str) -> dict:
    return send_msg_frame(consumer_id, msg, chat_type=4, chat_id=service_chat_id(shop_id, consumer_id),
                          shop_id=shop_id, role_type="service")


def expire_windows(site: Site) -> None:
    """The shop's window (minutes) passes: its marks say so, as the clock would after N minutes."""
    with psycopg.connect(site.postgres_url, autocommit=True) as db:
        db.execute("UPDATE customer_service_offlinenotification SET quiet_until = 0")


def test_the_agent_and_the_customer_each_hear_once_per_window_through_the_mall(site, mall):
    owner, amy, cora, dan = site.users(4)
    shop = open_shop(site, owner, [amy])
    first, second = site.servers

    async def scenario():
        agent = await Client.as_user(first, amy)
        customer = await Client.as_user(second, cora)
        assert (await customer.request("chat", "sendMsg", to_shop(shop.id, "hello")["content"]))["code"] == 1
        await agent.expect(lambda f: f.get("code") == 200 and f["result"]["msg"] == "hello", what="the 200")

        # the agent's tab closes; the session stays theirs (the grace)
        await agent.close()
        wait_gone(site, amy.id)
        asked = await customer.request("chat", "sendMsg", to_shop(shop.id, "are you there?")["content"])
        again = await customer.request("chat", "sendMsg", to_shop(shop.id, "hello??")["content"])
        assert (asked["code"], again["code"]) == (1, 1)
        [to_agent] = stored_notifications(site)  # the second fell in the shop's 10 minutes
        assert (to_agent["recipient_uid"], to_agent["role"], to_agent["shop_id"], to_agent["sender_uid"],
                to_agent["msg_id"], to_agent["preview"]) == (
            amy.id, "agent", shop.id, cora.id, asked["result"]["msg_id"], "are you there?")

        # the customer leaves; the agent comes back and answers (on the other process)
        await customer.close()
        wait_gone(site, cora.id)
        agent = await Client.as_user(second, amy)
        answers = [await agent.request("chat", "sendMsg", answer_frame(shop.id, cora.id, text)["content"])
                   for text in ("It ships tomorrow.", "Anything else?")]
        assert [a["code"] for a in answers] == [1, 1]
        assert len(stored_notifications(site)) == 2

        # after the window another answer is reported, with all three unread
        expire_windows(site)
        late = await agent.request("chat", "sendMsg", answer_frame(shop.id, cora.id, "Bye!")["content"])
        assert late["code"] == 1

        # an attacker names cora's conversation: refused, and nobody hears of it
        intruder = await Client.as_user(first, dan)
        refused = await intruder.request("chat", "sendMsg",
                                         to_shop(shop.id, "x", chat_id=service_chat_id(shop.id, cora.id))["content"])
        assert refused["code"] == -403
        await agent.close()
        await intruder.close()
        return asked, answers, late

    asked, answers, late = run(scenario())

    got = delivered(mall, 3)
    assert [(n["recipient_uid"], n["role"], n["msg_id"]) for n in got] == [
        (amy.id, "agent", asked["result"]["msg_id"]),
        (cora.id, "consumer", answers[0]["result"]["msg_id"]),
        (cora.id, "consumer", late["result"]["msg_id"]),
    ]
    assert (got[1]["sender_name"], got[1]["preview"], got[1]["unread"]) == (shop.name, "It ships tomorrow.", 1)
    assert got[2]["unread"] == 3 and got[2]["chat_id"] == service_chat_id(shop.id, cora.id)
    assert len(stored_notifications(site)) == 3


def test_a_private_message_to_a_user_with_no_socket_is_reported_once_per_window(site, mall):
    alice, bob = site.users(2)

    async def scenario():
        sender = await Client.as_user(site.servers[0], alice)
        replies = [await sender.request("chat", "sendMsg", send_msg_frame(bob.id, text)["content"])
                   for text in ("lunch?", "at noon")]
        await asyncio.sleep(PRIVATE_WINDOW_SECONDS + 0.5)  # IM_OFFLINE_NOTIFY_SECONDS passes
        replies.append(await sender.request("chat", "sendMsg", send_msg_frame(bob.id, "well?")["content"]))
        # bob connects: a message now reaches his socket and the mall hears nothing of it
        receiver = await Client.as_user(site.servers[1], bob)
        replies.append(await sender.request("chat", "sendMsg", send_msg_frame(bob.id, "there you are")["content"]))
        await receiver.expect(lambda f: f.get("code") == 200 and f["result"]["msg"] == "there you are",
                              what="the 200")
        await sender.close()
        await receiver.close()
        return replies

    replies = run(scenario())

    assert [r["code"] for r in replies] == [1, 1, 1, 1]
    mine = [n for n in stored_notifications(site) if n["recipient_uid"] == bob.id]
    assert [(n["role"], n["msg_id"], n["preview"], n["unread"]) for n in mine] == [
        ("user", replies[0]["result"]["msg_id"], "lunch?", 1),
        ("user", replies[2]["result"]["msg_id"], "well?", 3),
    ]
