"""imchat/redis_client.py: the asyncio connections pack commands with hiredis, byte for byte as
redis-py's own packer would, on every kind of connection (plain, TLS, Unix socket, Sentinel)."""

import asyncio

import pytest
import redis
from redis.asyncio.connection import Connection

from imchat import redis_client
from tests.services import REDIS_URL, require_redis

COMMANDS = [
    ("SET", "user.1", "中文 text", "EX", 30),
    ("SCRIPT LOAD", "return 1"),
    ("EVALSHA", "a" * 40, 2, "k:1", "k:2", b"\x93\xa5group\x00", 1.5),
    (b"CLIENT SETNAME", "imchat"),
]


@pytest.mark.parametrize("url", ["redis://127.0.0.1:6379/0", "rediss://127.0.0.1:6380/0", "unix:///tmp/redis.sock",
                                 "redis+sentinel://127.0.0.1:26379/im"])
def test_every_async_pool_packs_commands_in_c_as_redis_py_would(url):
    pool = redis_client.async_pool(url)
    connection = pool.connection_class(**pool.connection_kwargs)

    assert type(connection).__name__.startswith("HiredisPacked")
    for command in COMMANDS:
        assert b"".join(connection.pack_command(*command)) == b"".join(Connection().pack_command(*command))


def test_without_hiredis_the_pool_keeps_redis_pys_own_packer(monkeypatch):
    monkeypatch.setattr(redis_client, "HIREDIS_AVAILABLE", False)

    assert redis_client.async_pool("redis://127.0.0.1:6379/0").connection_class is Connection


def test_a_value_redis_cannot_take_is_refused_before_anything_is_sent():
    connection = redis_client.async_pool("redis://127.0.0.1:6379/0").connection_class()

    with pytest.raises(redis.exceptions.DataError):
        connection.pack_command("SET", "key", {"a": 1})


@pytest.mark.redis
def test_a_client_of_the_pool_talks_to_redis():
    require_redis()

    async def round_trip():
        client = redis_client.async_client(REDIS_URL)
        try:
            await client.set("imchat_test_packed", "中文", ex=5)
            return await client.get("imchat_test_packed")
        finally:
            await client.aclose()

    assert asyncio.run(round_trip()) == "中文".encode()
