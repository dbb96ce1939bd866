"""Fixtures of the end-to-end tests: deployments started once per module (see harness.py)."""

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.e2e.harness import Site, base_env, postgres_redis_deployment


@contextmanager
def sqlite_deployment(server: str = "daphne") -> Iterator[Site]:
    """SQLite in a fresh directory, the in-memory layer, one `server` process."""
    with tempfile.TemporaryDirectory(prefix="imchat-e2e-") as var_dir:
        site = Site(env=base_env(var_dir))
        site.migrate()
        try:
            site.start(1, server=server)
            yield site
        finally:
            site.stop()


@pytest.fixture(scope="module")
def sqlite_site() -> Iterator[Site]:
    """SQLite in a fresh directory, the in-memory layer, one daphne."""
    with sqlite_deployment() as site:
        yield site


@pytest.fixture(scope="module")
def scale_out_site() -> Iterator[Site]:
    """A fresh PostgreSQL database and a Redis prefix of its own, two daphne processes sharing them.

    Its users send bursts far past the per-user rate (which holds across processes and has tests of
    its own), so the rate is lifted here."""
    with postgres_redis_deployment(2, IM_USER_RATE_LIMIT="1000") as site:
        yield site
