"""Channel-layer group names and the one way to push: on commit, encoded once.

Services call `push_on_commit`; nothing is sent if the transaction rolls back. Inside a socket
request the pushes are collected and the consumer sends them after the reply (no thread hop);
elsewhere (HTTP views, admin, commands) they are sent as soon as the transaction commits.
"""

import logging
import threading
from collections.abc import Iterable
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import transaction

from chat.protocol import dumps, push_text

logger = logging.getLogger(__name__)

PUSH_EVENT = "im.push"


def user_group(user_id: int) -> str:
    """Every socket of one user, on every process."""
    return f"user.{user_id}"


def chat_group(group_id: int) -> str:
    """Every socket of every member of a group chat."""
    return f"chatgroup.{group_id}"


def shop_agents_group(shop_id: int) -> str:
    """Every socket of every agent of a shop."""
    return f"shop.{shop_id}.agents"


@dataclass(frozen=True)
class Push:
    group: str
    text: str
    exclude_channel: str | None = None

    @property
    def event(self) -> dict[str, Any]:
        return {"type": PUSH_EVENT, "text": self.text, "exclude": self.exclude_channel}


_collector = threading.local()


@contextmanager
def collecting():
    """Collect the pushes of this thread's work instead of sending them (the consumer sends)."""
    pushes: list[Push] = []
    _collector.pushes = pushes
    try:
        yield pushes
    finally:
        _collector.pushes = None


def push_on_commit(groups: Iterable[str], code: int, result: Any, *, exclude_channel: str | None = None,
                   result_json: str | None = None) -> str:
    """Push `{code, msg: null, result}` to groups after commit; returns the encoded result for reuse."""
    result_json = result_json if result_json is not None else dumps(result)
    text = push_text(code, result_json)
    pushes = [Push(group, text, exclude_channel) for group in groups]
    if pushes:
        transaction.on_commit(lambda: _emit(pushes))
    return result_json


def _emit(pushes: list[Push]) -> None:
    collected = getattr(_collector, "pushes", None)
    if collected is not None:
        collected.extend(pushes)
    else:
        async_to_sync(deliver)(pushes)


async def deliver(pushes: Iterable[Push]) -> int:
    """Send pushes through the channel layer; a failure is logged, never raised (sync fills gaps)."""
    layer = get_channel_layer()
    failed = 0
    for push in pushes:
        try:
            await layer.group_send(push.group, push.event)
        except Exception:
            failed += 1
            logger.warning("push to %s failed; the client will get it by sync", push.group, exc_info=True)
    return failed


def layer_is_shared() -> bool:
    """Whether pushes from this process reach sockets held by other processes."""
    return bool(settings.REDIS_URL)
