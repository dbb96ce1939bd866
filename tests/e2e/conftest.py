"""Fixtures of the end-to-end tests: deployments started once per module (see harness.py)."""

import secrets
import tempfile
from collections.abc import Iterator

import psycopg
import pytest
import redis

from tests.e2e.harness import Site, base_env
from tests.services import POSTGRES_URL, REDIS_URL, require_postgres, require_redis


@pytest.fixture(scope="module")
def sqlite_site() -> Iterator[Site]:
    """SQLite in a fresh directory, the in-memory layer, one daphne."""
    with tempfile.TemporaryDirectory(prefix="imchat-e2e-") as var_dir:
        site = Site(env=base_env(var_dir))
        site.migrate()
        try:
            site.start(1)
            yield site
        finally:
            site.stop()


@pytest.fixture(scope="module")
def scale_out_site() -> Iterator[Site]:
    """A fresh PostgreSQL database and a Redis prefix of its own, two daphne processes sharing them."""
    require_postgres()
    require_redis()
    database = f"imchat_e2e_{secrets.token_hex(6)}"
    prefix = f"imchat_e2e_{secrets.token_hex(6)}"
    admin_url = POSTGRES_URL.replace("postgres://", "postgresql://", 1)
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{database}"')
    database_url = POSTGRES_URL.rsplit("/", 1)[0] + "/" + database
    try:
        with tempfile.TemporaryDirectory(prefix="imchat-e2e-") as var_dir:
            site = Site(env=base_env(var_dir, DATABASE_URL=database_url, REDIS_URL=REDIS_URL,
                                     IM_REDIS_PREFIX=prefix))
            site.migrate()
            try:
                site.start(2)
                yield site
            finally:
                site.stop()
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        store = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
        keys = list(store.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            store.delete(*keys)
        store.close()
