"""`/healthz` and `/readyz` of a real daphne while its real dependencies go away and come back.

The server runs on a PostgreSQL database reached through a TCP proxy that can refuse connections
(bench/faults.py's PostgresProxy) and on a redis-server of this test's own that it kills: readiness
follows each outage and its end, liveness never changes.
"""

import asyncio
import secrets
import shutil
import tempfile
from pathlib import Path

import httpx
import psycopg
import pytest

from bench import faults
from tests.e2e.harness import Site, base_env
from tests.services import POSTGRES_URL, missing, require_postgres

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.redis]


async def probe(server, path: str) -> tuple[int, dict]:
    async with httpx.AsyncClient(timeout=15, trust_env=False) as client:
        # A balancer probes by address: the Host is not one of ALLOWED_HOSTS.
        response = await client.get(server.http_url + path, headers={"Host": "10.9.8.7:9504"})
    return response.status_code, response.json()


async def until(server, path: str, status: int) -> dict:
    """Probe until `path` answers `status` (bounded); its last body."""
    for _ in range(60):
        code, body = await probe(server, path)
        if code == status:
            return body
        await asyncio.sleep(0.25)
    pytest.fail(f"{path} never answered {status}: last {code} {body}")


def test_readiness_follows_the_database_and_redis_while_liveness_stays(tmp_path: Path):
    require_postgres()
    if not shutil.which(faults.REDIS_SERVER):
        missing("redis-server", "this test starts and kills a Redis of its own")
    database = f"imchat_health_{secrets.token_hex(6)}"
    admin_url = POSTGRES_URL.replace("postgres://", "postgresql://", 1)
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{database}"')
    redis_server = faults.RedisServer(tmp_path)
    redis_server.start()
    try:
        asyncio.run(_outages(database, redis_server))
    finally:
        redis_server.stop()
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


async def _outages(database: str, redis_server: faults.RedisServer) -> None:
    host, port = POSTGRES_URL.split("@", 1)[1].split("/", 1)[0].split(":")
    proxy = faults.PostgresProxy(int(port))
    await proxy.start()
    direct = POSTGRES_URL.rsplit("/", 1)[0] + "/" + database
    proxied = direct.replace(f"{host}:{port}", f"127.0.0.1:{proxy.port}")
    with tempfile.TemporaryDirectory(prefix="imchat-e2e-") as var_dir:
        site = Site(env=base_env(var_dir, DATABASE_URL=proxied, REDIS_URL=redis_server.url,
                                 IM_REDIS_PREFIX=f"health{secrets.token_hex(4)}", DB_CONN_MAX_AGE="0"))
        await asyncio.to_thread(site.migrate)
        try:
            [server] = await asyncio.to_thread(site.start, 1)

            ready = await until(server, "/readyz", 200)
            assert (ready["status"], ready["database"], ready["redis"], ready["sockets"]) == (
                "ready", "ok", "ok", "accepting")

            await asyncio.to_thread(redis_server.kill)
            down = await until(server, "/readyz", 503)
            assert down["status"] == "unavailable" and down["redis"].startswith("error") and down["database"] == "ok"
            assert await probe(server, "/healthz") == (200, {"status": "ok"})
            await asyncio.to_thread(redis_server.start)
            await until(server, "/readyz", 200)

            outage = asyncio.create_task(proxy.outage(4))
            down = await until(server, "/readyz", 503)
            assert down["database"].startswith("error") and down["redis"] == "ok"
            assert await probe(server, "/healthz") == (200, {"status": "ok"})
            await outage
            await until(server, "/readyz", 200)
        finally:
            await asyncio.to_thread(site.stop)
            await proxy.stop()
