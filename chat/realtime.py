"""Channel-layer group names and the one way to push: on commit, encoded once.

Services call `push_on_commit`; nothing is sent if the transaction rolls back. Inside a socket
request the pushes are collected and the consumer sends them after the reply (no thread hop);
elsewhere (HTTP views, admin, commands) they are sent as soon as the transaction commits.
"""

import asyncio
import logging
import threading
import time
from collections.abc import Iterable
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import transaction

from chat.protocol import dumps, push_text
from imchat import metrics, outages

logger = logging.getLogger(__name__)

PUSH_EVENT = "im.push"
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


@dataclass(frozen=True)
class Push:
    """One group_send. `own_text` is what the sender's other sockets get instead of `text` (307),
    `join`/`leave` make every receiving socket enter or leave a chat group first."""

    group: str
    text: str
    exclude_channel: str | None = None
    sender_uid: int | None = None
    own_text: str | None = None
    join: str | None = None
    leave: str | None = None
    kind: str = PUSH_EVENT

    @property
    def event(self) -> dict[str, Any]:
        event = {"type": self.kind, "text": self.text}
        for key, value in (("exclude", self.exclude_channel), ("sender", self.sender_uid),
                           ("own_text", self.own_text), ("join", self.join), ("leave", self.leave)):
            if value is not None:
                event[key] = value
        return event


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
                   result_json: str | None = None, sender_uid: int | None = None, own_code: int | None = None,
                   join: str | None = None, leave: str | None = None) -> str:
    """Push `{code, msg: null, result}` to groups after commit; returns the encoded result for reuse.

    With `sender_uid`, the sender's other sockets in those groups get `own_code` instead (the compat
    client draws every 200 as the other person's bubble).
    """
    result_json = result_json if result_json is not None else dumps(result)
    text = push_text(code, result_json)
    own_text = push_text(own_code, result_json) if own_code is not None else None
    pushes = [Push(group, text, exclude_channel, sender_uid, own_text, join, leave) for group in groups]
    if pushes:
        transaction.on_commit(lambda: _emit(pushes))
    return result_json


def membership_on_commit(groups: Iterable[str], *, join: str | None = None, leave: str | None = None) -> None:
    """Make every socket in `groups` join or leave a chat group, sending the client nothing."""
    pushes = [Push(group, "", join=join, leave=leave) for group in groups]
    if pushes:
        transaction.on_commit(lambda: _emit(pushes))


def logout_on_commit(user_ids: Iterable[int], why: str) -> None:
    """Close every socket of these users, on every process, telling them why (-200, then 4401)."""
    pushes = [Push(user_group(user_id), why, kind=LOGOUT_EVENT) for user_id in user_ids]
    if pushes:
        transaction.on_commit(lambda: _emit(pushes))


def _emit(pushes: list[Push]) -> None:
    collected = getattr(_collector, "pushes", None)
    if collected is not None:
        collected.extend(pushes)
    else:
        async_to_sync(deliver)(pushes)


async def deliver(pushes: Iterable[Push]) -> int:
    """Send pushes through the channel layer, all at once; a failure is logged, never raised (sync
    fills the gap). Returns how many may not have arrived."""
    layer = get_channel_layer()
    sends = [(push.group, push.event) for push in pushes]
    metrics.PUSHES.inc(len(sends))
    started = time.perf_counter()
    if hasattr(layer, "group_send_many"):  # ours (imchat/layers.py): the whole list in one go
        try:
            await layer.group_send_many(sends)
        except Exception as error:
            metrics.PUSHES_FAILED.inc(len(sends))
            outages.report(logger, error, "%d pushes may not have reached other processes; clients get them "
                           "by sync", len(sends), level=logging.WARNING)
            return len(sends)
        metrics.PUSH_SECONDS.observe(time.perf_counter() - started)
        outages.REDIS.success()
        return 0
    outcomes = await asyncio.gather(*(layer.group_send(group, event) for group, event in sends),
                                    return_exceptions=True)
    metrics.PUSH_SECONDS.observe(time.perf_counter() - started)
    failed = [(group, outcome) for (group, _), outcome in zip(sends, outcomes) if isinstance(outcome, Exception)]
    metrics.PUSHES_FAILED.inc(len(failed))
    for group, error in failed:
        outages.report(logger, error, "push to %s failed; the client will get it by sync", group,
                       level=logging.WARNING)
    return len(failed)


def layer_is_shared() -> bool:
    """Whether pushes from this process reach sockets held by other processes."""
    return bool(settings.REDIS_URL)
