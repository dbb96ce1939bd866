"""Redis through Sentinel (imchat/redis_client.py): the URL, and every Redis user of the server
(channel layer, presence, shared rate limits, the cache of the HTTP limits) following a real failover.

The Sentinel group is bench/faults.py's: a master, its replica and two `redis-server --sentinel`
processes on free ports in a temporary directory, nothing persisted.
"""

import asyncio
import json
import math
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import redis
from django.utils.module_loading import import_string

from bench.faults import REDIS_SERVER, SentinelRedis
from chat.presence import RedisPresence
from chat.throttling import SharedUserBudget
from imchat import outages, redis_client
from tests.services import missing

pytestmark = pytest.mark.redis

ROOT = Path(__file__).resolve().parents[1]
RECOVERY_SECONDS = 15  # how long a Redis user may take to find the new master


def test_a_sentinel_url_names_the_sentinels_the_master_and_the_database():
    target = redis_client.sentinel_target("redis+sentinel://:s%40cret@10.0.0.1:26379,[::1]:26380,sentinel-3:5000/im/2")

    assert target.sentinels == [("10.0.0.1", 26379), ("::1", 26380), ("sentinel-3", 5000)]
    assert (target.master, target.db, target.password, target.username) == ("im", 2, "s@cret", None)
    assert redis_client.sentinel_target("redis+sentinel://10.0.0.1:26379/im").db == 0
    assert redis_client.sentinel_target("redis://127.0.0.1:6379/0") is None


@pytest.mark.parametrize("url", ["redis+sentinel://10.0.0.1:26379", "redis+sentinel://10.0.0.1:26379/",
                                 "redis+sentinel:///im/0", "redis+sentinel://10.0.0.1/im",
                                 "redis+sentinel://10.0.0.1:x/im", "redis+sentinel://h:1/im/zero",
                                 "redis+sentinel://h:1/im/0/extra"])
def test_a_malformed_sentinel_url_is_refused_at_startup(url):
    with pytest.raises(ValueError):
        redis_client.sentinel_target(url)
    started = subprocess.run([sys.executable, "-c", "import imchat.settings"], cwd=ROOT, capture_output=True,
                             text=True, timeout=60, env={**os.environ, "DJANGO_DEBUG": "1", "REDIS_URL": url})
    assert started.returncode != 0 and "redis+sentinel://" in started.stderr


@pytest.fixture(scope="module")
def sentinel_redis():
    if not shutil.which(REDIS_SERVER):
        missing("redis-server", "a Sentinel group is started from it (redis-server --sentinel)")
    work_dir = Path(tempfile.mkdtemp(prefix="imchat-sentinel-"))
    group = SentinelRedis(work_dir)
    try:
        group.start()
        yield group
    finally:
        group.stop()
        shutil.rmtree(work_dir, ignore_errors=True)


def production_settings(url: str) -> dict:
    """CHANNEL_LAYERS and CACHES exactly as imchat/settings.py builds them for this REDIS_URL."""
    code = "import json, imchat.settings as s; print(json.dumps([s.CHANNEL_LAYERS['default'], s.CACHES['default']]))"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          check=True, env={**os.environ, "DJANGO_DEBUG": "1", "REDIS_URL": url})
    layer, cache = json.loads(done.stdout.strip().splitlines()[-1])
    return {"layer": layer, "cache": cache}


async def eventually(attempt, what: str):
    """`attempt()`'s result once it stops raising (a Redis user finding the new master), bounded."""
    deadline = asyncio.get_running_loop().time() + RECOVERY_SECONDS
    while True:
        try:
            return await attempt()
        except Exception as error:  # noqa: BLE001 - any failure: not there yet
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"{what} did not recover within {RECOVERY_SECONDS}s: {error!r}") from error
            await asyncio.sleep(0.1)


def looking_away(client) -> None:
    """The pool does not ask the Sentinels until `looking_again`: its commands go to the old master, as
    they may for up to MASTER_CHECK_SECONDS after a failover (a live old master takes writes ~10 s)."""
    client.connection_pool.checked = math.inf


def looking_again(client) -> None:
    client.connection_pool.checked = 0.0


