"""The mall's integration end to end: real daphne, PostgreSQL, Redis and a webhook receiver on
127.0.0.1 that checks every signature with docs/INTEGRATION.md's own code.

A customer-service conversation drives every session and message event (created, queued, assigned,
message.created both ways, transferred and closed over the session API, rated), an event the mall
did not subscribe to never arrives, and events stored while the mall is down survive a killed
server and arrive after the restart.
"""

import json
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import psycopg
import pytest

from tests.api.receiver import Receiver, webhook_receiver
from tests.e2e.harness import WAIT_SECONDS, Client, Site, free_port, postgres_redis_deployment, run, send_msg_frame

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.redis]

SECRET = "e2e-webhook-secret-0123456789"
MALL_KEY = "e2e-mall-key-" + "m" * 24
# Every event but message.unattended, which a queued consumer's message would cause.
SUBSCRIBED = ("session.created,session.queued,session.assigned,session.transferred,session.closed,"
              "session.rated,message.created,message.flagged")
FAST = {"IM_WEBHOOK_POLL_SECONDS": "1", "IM_WEBHOOK_RETRY_SECONDS": "1", "IM_WEBHOOK_TIMEOUT": "2",
        "IM_MALL_API_KEY": MALL_KEY, "IM_USER_RATE_LIMIT": "1000"}
ARRIVAL_SECONDS = 20

PEOPLE = """
import json
from accounts.services import user_create
from accounts.tokens import token_mint
from customer_service.services import agent_add, shop_create
people = {name: user_create(username=name, nickname=name.title()) for name in ("owner", "amy", "ben", "cora")}
shop = shop_create(name="Hook Shop", owner=people["owner"])
empty = shop_create(name="Nobody Home", owner=people["owner"])
for name in ("amy", "ben"):
    agent_add(shop=shop, user=people[name], status="online")
print(json.dumps({"shop": shop.pk, "empty": empty.pk,
                  **{name: {"id": u.pk, "token": token_mint(user_id=u.pk)} for name, u in people.items()}}))
"""


@dataclass
class World:
    site: Site
    receiver: Receiver
    people: dict

    @property
    def url(self) -> str:
        return self.site.servers[-1].http_url

    def uid(self, name: str) -> int:
        return self.people[name]["id"]

    def socket(self, name: str) -> str:
        return self.site.servers[-1].socket_url(self.people[name]["token"])

    def call(self, method: str, path: str, *, as_user: str | None = None, body: dict | None = None) -> dict:
        headers = ({"Authorization": f"Bearer {self.people[as_user]['token']}"} if as_user
                   else {"X-Imchat-Api-Key": MALL_KEY})
        response = httpx.request(method, self.url + path, json=body, headers=headers, timeout=WAIT_SECONDS,
                                 trust_env=False)
        assert response.status_code in (200, 201), f"{method} {path}: {response.status_code} {response.text}"
        return response.json()["result"]

    def events_of(self, *, count: int, where) -> list[dict]:
        """The first `count` arrived bodies for which `where(body)` holds (waiting for them to come)."""
        got: list = []
        for _ in range(count + 1):
            received = self.receiver.wait_for(len(self.receiver.received) + 1, timeout=ARRIVAL_SECONDS)
            got = [r for r in received if where(r.json)]
            if len(got) >= count:
                break
        assert len(got) >= count, f"{len(got)} of {count} events arrived: {[r.json for r in got]}"
        assert all(r.signature_ok for r in got)
        assert all(r.headers["x-imchat-event"] == r.json["event"] for r in got)
        return [r.json for r in got]


async def to_shop(client: Client, shop_id: int, text: str) -> dict:
    """A consumer's chat.sendMsg to a shop, as the compat client sends it; the reply."""
    await client.send(send_msg_frame(shop_id, text, chat_type=4))
    return await client.reply()


def load_people(site: Site) -> dict:
    return json.loads(site.manage("shell", "-c", PEOPLE).strip().splitlines()[-1])


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    with webhook_receiver(secret=SECRET) as receiver, postgres_redis_deployment(
            1, IM_WEBHOOK_URL=receiver.url, IM_WEBHOOK_SECRET=SECRET, IM_WEBHOOK_EVENTS=SUBSCRIBED, **FAST) as site:
        yield World(site, receiver, load_people(site))


