"""Fixtures for the customer-service tests: a shop, its agents, consumers, presence and pushes.

Requests go through the real `chat.handlers.run` (the socket's table) and the real services. The
test's transaction never commits, so the on-commit callbacks a request registers are captured and
then run inside `realtime.collecting()`, exactly what a committed request hands the consumer.
"""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import count
from typing import Any

import pytest

from chat import handlers, realtime
from chat.presence import presence
from chat.protocol import Envelope
from customer_service import services
from customer_service.models import ServiceAgent
from tests import factories
from tests.factories import Sent

_channels = count(1)


@pytest.fixture(autouse=True)
def fresh_presence() -> Iterator[None]:
    """Presence is a process-wide singleton: every test starts and ends with nobody connected."""
    presence.cache_clear()
    yield
    presence.cache_clear()


@pytest.fixture(autouse=True)
def fast_password_hashing(settings) -> None:
    """Logins here prove who sees what, not the hasher's cost (PBKDF2 would make the suite slow)."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@dataclass
class Outcome:
    """What one request produced: the reply frame and the decoded pushes of its committed writes."""

    frame: dict
    sent: list[Sent] = field(default_factory=list)

    @property
    def code(self) -> int:
        return self.frame["code"]

    @property
    def result(self) -> Any:
        return self.frame["result"]

    def to(self, group: str, code: int | None = None) -> list[dict]:
        """The results pushed to one group (optionally with one code), in push order."""
        return [s.result for s in self.sent if s.group == group and (code is None or s.code == code)]

    def with_code(self, code: int) -> list[Sent]:
        return [s for s in self.sent if s.code == code]


@pytest.fixture
def pushes(django_capture_on_commit_callbacks) -> Callable[[], Any]:
    """`with pushes() as sent:` -> the decoded pushes of the block's writes, as if they committed."""

    @contextmanager
    def capture() -> Iterator[list[Sent]]:
        sent: list[Sent] = []
        with django_capture_on_commit_callbacks() as callbacks:
            yield sent
        with realtime.collecting() as collected:
            for callback in callbacks:
                callback()
        sent.extend(factories.decode_pushes(collected))

    return capture


@pytest.fixture
def connect() -> Callable[..., str]:
    """Mark a user as having a live socket; returns the socket's channel name."""

    def connect_(user) -> str:
        channel = f"test.socket.{user.pk}.{next(_channels)}"
        presence().connected(user.pk, channel)
        return channel

    return connect_


@pytest.fixture
def disconnect() -> Callable[..., None]:
    def disconnect_(user, channel: str) -> None:
        presence().disconnected(user.pk, channel)

    return disconnect_


@pytest.fixture
def ask(pushes) -> Callable[..., Outcome]:
    """`ask(user, "chat", "sendMsg", content, channel=...)` through chat.handlers.run."""

    def run(user, cls: str, action: str, content: dict | None = None, *, channel: str | None = None) -> Outcome:
        caller = factories.caller_of(user, channel_name=channel)
        with pushes() as sent:
            frame, _ = handlers.run(caller, Envelope(cls=cls, action=action, content=content or {}))
        return Outcome(frame, sent)

    return run


@pytest.fixture
def socket_joins(pushes) -> Callable[..., Outcome]:
    """A user's socket opens (presence) and joins its groups, as the consumer does."""

    def join(user, channel: str | None = None) -> Outcome:
        channel = channel or f"test.socket.{user.pk}.{next(_channels)}"
        with pushes() as sent:
            opening = handlers.socket_opened(user_id=user.pk, claims=None, base_url=factories.BASE_URL,
                                             channel_name=channel)
            if opening.after_join is not None:
                opening.after_join()
        return Outcome({"channel": channel}, sent)

    return join


def consumer_frame(shop_id: int, msg: str = "hello", **extra: Any) -> dict:
    """chat.sendMsg content exactly as the compat client sends it to a shop opened by deep link."""
    return {"to_uid": shop_id, "chat_type": 4, "msg_type": 1, "msg": msg, "chat_id": "", "shop_id": 0,
            "role_type": 0, **extra}


def agent_frame(shop_id: int, consumer_id: int, msg: str = "how can I help?", **extra: Any) -> dict:
    """chat.sendMsg content of an agent answering a consumer for a shop."""
    return {"to_uid": consumer_id, "chat_type": 4, "msg_type": 1, "msg": msg,
            "chat_id": f"{shop_id}____{consumer_id}", "shop_id": shop_id, "role_type": "service", **extra}


@pytest.fixture
def say(ask) -> Callable[..., Outcome]:
    """A consumer sends a text to a shop the way the compat client does."""

    def say_(consumer, shop, msg: str = "hello", *, channel: str | None = None, **extra: Any) -> Outcome:
        return ask(consumer, "chat", "sendMsg", consumer_frame(shop.pk, msg, **extra), channel=channel)

    return say_


@pytest.fixture
def answer(ask) -> Callable[..., Outcome]:
    """An agent answers a consumer for a shop."""

    def answer_(agent, shop, consumer, msg: str = "how can I help?", *, channel: str | None = None,
                **extra: Any) -> Outcome:
        return ask(agent, "chat", "sendMsg", agent_frame(shop.pk, consumer.pk, msg, **extra), channel=channel)

    return answer_


# --- People and the shop ------------------------------------------------------------------------


@pytest.fixture
def merchant(db):
    return factories.make_user(username="merchant", nickname="Mia the merchant", avatar="/media/mia.png")


@pytest.fixture
def shop(merchant):
    return services.shop_create(name="Tea House", owner=merchant, logo="/media/shops/tea.png",
                                offline_notice="We are away; leave a message.")


@pytest.fixture
def amy(db):
    return factories.make_user(username="amy", nickname="Amy", avatar="/media/amy.png")


@pytest.fixture
def ben(db, amy):
    # Created after amy, so on a tie in every other respect amy (the lower id) is picked first.
    return factories.make_user(username="ben", nickname="Ben", avatar="https://cdn.example.com/ben.png")


@pytest.fixture
def consumer(db):
    return factories.make_user(username="cora", nickname="Cora", avatar="/media/cora.png")


@pytest.fixture
def consumer2(db, consumer):
    return factories.make_user(username="dan", nickname="Dan")


@pytest.fixture
def consumer3(db, consumer2):
    return factories.make_user(username="eve", nickname="Eve")


@pytest.fixture
def make_agent() -> Callable[..., ServiceAgent]:
    def make(shop, user, *, status: str = ServiceAgent.Status.ONLINE, max_sessions: int = 10) -> ServiceAgent:
        return services.agent_add(shop=shop, user=user, status=status, max_sessions=max_sessions,
                                  base_url=factories.BASE_URL)

    return make