def test_every_redis_user_of_the_server_follows_a_sentinel_failover(sentinel_redis):
    url, prefix = sentinel_redis.url, f"imchat_test_sentinel_{secrets.token_hex(4)}"
    built = production_settings(url)
    layer_config = {**built["layer"]["CONFIG"], "prefix": prefix}
    cache_config = built["cache"]
    cache = import_string(cache_config["BACKEND"])(cache_config["LOCATION"], {
        **{name: value for name, value in cache_config.items() if name not in ("BACKEND", "LOCATION")},
        "KEY_PREFIX": prefix})
    presence = RedisPresence(url, prefix)

    async def scenario():
        layer_class = import_string(built["layer"]["BACKEND"])
        here, there = layer_class(**layer_config), layer_class(**layer_config)  # two server processes
        budget = SharedUserBudget(redis_client.async_client(url), prefix, rate=1, burst=2, tick=3600)
        inbox: asyncio.Queue = asyncio.Queue()  # a receive cancelled by a timeout would drop the channel
        channel = await there.new_channel()

        async def read() -> None:
            while True:
                await inbox.put(await there.receive(channel))

        reader = asyncio.create_task(read())

        async def push_reaches_the_other_process(group: str, number: int):
            await here.group_send(group, {"type": "im.push", "text": str(number)})
            while True:  # pushes sent while the inbox reconnected are gone (clients sync by seq)
                message = await asyncio.wait_for(inbox.get(), 1)
                if message["text"] == str(number):
                    return message

        async def budget_settles(user_id: int):
            for _ in range(3):
                budget.take(user_id)
            await budget.settle()
            assert outages.REDIS.up and budget.blocked_until.get(user_id), "the shared budget did not count"

        async def budget_noticed_the_move():
            await budget_settles(102)
            assert redis_client.master_moves(budget.client) == 1

        async def cache_noticed_the_move():
            await asyncio.to_thread(cache.set, "limit", 2)
            assert cache._cache._get_connection_pool(True).moves == 1

        async def presence_noticed_the_move():
            await asyncio.to_thread(presence.redis.ping)
            assert redis_client.master_moves(presence.redis) == 1

        # given: everything works through the first master
        await there.group_add("user.7", channel)
        assert presence.connected(7, "socket-a") == 1
        presence.connected(9, "socket-c")
        cache.set("limit", 1)
        await push_reaches_the_other_process("user.7", 1)
        await budget_settles(101)

        # when: a failover, and writes that reach the old master before the move is noticed
        looking_away(there._layer().redis)
        looking_away(presence.redis)
        old, new = await asyncio.to_thread(sentinel_redis.failover)
        await there.group_add("chatgroup.5", channel)
        presence.connected(8, "socket-b")
        presence.disconnected(9, "socket-c")
        looking_again(there._layer().redis)
        looking_again(presence.redis)

        # then: each one finds the new master, and what went to the old one is written again
        await eventually(lambda: push_reaches_the_other_process("user.7", 2), "the channel layer")
        await eventually(lambda: push_reaches_the_other_process("chatgroup.5", 3), "a group joined meanwhile")
        await eventually(budget_noticed_the_move, "the shared rate limits")
        await budget_settles(103)
        await eventually(cache_noticed_the_move, "the cache")
        cache.set("limit", 3)
        await eventually(presence_noticed_the_move, "presence")
        presence._beat()  # the heartbeat's next beat, without waiting for it
        assert presence.online([7, 8, 9]) == {7, 8}
        reader.cancel()
        await here.flush()
        await there.flush()
        await budget.client.aclose()
        return old, new

    old, new = asyncio.run(asyncio.wait_for(scenario(), 90))
    assert old != new
    with redis.Redis(port=new, socket_timeout=2) as master:
        assert master.info("replication")["role"] == "master"
        assert set(master.hkeys(f"{prefix}:presence:user:7")) == {b"socket-a"}
        assert set(master.hkeys(f"{prefix}:presence:user:8")) == {b"socket-b"}
        assert master.hkeys(f"{prefix}:presence:user:9") == []
        assert master.exists(f"{prefix}:rate:user:103")
        assert master.exists(f"{prefix}:1:limit")
    assert cache.get("limit") == 3
    presence.redis.close()
