"""Business hours through real sockets (imchat.asgi.application): what the consumer's socket hears."""

from datetime import UTC, datetime, time, timedelta

import pytest
from channels.db import database_sync_to_async

from customer_service import services
from customer_service.hours import Interval
from tests.customer_service.conftest import consumer_frame
from tests.factories import open_socket, request, synchronously

pytestmark = pytest.mark.django_db(transaction=True)

QUIET = 0.3
WHOLE_DAY = [Interval(day, time(0), time(0)) for day in range(7)]


def close_around_now(shop) -> None:
    today = datetime.now(UTC).date()
    services.shop_hours_set(shop=shop, timezone_name="UTC", intervals=WHOLE_DAY,
                            closed_days=[(today + timedelta(days=n), "") for n in (-1, 0, 1)])


@synchronously
async def test_outside_hours_the_consumers_socket_hears_queued_out_of_hours_then_the_shops_message(
        shop, amy, consumer, make_agent):
    # given an agent online with a socket, and a shop closed now
    await database_sync_to_async(make_agent)(shop, amy)
    await database_sync_to_async(close_around_now)(shop)
    agent, cora = await open_socket(amy), await open_socket(consumer)

    # when the consumer reads the shop's hours and writes
    info = await request(cora, "service", "shopInfo", {"shop_id": shop.pk})
    sent = await request(cora, "chat", "sendMsg", consumer_frame(shop.pk, "open?"))

    # then: closed, with a next opening; the message is stored; a 305 queued out_of_hours; then the
    # shop's out-of-hours message as a 200 with seq 2; the agent hears nothing
    assert info["code"] == 1 and info["result"]["open_now"] is False and info["result"]["next_opening"] > 0
    assert sent["code"] == 1 and sent["result"]["seq"] == 1
    queued = await cora.receive_json_from(timeout=2)
    assert queued["code"] == 305
    assert (queued["result"]["event"], queued["result"]["reason"]) == ("queued", "out_of_hours")
    notice = await cora.receive_json_from(timeout=2)
    assert notice["code"] == 200 and notice["result"]["seq"] == 2 and notice["result"]["from_uid"] == 0
    assert notice["result"]["msg"].startswith("We are closed right now")
    assert await agent.receive_nothing(timeout=QUIET)

    # when the consumer writes again: no second out-of-hours message
    again = await request(cora, "chat", "sendMsg", consumer_frame(shop.pk, "hello?"))
    assert again["code"] == 1 and await cora.receive_nothing(timeout=QUIET)
    for socket in (agent, cora):
        await socket.disconnect()


@synchronously
async def test_shop_info_of_no_shop_is_not_found(consumer):
    cora = await open_socket(consumer)
    reply = await request(cora, "service", "shopInfo", {"shop_id": 424242})
    assert (reply["code"], reply["msg"]) == (-404, "shop_id: no such shop")
    await cora.disconnect()
