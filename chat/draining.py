"""A process shutting down for a restart: every socket is closed with 4012 once the request it is
handling has been answered, and the batches in flight are stored and pushed before the process goes.

A socket is told through its own channel (`im.restart`), so the consumer takes the word only between
two frames: a request already being handled still gets its reply. Frames that arrive after it are
not handled (the client resends them, with their client_msg_id, to the process it reconnects to).
"""

import asyncio

from channels.layers import get_channel_layer

from chat import dispatch, realtime
from imchat import health

_open: set[str] = set()  # the channels of this process's accepted sockets


async def socket_opened(channel: str) -> None:
    """An accepted socket; one that opens while the process drains is told to go at once."""
    _open.add(channel)
    if health.draining():
        await get_channel_layer().send(channel, {"type": realtime.RESTART_EVENT})


def socket_closed(channel: str) -> None:
    _open.discard(channel)


def open_sockets() -> int:
    return len(_open)


async def close_sockets(deadline: float) -> int:
    """Tells every socket to close, waits (until `deadline`, event-loop time) for them to be closed
    and for the message batches in flight to be stored and pushed; how many sockets are still open."""
    loop = asyncio.get_running_loop()
    layer = get_channel_layer()
    for channel in list(_open):
        await layer.send(channel, {"type": realtime.RESTART_EVENT})
    while _open and loop.time() < deadline:
        await asyncio.sleep(0.02)
    await dispatch.settled(max(0.0, deadline - loop.time()))
    return len(_open)