def test_a_conversation_reports_every_session_and_message_event_signed(world):
    shop, chat_id = world.people["shop"], f"{world.people['shop']}____{world.uid('cora')}"

    async def scenario():
        async with (await Client.open(world.socket("amy"), label="amy") as amy,
                    await Client.open(world.socket("ben"), label="ben") as ben,
                    await Client.open(world.socket("cora"), label="cora") as cora):
            for client in (amy, ben, cora):
                await client.ready()
            sent = await to_shop(cora, shop, "where is my tea?")
            assert sent["code"] == 1, sent
            # whoever got the session answers
            assigned = await cora.expect(lambda f: f.get("code") == 305 and f["result"]["event"] == "assigned")
            agent_uid = assigned["result"]["agent_uid"]
            agent, other, other_name = (amy, ben, "ben") if agent_uid == world.uid("amy") else (ben, amy, "amy")
            await agent.expect_code(200)
            await agent.send(send_msg_frame(world.uid("cora"), "on its way", chat_id=chat_id, shop_id=shop,
                                            chat_type=4, role_type="service"))
            answer = await agent.reply()
            assert answer["code"] == 1, answer
            session_id = world.call("GET", f"/api/v1/shops/{shop}/sessions/", as_user="owner")["rows"][0]["session_id"]
            # the owner transfers over REST: the new agent's socket hears it as from the socket
            moved = world.call("POST", f"/api/v1/service-sessions/{session_id}/transfer/", as_user="owner",
                               body={"to_uid": world.uid(other_name)})
            assert moved["agent_uid"] == world.uid(other_name)
            await other.expect(lambda f: f.get("code") == 305 and f["result"]["event"] == "transferred")
            # the mall closes it with its key; the consumer rates it
            closed = world.call("POST", f"/api/v1/service-sessions/{session_id}/close/")
            assert closed["state"] == "closed"
            await cora.expect(lambda f: f.get("code") == 305 and f["result"]["event"] == "closed")
            world.call("POST", "/api/v1/ratings/", as_user="cora", body={"session_id": session_id, "score": 5})
            return session_id, sent["result"], answer["result"], agent_uid

    session_id, asked, answered, first_agent = run(scenario())
    events = world.events_of(count=7, where=lambda body: body["data"].get("session_id") == session_id)
    by_name = {body["event"]: body["data"] for body in events}
    assert [body["event"] for body in events] == [
        "session.created", "session.assigned", "message.created", "message.created", "session.transferred",
        "session.closed", "session.rated"]
    assert (by_name["session.created"]["state"], by_name["session.created"]["agent_uid"]) == ("open", first_agent)
    assert [(body["data"]["side"], body["data"]["msg_id"]) for body in events[2:4]] == [
        ("consumer", asked["msg_id"]), ("agent", answered["msg_id"])]
    assert by_name["session.transferred"]["from_agent_uid"] == first_agent
    assert by_name["session.transferred"]["by_uid"] == world.uid("owner")
    assert (by_name["session.closed"]["closed_by"], by_name["session.closed"]["by_uid"]) == ("mall", 0)
    assert by_name["session.rated"]["score"] == 5


def test_a_queued_customer_reports_the_queue_and_never_the_unsubscribed_event(world):
    empty = world.people["empty"]

    async def scenario():
        async with await Client.open(world.socket("cora"), label="cora") as cora:
            await cora.ready()
            for text in ("anyone?", "hello?"):
                assert (await to_shop(cora, empty, text))["code"] == 1

    run(scenario())
    events = world.events_of(count=4, where=lambda body: body["data"].get("shop_id") == empty)
    assert [body["event"] for body in events] == ["session.created", "session.queued", "message.created",
                                                  "message.created"]
    assert events[1]["data"]["queue_position"] == 1
    # every event of this shop so far, after the delivery job has had time to send them all
    with psycopg.connect(world.site.postgres_url) as db:
        stored = db.execute("SELECT event, state FROM customer_service_webhookdelivery WHERE body LIKE %s",
                            (f'%"shop_id":{empty},%',)).fetchall()
    assert "message.unattended" not in {event for event, _ in stored}
    assert not [r for r in world.receiver.received if r.json["event"] == "message.unattended"]


def test_events_stored_while_the_mall_is_down_survive_a_killed_server_and_arrive_after_the_restart():
    port = free_port()
    url = f"http://127.0.0.1:{port}/hooks/imchat"
    with postgres_redis_deployment(1, IM_WEBHOOK_URL=url, IM_WEBHOOK_SECRET=SECRET,
                                   IM_WEBHOOK_EVENTS="session.created,session.queued", **FAST) as site:
        people = load_people(site)
        world = World(site, Receiver(), people)

        async def ask_while_the_mall_is_down():
            async with await Client.open(world.socket("cora"), label="cora") as cora:
                await cora.ready()
                sent = await to_shop(cora, people["empty"], "anyone?")
                assert sent["code"] == 1, sent

        run(ask_while_the_mall_is_down())
        # the server tried (the mall refused the connection) and will retry: then it dies
        with psycopg.connect(site.postgres_url, autocommit=True) as db:
            for _ in range(ARRIVAL_SECONDS * 10):
                tried = db.execute("SELECT count(*) FROM customer_service_webhookattempt").fetchone()[0]
                if tried >= 2:
                    break
                db.execute("SELECT pg_sleep(0.1)")
            assert tried >= 2, "the server never tried to deliver"
            site.servers[-1].kill()
            pending = {row[0] for row in db.execute(
                "SELECT delivery_id FROM customer_service_webhookdelivery WHERE state = 'pending'")}
        assert len(pending) == 2

        with webhook_receiver(secret=SECRET, port=port) as receiver:
            world.receiver = receiver
            site.start(1)

            async def a_socket_starts_the_periodic_jobs():
                async with await Client.open(world.socket("amy"), label="amy") as amy:
                    await amy.ready()
                    receiver.wait_for(2, timeout=ARRIVAL_SECONDS)

            run(a_socket_starts_the_periodic_jobs())
            arrived = world.events_of(count=2, where=lambda body: True)

    assert {body["id"] for body in arrived} == pending
    assert [body["event"] for body in arrived] == ["session.created", "session.queued"]
    assert all(int(r.headers["x-imchat-attempt"]) >= 2 for r in receiver.received)
