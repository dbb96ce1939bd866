"""Channel-layer group names and the one way to push: on commit, encoded once.

Services call `push_on_commit`; nothing is sent if the transaction rolls back. Inside a socket
request the pushes are collected and the consumer sends them after the reply (no thread hop);
elsewhere (HTTP views, admin, commands) they are sent as soon as the transaction commits.

A push is one event dict for all its groups and sockets, its frame encoded once. On the receiving
process the layer hands it to each socket's `SocketWriter` at once, which writes it after the reply
of the request in hand; the events that change a socket (membership, logout, restart) go through
the writer to its consumer's `socket_event`, so a close too waits for that reply.
"""

import asyncio
import contextvars
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from contextlib import contextmanager
from typing import Any, NamedTuple
from weakref import WeakKeyDictionary

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import transaction

from chat.protocol import dumps, push_text, push_text_as
from imchat import frames, metrics, outages

logger = logging.getLogger(__name__)

PUSH_EVENT = "im.push"  # a frame for the socket (frame_event), written by its SocketWriter
MEMBERSHIP_EVENT = "im.membership"  # the socket joins or leaves a chat group
LOGOUT_EVENT = "im.logout"
RESTART_EVENT = "im.restart"  # to one socket of a process that shuts down (chat/draining.py)


def user_group(user_id: int) -> str:
    """Every socket of one user, on every process."""
    return f"user.{user_id}"


def chat_group(group_id: int) -> str:
    """Every socket of every member of a group chat."""
    return f"chatgroup.{group_id}"


def everyone_group() -> str:
    """Every socket: platform announcements."""
    return "everyone"


def shop_agents_group(shop_id: int) -> str:
    """Every socket of every agent of a shop."""
    return f"shop.{shop_id}.agents"


class Push(NamedTuple):
    """One group_send: `event` for every socket in `group` (one event dict shared by its groups)."""

    group: str
    event: dict[str, Any]

    # What the event says, by name (tests, logs)
    @property
    def text(self) -> str | None:
        return self.event["frame"]["text"] if "frame" in self.event else None

    @property
    def own_text(self) -> str | None:
        return own_frame(self.event)["text"] if "own_code" in self.event else None

    @property
    def exclude_channel(self) -> str | None:
        return self.event.get("exclude")

    @property
    def sender_uid(self) -> int | None:
        return self.event.get("sender")

    @property
    def join(self) -> str | None:
        return self.event.get("join")

    @property
    def leave(self) -> str | None:
        return self.event.get("leave")


def frame_event(text: str, *, exclude_channel: str | None = None, sender_uid: int | None = None,
                own_code: int | None = None) -> dict[str, Any]:
    """A frame for sockets: `text` (push_text's shape), except for the socket `exclude_channel` (it
    has its reply) and, with `own_code`, the sender's own sockets, which get the same push under that
    code (307: the compat client draws every 200 as the other person's bubble). Its ASGI message is
    built here, once for every socket; the sender's version is made by the few sockets that need it
    (`own_frame`), so a push crossing processes carries its text once."""
    event: dict[str, Any] = {"type": PUSH_EVENT, "frame": {"type": "websocket.send", "text": text}}
    if exclude_channel is not None:
        event["exclude"] = exclude_channel
    if own_code is not None:
        event["sender"] = sender_uid
        event["own_code"] = own_code
    return event


def own_frame(event: dict[str, Any]) -> dict[str, str]:
    """The push as the sender's other sockets get it: its frame under `own_code`."""
    return {"type": "websocket.send", "text": push_text_as(event["own_code"], event["frame"]["text"])}


_collector = threading.local()


@contextmanager
def collecting():
    """Collect the pushes of this thread's work instead of sending them (the consumer sends)."""
    pushes: list[Push] = []
    outer = getattr(_collector, "pushes", None)
    _collector.pushes = pushes
    try:
        yield pushes
    finally:
        _collector.pushes = outer


