"""Fixtures shared by the unit, consumer and HTTP tests (the e2e tests bring their own)."""

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

import pytest
from channels.layers import channel_layers
from django.core.cache import cache

from chat import realtime
from tests import factories


def pytest_configure(config):
    # WhiteNoise warns on every new handler while var/static/ has not been collected yet.
    config.addinivalue_line("filterwarnings", "ignore:No directory at:UserWarning")


@pytest.fixture
def alice(db):
    return factories.make_user(username="alice", nickname="Alice", avatar="/media/avatars/alice.png")


@pytest.fixture
def bob(db):
    return factories.make_user(username="bob", nickname="Bob", avatar="https://cdn.example.com/bob.png")


@pytest.fixture
def carol(db):
    return factories.make_user(username="carol", nickname="Carol")


@pytest.fixture
def captured_pushes(django_capture_on_commit_callbacks) -> Callable[[], AbstractContextManager]:
    """`with captured_pushes() as sent:` -> the decoded pushes the block's committed writes made.

    The test's transaction never commits, so the on-commit callbacks are run when the block ends,
    while the collector is still listening. Call services inside, not chat.handlers.run: it collects
    on its own (use a transaction=True test and the pushes it returns).
    """

    @contextmanager
    def capture() -> Iterator[list[factories.Sent]]:
        decoded: list[factories.Sent] = []
        with realtime.collecting() as pushes:
            with django_capture_on_commit_callbacks(execute=True):
                yield decoded
        decoded.extend(factories.decode_pushes(pushes))

    return capture


@pytest.fixture(autouse=True)
def fresh_channel_layer() -> Iterator[None]:
    """A new in-memory channel layer per test: each socket test runs on its own event loop, and no
    test sees groups another test left behind."""
    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


@pytest.fixture(autouse=True)
def fresh_cache(settings) -> None:
    """Rate limits count in the cache: every test starts with nothing counted, in a cache of the
    test process's own (never a Redis the shell's REDIS_URL names)."""
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache",
                                   "LOCATION": "imchat-tests"}}
    cache.clear()


@pytest.fixture
def rates(settings) -> Callable[..., None]:
    """`rates(upload="2/minute")`: DRF throttle rates (REST_FRAMEWORK) for this test."""

    def set_rates(**scopes: str) -> None:
        framework = settings.REST_FRAMEWORK
        settings.REST_FRAMEWORK = {**framework,
                                   "DEFAULT_THROTTLE_RATES": {**framework["DEFAULT_THROTTLE_RATES"], **scopes}}

    return set_rates
