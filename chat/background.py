"""Periodic work each server process runs while it holds sockets (idle sessions close by themselves)."""

import asyncio
import contextvars
import logging
from collections.abc import Callable

from channels.db import database_sync_to_async

from chat import realtime
from imchat import outages

logger = logging.getLogger(__name__)

_started: set[int] = set()


def ensure_started(jobs: list[tuple[float, Callable[[], None]]]) -> None:
    """Start the jobs once per event loop; each runs in the DB thread and its pushes are delivered."""
    loop = asyncio.get_running_loop()
    if id(loop) in _started:
        return
    _started.add(id(loop))
    for interval, job in jobs:  # in a context of their own: started by one socket, they serve all
        loop.create_task(_every(interval, job), name=f"imchat-{job.__name__}", context=contextvars.Context())


async def _every(interval: float, job: Callable[[], None]) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            pushes = await database_sync_to_async(_collect)(job)
            if pushes:
                await realtime.deliver(pushes)
        except Exception as error:
            outages.report(logger, error, "background job %s failed", job.__name__, requests=0)


def _collect(job: Callable[[], None]) -> list[realtime.Push]:
    with realtime.collecting() as pushes:
        job()
    return pushes
