"""How a socket request reaches the database thread.

All ORM work of a process runs on one thread (`database_sync_to_async`), one call at a time, so
under load that thread is the wall. `chat.sendmsg` requests that arrive while it is busy wait
together and go as one call and one transaction (`handlers.run_batch`): no added latency when the
server is idle, and per-message cost falls as load rises. Everything else goes one by one.
"""

import asyncio
import logging
import time
from weakref import WeakKeyDictionary

from channels.db import database_sync_to_async
from django.conf import settings

from chat import handlers, realtime, sending
from chat.protocol import Caller, Envelope, error_reply
from imchat import logs, metrics, outages

logger = logging.getLogger(__name__)


async def run(caller: Caller, envelope: Envelope) -> tuple[dict, list[realtime.Push]]:
    """The reply frame and the pushes the consumer still has to send."""
    if envelope.key in handlers.BATCHED:
        return await _batcher().run(caller, envelope), []
    return await database_sync_to_async(handlers.run_safely)(caller, envelope)


class Batcher:
    """Queues requests; one worker at a time takes up to `max_size` of them to the database thread.

    The worker sends each batch's pushes without waiting for them, so the next batch is not held up.
    """

    def __init__(self, max_size: int):
        self.max_size = max_size
        self.pending: list[tuple[Caller, Envelope, asyncio.Future]] = []
        self.worker: asyncio.Task | None = None
        self.deliveries: set[asyncio.Task] = set()

    async def run(self, caller: Caller, envelope: Envelope) -> dict:
        future = asyncio.get_running_loop().create_future()
        self.pending.append((caller, envelope, future))
        if self.worker is None:
            self.worker = asyncio.ensure_future(self._work())
        return await future

    async def _work(self) -> None:
        logs.socket_id.set(None)  # a batch serves many sockets: its lines name none of them
        try:
            while self.pending:
                batch, self.pending = self.pending[: self.max_size], self.pending[self.max_size:]
                requests = [(caller, envelope) for caller, envelope, _ in batch]
                metrics.SEND_BATCH_SIZE.observe(len(requests))
                handed = time.perf_counter()
                try:
                    frames, pushes, started, ended = await database_sync_to_async(_timed_batch)(requests)
                    metrics.SEND_BATCH_HOPS_SECONDS.observe(started - handed + time.perf_counter() - ended)
                except Exception as error:
                    outages.report(logger, error, "a batch of %d requests failed", len(batch), requests=len(batch))
                    frames, pushes = [error_reply(sending.SERVER_FAULT, envelope) for _, envelope in requests], []
                for (_, _, future), frame in zip(batch, frames):
                    if not future.done():  # its socket may have gone meanwhile
                        future.set_result(frame)
                if pushes:
                    delivery = asyncio.ensure_future(realtime.deliver(pushes))
                    self.deliveries.add(delivery)
                    delivery.add_done_callback(self.deliveries.discard)
        finally:
            self.worker = None

    async def settled(self, timeout: float) -> None:
        """Returns once the requests queued, their batches and their pushes are done (or after `timeout`)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (self.worker is not None or self.deliveries) and loop.time() < deadline:
            await asyncio.wait([task for task in (self.worker, *self.deliveries) if task is not None],
                               timeout=deadline - loop.time())


def _timed_batch(requests: list[tuple[Caller, Envelope]]) -> tuple[list[dict], list[realtime.Push], float, float]:
    """handlers.run_batch in the database thread, its time observed (imchat_send_batch_seconds); and
    when it started and ended there, for the time of the hops to and from it."""
    started = time.perf_counter()
    frames, pushes = handlers.run_batch(requests)
    ended = time.perf_counter()
    metrics.SEND_BATCH_SECONDS.observe(ended - started)
    return frames, pushes, started, ended


_batchers: "WeakKeyDictionary[asyncio.AbstractEventLoop, Batcher]" = WeakKeyDictionary()


async def settled(timeout: float) -> None:
    """This event loop's message batches in flight are stored and pushed (bounded by `timeout`)."""
    batcher = _batchers.get(asyncio.get_running_loop())
    if batcher is not None:
        await batcher.settled(timeout)


def _batcher() -> Batcher:
    loop = asyncio.get_running_loop()
    batcher = _batchers.get(loop)
    if batcher is None:
        batcher = _batchers[loop] = Batcher(settings.IM_SEND_BATCH_MAX)
    return batcher
