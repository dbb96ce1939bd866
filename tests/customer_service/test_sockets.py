"""Customer service through real sockets (imchat.asgi.application): which socket hears what.

PROTOCOL.md 2: the 305 an agent's own close or transfer causes is an echo for that agent; their
other sockets get it, the acting socket only the reply. And a shop's push group follows its owner.
"""

import pytest
from channels.db import database_sync_to_async

from customer_service.mall import shops_upsert
from tests import factories
from tests.customer_service.conftest import consumer_frame
from tests.factories import open_socket, request, synchronously

pytestmark = pytest.mark.django_db(transaction=True)

QUIET = 0.2


def chat_id(shop, consumer) -> str:
    return f"{shop.pk}____{consumer.pk}"


async def pushes(socket, count: int) -> list[tuple[int, str | None]]:
    """The next `count` frames as (code, 305 event or None)."""
    frames = [await socket.receive_json_from(timeout=2) for _ in range(count)]
    return [(frame["code"], frame["result"].get("event")) for frame in frames]


async def close_all(*sockets) -> None:
    for socket in sockets:
        await socket.disconnect()


@synchronously
async def test_an_agents_own_close_and_transfer_reach_their_other_socket_not_the_acting_one(
        shop, amy, ben, consumer, make_agent):
    # given: amy on a phone and a laptop, ben, and a consumer whose session amy has
    await database_sync_to_async(make_agent)(shop, amy)
    await database_sync_to_async(make_agent)(shop, ben)
    phone, laptop, bens, cora = (await open_socket(amy), await open_socket(amy), await open_socket(ben),
                                 await open_socket(consumer))
    sent = await request(cora, "chat", "sendMsg", consumer_frame(shop.pk, "hi"))
    assert sent["code"] == 1
    assert await pushes(cora, 1) == [(305, "assigned")]
    assert await pushes(phone, 2) == await pushes(laptop, 2) == [(305, "assigned"), (200, None)]

    # when amy closes from her phone
    closed = await request(phone, "service", "close", {"chat_id": chat_id(shop, consumer)})

    # then the phone has the reply only; her laptop, her colleague and the consumer hear 305 closed
    assert closed["code"] == 1 and closed["result"] == {"chat_id": chat_id(shop, consumer)}
    for socket in (laptop, bens, cora):
        assert await pushes(socket, 1) == [(305, "closed")]
    assert await phone.receive_nothing(timeout=QUIET)

    # and when the consumer comes back to amy and she transfers from her phone to ben
    await request(cora, "chat", "sendMsg", consumer_frame(shop.pk, "one more thing"))
    assert await pushes(cora, 1) == [(305, "assigned")]
    assert await pushes(phone, 2) == await pushes(laptop, 2) == [(305, "assigned"), (200, None)]
    moved = await request(phone, "service", "transfer", {"chat_id": chat_id(shop, consumer), "to_uid": ben.pk})

    # then the same: the phone has the reply, the others 305 transferred
    assert moved["code"] == 1 and moved["result"]["agent_uid"] == ben.pk
    for socket in (laptop, bens, cora):
        assert await pushes(socket, 1) == [(305, "transferred")]
    for socket in (phone, laptop, bens, cora):
        assert await socket.receive_nothing(timeout=QUIET)

    await close_all(phone, laptop, bens, cora)


@synchronously
async def test_a_new_owner_hears_the_shops_agent_events_and_the_old_owner_no_longer_does(
        merchant, shop, amy, consumer, make_agent):
    # given: the owner, the next owner, an agent and a consumer, each with an open socket
    newcomer = await database_sync_to_async(factories.make_user)(username="newowner")
    await database_sync_to_async(make_agent)(shop, amy)
    old, new, amys, cora = (await open_socket(merchant), await open_socket(newcomer), await open_socket(amy),
                            await open_socket(consumer))

    async def a_session_closed() -> None:
        """The consumer writes, amy closes: the shop's agent group hears 305 closed."""
        await request(cora, "chat", "sendMsg", consumer_frame(shop.pk, "hi"))
        assert await pushes(cora, 1) == [(305, "assigned")]
        assert await pushes(amys, 2) == [(305, "assigned"), (200, None)]
        assert (await request(amys, "service", "close", {"chat_id": chat_id(shop, consumer)}))["code"] == 1
        assert await pushes(cora, 1) == [(305, "closed")]

    await a_session_closed()
    assert await pushes(old, 1) == [(305, "closed")]
    assert await new.receive_nothing(timeout=QUIET)

    # when the mall hands the shop to the newcomer
    await database_sync_to_async(shops_upsert)(shops=[{"id": shop.pk, "owner_id": newcomer.pk}])
    assert await old.receive_nothing(timeout=QUIET)  # membership changes send the client nothing

    # then the shop's next agent event reaches the new owner, not the old one
    await a_session_closed()
    assert await pushes(new, 1) == [(305, "closed")]
    assert await old.receive_nothing(timeout=QUIET)

    await close_all(old, new, amys, cora)
