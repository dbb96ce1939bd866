"""Real services for tests: present -> used; missing -> skipped, or failed when IM_REQUIRE_SERVICES=1."""

import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

POSTGRES_URL = os.environ.get("IM_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("IM_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
CHROMIUM = os.environ.get("IM_TEST_CHROMIUM", "/usr/bin/chromium")


def services_required() -> bool:
    return os.environ.get("IM_REQUIRE_SERVICES") == "1"


def missing(what: str, why: str) -> None:
    """Skip, or fail when CI requires every real part."""
    message = f"{what} is not available ({why})"
    if services_required():
        pytest.fail(message + " and IM_REQUIRE_SERVICES=1", pytrace=False)
    pytest.skip(message)


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def require_postgres() -> str:
    try:
        import psycopg

        with psycopg.connect(POSTGRES_URL.replace("postgres://", "postgresql://"), connect_timeout=3):
            pass
    except Exception as error:  # noqa: BLE001 - any failure means "not available"
        missing("PostgreSQL", f"{POSTGRES_URL}: {error}")
    return POSTGRES_URL


def require_redis() -> str:
    try:
        import redis

        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except Exception as error:  # noqa: BLE001
        missing("Redis", f"{REDIS_URL}: {error}")
    return REDIS_URL


def require_chromium() -> str:
    path = CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium")
    if not path:
        missing("Chromium", "install Debian's chromium package")
    return path


@contextmanager
def scratch_postgres(locale: str | None = None) -> Iterator[str]:
    """The URL of a new, migrated PostgreSQL database (under `locale`, if given), dropped afterwards."""
    from bench.search import create_database, drop_database, migrate

    require_postgres()
    name, url = create_database(locale)
    try:
        migrate(url)
        yield url
    finally:
        drop_database(name)


def probe(module: str, database_url: str, *args: str) -> dict:
    """`python -m module args` in a process of its own whose Django uses `database_url` (the tests'
    own uses SQLite): the JSON object its last line prints."""
    env = {**os.environ, "DATABASE_URL": database_url, "DJANGO_DEBUG": "1", "LOG_LEVEL": "WARNING"}
    done = subprocess.run([sys.executable, "-m", module, *args], check=False, cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])
