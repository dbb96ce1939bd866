"""Business hours end to end: PostgreSQL, Redis, two daphne processes, the compat client's frames.

Outside the hours the consumer (on one process) is queued with the out-of-hours message although an
agent is online (on the other); when the owner's new hours open the shop, the queue drains to that
agent across processes, backlog included.
"""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.e2e.harness import Client, Site, postgres_redis_deployment, run
from tests.e2e.test_customer_service import is_event, is_message, open_shop, send_ok, service_chat_id, stray, to_shop

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.redis]

WHOLE_WEEK = [{"weekday": day, "opens": "00:00", "closes": "00:00"} for day in range(7)]


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    with postgres_redis_deployment(2) as deployment:
        yield deployment


def put_hours(site: Site, owner, shop_id: int, body: dict) -> dict:
    reply = httpx.put(f"{site.servers[0].http_url}/api/v1/shops/{shop_id}/hours/", json=body,
                      headers={"Authorization": f"Bearer {owner.token}"}, timeout=10, trust_env=False)
    assert reply.status_code == 200, reply.text
    return reply.json()["result"]


def test_outside_hours_the_queue_waits_and_drains_across_processes_when_the_hours_open_the_shop(site):
    owner, agent, consumer = site.users(3)
    shop = open_shop(site, owner, [agent])
    today = datetime.now(UTC).date()
    closed = put_hours(site, owner, shop.id, {
        "timezone": "UTC", "schedule": WHOLE_WEEK, "greeting": "Hello from the e2e shop",
        "closed_days": [{"date": (today + timedelta(days=n)).isoformat()} for n in (-1, 0, 1)]})
    assert closed["open_now"] is False
    chat_id = service_chat_id(shop.id, consumer.id)

    async def scenario():
        amy = await Client.as_user(site.servers[1], agent)
        cora = await Client.as_user(site.servers[0], consumer)
        info = await cora.request("service", "shopInfo", {"shop_id": shop.id})
        assert info["code"] == 1 and info["result"]["open_now"] is False

        # when the consumer writes out of hours
        await send_ok(cora, to_shop(shop.id, "are you there?"))
        queued = await cora.expect(is_event("queued", chat_id), what="305 queued")
        assert queued["result"]["reason"] == "out_of_hours"
        notice = await cora.expect(is_message(chat_id, seq=2), what="the out-of-hours message")
        assert notice["result"]["msg"].startswith("We are closed right now") and notice["result"]["from_uid"] == 0
        assert await stray(amy) == [[]]  # the online agent gets nothing

        # when the owner's new hours open the shop: the queue drains to the agent on the other process
        opened = put_hours(site, owner, shop.id, {"timezone": "UTC", "schedule": WHOLE_WEEK})
        assert opened["open_now"] is True
        await amy.expect(is_event("assigned", chat_id), what="305 assigned")
        backlog = [await amy.expect(is_message(chat_id, seq=seq), what=f"backlog seq {seq}") for seq in (1, 2)]
        assert backlog[0]["result"]["msg"] == "are you there?"
        await cora.expect(is_event("assigned", chat_id), what="305 assigned to the consumer")
        await amy.close()
        await cora.close()

    run(scenario())