def push_on_commit(groups: Iterable[str], code: int, result: Any, *, exclude_channel: str | None = None,
                   sender_uid: int | None = None, own_code: int | None = None) -> None:
    """Push `{code, msg: null, result}` to groups after commit (see frame_pushes)."""
    pushes_on_commit(frame_pushes(groups, code, result, exclude_channel=exclude_channel, sender_uid=sender_uid,
                                  own_code=own_code))


def frame_pushes(groups: Iterable[str], code: int, result: Any, *, exclude_channel: str | None = None,
                 sender_uid: int | None = None, own_code: int | None = None) -> list[Push]:
    """`{code, msg: null, result}` for the sockets of `groups`, encoded once; with `sender_uid`, the
    sender's sockets in those groups get `own_code` instead."""
    event = frame_event(push_text(code, dumps(result)), exclude_channel=exclude_channel, sender_uid=sender_uid,
                        own_code=own_code)
    return [Push(group, event) for group in groups]


def pushes_on_commit(pushes: list[Push], then: Callable[[], None] | None = None) -> None:
    """Send `pushes` (then call `then`) once the transaction commits: one hook for all of them."""
    if pushes or then is not None:
        transaction.on_commit(lambda: _emit(pushes, then))


def membership_on_commit(groups: Iterable[str], *, join: str | None = None, leave: str | None = None) -> None:
    """Make every socket in `groups` join or leave a chat group (the acting socket too), sending the
    client nothing. Pushed after the frames of the same transaction, so a socket that leaves still
    gets the frame that says so."""
    event = {"type": MEMBERSHIP_EVENT, **({"join": join} if join else {}), **({"leave": leave} if leave else {})}
    pushes_on_commit([Push(group, event) for group in groups])


def logout_on_commit(user_ids: Iterable[int], why: str) -> None:
    """Close every socket of these users, on every process, telling them why (-200, then 4401)."""
    event = {"type": LOGOUT_EVENT, "text": why}
    pushes_on_commit([Push(user_group(user_id), event) for user_id in user_ids])


def _emit(pushes: list[Push], then: Callable[[], None] | None) -> None:
    if then is not None:
        then()
    if not pushes:
        return
    collected = getattr(_collector, "pushes", None)
    if collected is not None:
        collected.extend(pushes)
    else:
        async_to_sync(deliver)(pushes)


async def deliver(pushes: Iterable[Push]) -> int:
    """Send pushes through the channel layer, all at once; a failure is logged, never raised (sync
    fills the gap). Returns how many may not have arrived."""
    sends = [(push.group, push.event) for push in pushes]
    metrics.PUSHES.inc(len(sends))
    started = time.perf_counter()
    try:
        await get_channel_layer().group_send_many(sends)
    except Exception as error:
        metrics.PUSHES_FAILED.inc(len(sends))
        outages.report(logger, error, "%d pushes may not have reached other processes; clients get them "
                       "by sync", len(sends), level=logging.WARNING)
        return len(sends)
    metrics.PUSH_SECONDS.observe(time.perf_counter() - started)
    outages.REDIS.success()
    return 0


# --- This process's end: straight to the socket ---------------------------------------------------


