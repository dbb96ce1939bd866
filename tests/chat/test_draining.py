"""A process shutting down (chat/draining.py): its sockets are closed with 4012, the request in hand
answered first; a socket opened while it drains is closed at once. The real SIGTERM, under load, on
daphne: tests/e2e/test_shutdown.py."""

import asyncio

import pytest

from chat import draining
from imchat import health
from tests.factories import open_socket, request, send_content, synchronously

pytestmark = pytest.mark.django_db(transaction=True)

CLOSED_FOR_RESTART = {"type": "websocket.close", "code": 4012}


@pytest.fixture
def drained_after():
    draining._open.clear()  # sockets earlier tests left open (a communicator never disconnected)
    yield
    health._draining.clear()


@synchronously
async def test_draining_closes_every_socket_with_4012_and_waits_for_them(alice, bob, drained_after):
    # given two sockets, one of them in the middle of a conversation
    alices, bobs = await open_socket(alice), await open_socket(bob)
    reply = await request(alices, "chat", "sendMsg", send_content(bob.pk, "before the restart"))
    assert reply["code"] == 1
    assert (await bobs.receive_json_from())["code"] == 200

    # when the process drains
    health.mark_draining()
    loop = asyncio.get_running_loop()
    closing = asyncio.ensure_future(draining.close_sockets(deadline=loop.time() + 5))

    # then each socket is told to go with 4012; once they are gone, nothing is left open
    assert await alices.receive_output() == CLOSED_FOR_RESTART
    assert await bobs.receive_output() == CLOSED_FOR_RESTART
    assert not closing.done()  # it waits for the sockets to be closed, not only told
    await alices.disconnect(code=4012)
    await bobs.disconnect(code=4012)
    assert await closing == 0 and draining.open_sockets() == 0


@synchronously
async def test_a_socket_opened_while_the_process_drains_is_closed_at_once(alice, drained_after):
    health.mark_draining()

    late = await open_socket(alice)

    assert await late.receive_output() == CLOSED_FOR_RESTART
    await late.disconnect(code=4012)
    assert draining.open_sockets() == 0