class SocketWriter:
    """What reaches a socket besides its replies, handed over by the layer at once (the receiver of
    its channel): no Channels event, task or wake-up each. Frames are written by one flush per
    event-loop tick for every socket of the process, in the order they came; while the socket has a
    request in hand they wait for its reply (PROTOCOL.md section 2: the reply, then what the request
    caused). Other events (membership, logout, restart) go to `on_event`, the consumer's."""

    __slots__ = ("send", "write_frame", "channel", "uid", "on_event", "pending", "busy", "flushing", "writing",
                 "closed")

    def __init__(self, send: Callable[[dict], Awaitable[None]], channel: str, uid: int,
                 on_event: Callable[[dict], None] | None = None, write_frame: frames.FrameWriter | None = None):
        self.send = send  # the server's ASGI send
        self.write_frame = write_frame  # the server's writer of built frames, if it offers one
        self.channel = channel
        self.uid = uid
        self.on_event = on_event
        self.pending: list[dict] = []
        self.busy = True  # until the handshake is accepted
        self.flushing = False  # in the flush of this tick
        self.writing = False
        self.closed = False  # its close is written or waits: nothing more after it

    def receive(self, event: dict[str, Any]) -> bool:
        """The layer's receiver: frames are queued to be written, other events handled now (or,
        without `on_event`, declined: the layer queues them for the consumer)."""
        if event["type"] != PUSH_EVENT:
            if self.on_event is None:
                return False
            self.on_event(event)
        elif event.get("exclude") != self.channel and not self.closed:
            self._add(own_frame(event) if event.get("sender") == self.uid and "own_code" in event else event["frame"])
        return True

    def close(self, text: str | None, code: int) -> None:
        """`text` (if any) then a close with `code`, after what is already waiting."""
        if self.closed:
            return
        self.closed = True
        if text is not None:
            self.pending.append({"type": "websocket.send", "text": text})
        self._add({"type": "websocket.close", "code": code})

    def _add(self, message: dict) -> None:
        self.pending.append(message)
        if not self.busy and not self.flushing:
            self.flushing = True
            _flush_of_this_loop().add(self)

    def write_text(self, text: str) -> bool:
        """Writes `text` now, ahead of what waits (a reply); False where the server offers no frame
        writer or the socket is closing (then it goes ASGI's way)."""
        return self.write_frame is not None and self.write_frame(frames.text_frame(text))

    async def release(self) -> None:
        """The socket's reply is out (or its handshake accepted): what waited goes now."""
        self.busy = False
        await self.write_pending()

    async def write_pending(self) -> None:
        """Writes what waits, in order; one writer loop at a time (an ASGI send may suspend)."""
        if self.writing:
            return
        self.writing = True
        try:
            while self.pending and not self.busy:
                messages, self.pending = self.pending, []
                if self.write_frame is not None:
                    messages = self._write_frames(messages)
                for message in messages:
                    await self.send(message)
        except Exception as error:  # the socket went meanwhile: nothing more to write to it
            logger.debug("pushes to %s not written: %s", self.channel, error)
            self.pending.clear()
        finally:
            self.writing = False

    def _write_frames(self, messages: list[dict]) -> list[dict]:
        """Writes the frames up to the first message that is not one (a close) in one write: a
        socket in a group gets a batch's messages in one tick, and a write each cost a system call
        each. What is left goes through ASGI's `send` (all of it if the connection declined)."""
        count = next((i for i, message in enumerate(messages) if message["type"] != "websocket.send"), len(messages))
        if count and self.write_frame(b"".join([_built_frame(message) for message in messages[:count]])):
            return messages[count:]
        return messages


_built: dict[int, tuple[dict, bytes]] = {}  # id(message) -> (message, its frame): a flush's pushes


def _built_frame(message: dict) -> bytes:
    """The frame of a push's ASGI message, built by the first of its sockets in this flush (the
    message is kept beside it, so its id names no other while the entry lives)."""
    entry = _built.get(id(message))
    if entry is None:
        entry = _built[id(message)] = (message, frames.text_frame(message["text"]))
    return entry[1]


class Flush:
    """The writers with pushes waiting, written by one task per tick (the frames built for them
    forgotten after each round)."""

    def __init__(self):
        self.writers: list[SocketWriter] = []
        self.task: asyncio.Task | None = None

    def add(self, writer: SocketWriter) -> None:
        self.writers.append(writer)
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self._run(), context=contextvars.Context())

    async def _run(self) -> None:
        try:
            while self.writers:
                writers, self.writers = self.writers, []
                for writer in writers:
                    writer.flushing = False
                    await writer.write_pending()
                _built.clear()
        finally:
            self.task = None


_flushes: "WeakKeyDictionary[asyncio.AbstractEventLoop, Flush]" = WeakKeyDictionary()


def _flush_of_this_loop() -> Flush:
    loop = asyncio.get_running_loop()
    flush = _flushes.get(loop)
    if flush is None:
        flush = _flushes[loop] = Flush()
    return flush


def layer_is_shared() -> bool:
    """Whether pushes from this process reach sockets held by other processes."""
    return bool(settings.REDIS_URL)
