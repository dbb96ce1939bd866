"""The channel layer production uses with REDIS_URL (imchat/layers.py), against the real Redis.

Each layer instance stands for one server process; several share one event loop here. The layer is
built from the CHANNEL_LAYERS that imchat/settings.py produces when REDIS_URL is set, with a prefix
of each test's own. A small TCP proxy in front of Redis stands in for a network that drops.
"""

import asyncio
import gc
import json
import logging
import os
import secrets
import subprocess
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis
from channels.layers import get_channel_layer
from django.utils.module_loading import import_string

from tests.factories import open_socket, request, synchronously
from tests.services import require_redis

pytestmark = pytest.mark.redis

ROOT = Path(__file__).resolve().parents[2]
UNREACHABLE = "redis://127.0.0.1:1/0"  # nothing listens on port 1
WAIT = 5.0


@pytest.fixture(scope="module")
def redis_url() -> str:
    return require_redis()


@pytest.fixture(scope="module")
def production_layer(redis_url) -> dict:
    """CHANNEL_LAYERS["default"] exactly as imchat/settings.py builds it when REDIS_URL is set."""
    env = {**os.environ, "DJANGO_DEBUG": "1", "REDIS_URL": redis_url}
    done = subprocess.run(
        [sys.executable, "-c", "import json, imchat.settings as s; print(json.dumps(s.CHANNEL_LAYERS['default']))"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture
def prefix(redis_url) -> Iterator[str]:
    """A prefix no other test (or server) uses; whatever the test leaves under it is removed."""
    prefix = f"imchat_test_layer_{secrets.token_hex(6)}"
    yield prefix
    store = redis.Redis.from_url(redis_url)
    keys = list(store.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        store.delete(*keys)
    store.close()


@pytest.fixture
def make_layer(production_layer, prefix) -> Callable[..., object]:
    """`make_layer()` -> a new layer instance (one more process); `address=` points it elsewhere."""

    def make(address: str | None = None):
        config = json.loads(json.dumps(production_layer["CONFIG"]))
        if address is not None:
            config["hosts"][0]["address"] = address
        config["prefix"] = prefix
        return import_string(production_layer["BACKEND"])(**config)

    return make


def run(coroutine, timeout: float = 30):
    return asyncio.run(asyncio.wait_for(coroutine, timeout))


def push(number: int) -> dict:
    return {"type": "im.push", "text": f'{{"code":200,"msg":null,"result":{number}}}'}


async def member_of(layer, group: str) -> str:
    channel = await layer.new_channel()
    await layer.group_add(group, channel)
    return channel


async def next_message(layer, channel: str, timeout: float = WAIT) -> dict:
    return await asyncio.wait_for(layer.receive(channel), timeout)


async def nothing_more(layer, channel: str) -> bool:
    """Whether nothing arrives for a while. The receive is cancelled, so the layer lets go of the
    channel in the background; that gets a moment too, not to overlap a flush (see the flush tests)."""
    try:
        await asyncio.wait_for(layer.receive(channel), 0.3)
    except TimeoutError:
        await asyncio.sleep(0.1)
        return True
    return False


def left_behind(caught: list[warnings.WarningMessage], caplog) -> list[str]:
    """Unclosed connections and sockets, tasks destroyed while pending, errors logged by asyncio."""
    unclosed = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    logged = [r.getMessage().splitlines()[0] for r in caplog.records if r.levelno >= logging.WARNING]
    return unclosed + logged


class CuttableLink:
    """A TCP proxy to Redis whose connections can be cut and whose port can go dark, then come back."""

    def __init__(self, redis_url: str):
        target = urlsplit(redis_url)
        self.target = (target.hostname, target.port or 6379)
        self.database = target.path or "/0"
        self.server: asyncio.Server | None = None
        self.port = 0
        self.transports: list[asyncio.Transport] = []

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}{self.database}"

    async def up(self) -> None:
        self.server = await asyncio.start_server(self._link, "127.0.0.1", self.port, reuse_address=True)
        self.port = self.server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        """Refuse new connections and drop the open ones, as a failed network or Redis would."""
        self.server.close()
        for transport in self.transports:
            transport.abort()
        self.transports.clear()
        await self.server.wait_closed()

    async def _link(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self.transports += [writer.transport, upstream_writer.transport]

        async def copy(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            try:
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            except (OSError, asyncio.IncompleteReadError):
                pass
            finally:
                sink.transport.abort()

        await asyncio.gather(copy(reader, upstream_writer), copy(upstream_reader, writer))


# --- Delivery across processes ---------------------------------------------------------------------


def test_many_group_sends_of_one_tick_reach_a_member_on_another_process_all_and_in_order(make_layer):
    receiving, sending = make_layer(), make_layer()

    async def scenario():
        channel = await member_of(receiving, "user.7")
        await asyncio.gather(*(sending.group_send("user.7", push(number)) for number in range(200)))
        received = [await next_message(receiving, channel) for _ in range(200)]
        assert [message["text"] for message in received] == [push(number)["text"] for number in range(200)]
        assert all(message["type"] == "im.push" for message in received)
        assert await nothing_more(receiving, channel)
        await receiving.flush()
        await sending.flush()

    run(scenario())


def test_a_group_send_reaches_members_on_both_processes_and_only_the_groups_members(make_layer):
    first, second = make_layer(), make_layer()

    async def scenario():
        here, there = await member_of(first, "chatgroup.3"), await member_of(second, "chatgroup.3")
        elsewhere = await member_of(second, "chatgroup.4")
        await first.group_send("chatgroup.3", push(1))
        assert (await next_message(first, here))["text"] == push(1)["text"]
        assert (await next_message(second, there))["text"] == push(1)["text"]
        assert await nothing_more(second, elsewhere)
        # and after leaving, a member gets nothing more
        await second.group_discard("chatgroup.3", there)
        await first.group_send("chatgroup.3", push(2))
        assert (await next_message(first, here))["text"] == push(2)["text"]
        assert await nothing_more(second, there)
        await first.flush()
        await second.flush()

    run(scenario())


def test_an_attached_receiver_gets_a_channels_messages_at_once_from_both_processes_and_declines_go_to_the_queue(
        make_layer):
    here, there = make_layer(), make_layer()

    async def scenario():
        channel = await member_of(here, "user.8")
        taken = []
        here.attach(channel, lambda message: message["type"] == "im.push" and not taken.append(message["text"]))
        # a local send is handed over before group_send returns: no task, no wake-up of the consumer
        await here.group_send("user.8", push(1))
        assert taken == [push(1)["text"]]
        # from another process, in order, through its inbox
        for number in range(2, 6):
            await there.group_send("user.8", push(number))
        for _ in range(50):
            if len(taken) == 5:
                break
            await asyncio.sleep(0.05)
        assert taken == [push(number)["text"] for number in range(1, 6)]
        # what the receiver declines is queued for the channel's consumer, in order (both from the
        # other process: a local send could overtake one still on its way through Redis)
        await there.group_send("user.8", {"type": "im.logout", "text": "bye"})
        await there.send(channel, {"type": "im.restart"})
        assert (await next_message(here, channel))["type"] == "im.logout"
        assert (await next_message(here, channel))["type"] == "im.restart"
        await here.send(channel, {"type": "im.restart"})  # and a local one
        assert (await next_message(here, channel))["type"] == "im.restart"
        assert await nothing_more(here, channel)  # the consumer is gone: its receiver with it
        await here.group_send("user.8", push(6))
        assert len(taken) == 5
        await here.flush()
        await there.flush()

    run(scenario())


def test_without_redis_the_layer_routes_this_processs_groups_the_same_way():
    from imchat.layers import RoutedChannelLayer

    layer = RoutedChannelLayer()  # what `make run` and the unit tests use: no hosts

    async def scenario():
        first, second = await member_of(layer, "chatgroup.9"), await member_of(layer, "chatgroup.9")
        taken = []
        layer.attach(second, lambda message: not taken.append(message["text"]))
        await layer.group_send_many([("chatgroup.9", push(1)), ("user.404", push(2))])
        assert (await next_message(layer, first))["text"] == push(1)["text"]
        assert taken == [push(1)["text"]]
        await layer.send("specific.elsewhere!nobody", push(3))  # no other process to reach: nothing happens
        await layer.group_discard("chatgroup.9", first)
        await layer.group_send("chatgroup.9", push(4))
        assert await nothing_more(layer, first)
        assert taken == [push(1)["text"], push(4)["text"]]
        # a consumer that never waited on its channel closes it: its receiver and groups go too
        layer.close_channel(second)
        await asyncio.sleep(0.05)
        await layer.group_send("chatgroup.9", push(5))
        assert taken == [push(1)["text"], push(4)["text"]]
        await layer.flush()

    run(scenario())


def test_a_group_send_to_a_group_nobody_joined_does_not_raise(make_layer):
    lonely, other = make_layer(), make_layer()

    async def scenario():
        await member_of(other, "user.1")  # another process is up, just not in this group
        await lonely.group_send("user.404", push(1))
        await asyncio.gather(*(lonely.group_send(f"user.{n}", push(n)) for n in range(500, 520)))
        await lonely.flush()
        await other.flush()

    run(scenario())


def test_a_socket_joining_all_its_groups_at_once_gets_each_groups_pushes_from_another_process(make_layer, prefix,
                                                                                            redis_url):
    here, there = make_layer(), make_layer()
    groups = ["user.60", "everyone", "chatgroup.60", "shop.60.agents"]

    async def scenario():
        channel = await here.new_channel()
        await here.group_add_many(groups, channel)
        for number, group in enumerate(groups):
            await there.group_send(group, push(number))
            assert (await next_message(here, channel))["text"] == push(number)["text"]

        # and once it leaves them all, no process routes them here any more
        await here.group_discard_many(groups, channel)
        store = redis.Redis.from_url(redis_url)
        assert [store.smembers(f"{prefix}:layer:group:{group}") for group in groups] == [set()] * len(groups)
        store.close()
        await here.flush()
        await there.flush()

    run(scenario())


def test_a_socket_whose_groups_cannot_be_registered_is_left_in_none_of_them(make_layer):
    broken = make_layer(UNREACHABLE)

    async def scenario():
        channel = await broken.new_channel()
        with pytest.raises(redis.ConnectionError):
            await asyncio.wait_for(broken.group_add_many(["user.70", "chatgroup.70"], channel), WAIT)
        layer = broken._layer()
        assert (layer.groups, layer.memberships, layer.registrations) == ({}, {}, {})
        # the next socket tries again (and fails again: no hang, no stale registration)
        with pytest.raises(redis.ConnectionError):
            await asyncio.wait_for(broken.group_add_many(["user.70"], await broken.new_channel()), WAIT)

    run(scenario())


# --- Shutting down ---------------------------------------------------------------------------------


def test_flush_closes_cleanly_leaves_nothing_in_redis_and_the_layer_serves_again(make_layer, prefix, redis_url,
                                                                                 caplog):
    receiving, sending = make_layer(), make_layer()

    async def scenario():
        channel = await member_of(receiving, "user.9")
        await sending.group_send("user.9", push(1))
        assert (await next_message(receiving, channel))["text"] == push(1)["text"]

        await receiving.flush()
        await sending.group_send("user.9", push(2))  # its only member's process is gone: no error

        channel = await member_of(receiving, "user.9")  # a flushed layer can be used again
        await sending.group_send("user.9", push(3))
        assert (await next_message(receiving, channel))["text"] == push(3)["text"]
        await receiving.flush()
        await sending.flush()

    gc.collect()  # what earlier tests left behind is not this test's to report
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with caplog.at_level(logging.WARNING):
            run(scenario())
            gc.collect()
    store = redis.Redis.from_url(redis_url)
    left = list(store.scan_iter(match=f"{prefix}*"))
    store.close()
    assert left == []
    assert not left_behind(caught, caplog), "\n".join(left_behind(caught, caplog))


def test_a_flush_as_a_consumer_goes_away_leaves_no_task_or_connection_behind(make_layer, prefix, redis_url, caplog):
    layer = make_layer()

    async def scenario():
        channel = await member_of(layer, "user.10")
        waiting = asyncio.ensure_future(layer.receive(channel))
        await asyncio.sleep(0)
        waiting.cancel()  # the consumer goes away (the layer lets go of its channel) as the process stops
        await layer.flush()
        await asyncio.sleep(0.2)  # whatever the layer still had running has had its chance to finish

    gc.collect()  # what earlier tests left behind is not this test's to report
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with caplog.at_level(logging.WARNING):
            run(scenario())
            gc.collect()
    assert not left_behind(caught, caplog), "\n".join(left_behind(caught, caplog))


# --- Redis failures --------------------------------------------------------------------------------


def test_a_group_send_raises_when_redis_cannot_be_reached_and_a_healthy_layer_still_delivers(make_layer):
    broken, receiving, healthy = make_layer(UNREACHABLE), make_layer(), make_layer()

    async def scenario():
        with pytest.raises(redis.ConnectionError):
            await asyncio.wait_for(broken.group_send("user.5", push(1)), WAIT)
        # every send waiting on a failed round trip learns it, and the next one fails again (no hang)
        outcomes = await asyncio.wait_for(
            asyncio.gather(*(broken.group_send("user.5", push(n)) for n in range(5)), return_exceptions=True), WAIT)
        assert all(isinstance(outcome, redis.ConnectionError) for outcome in outcomes), outcomes
        with pytest.raises(redis.ConnectionError):
            await asyncio.wait_for(broken.group_send("user.5", push(6)), WAIT)

        channel = await member_of(receiving, "user.5")
        await healthy.group_send("user.5", push(7))
        assert (await next_message(receiving, channel))["text"] == push(7)["text"]
        await receiving.flush()
        await healthy.flush()

    run(scenario())


def test_a_send_during_a_cut_raises_and_the_same_layers_deliver_again_once_redis_is_back(make_layer, redis_url):
    link = CuttableLink(redis_url)

    async def scenario():
        await link.up()
        # given a process reaching Redis through the link, and one reaching it directly
        behind, direct = make_layer(link.url), make_layer()
        there, here = await member_of(direct, "user.11"), await member_of(behind, "user.12")
        await behind.group_send("user.11", push(1))
        assert (await next_message(direct, there))["text"] == push(1)["text"]

        # when the link drops, then a send through it raises
        await link.cut()
        with pytest.raises(redis.ConnectionError):
            await asyncio.wait_for(behind.group_send("user.11", push(2)), WAIT * 3)

        # and once it is back, the same layer sends again, and receives again
        await link.up()
        await asyncio.wait_for(behind.group_send("user.11", push(3)), WAIT)
        assert (await next_message(direct, there))["text"] == push(3)["text"]
        waiting = asyncio.ensure_future(behind.receive(here))
        for attempt in range(50):  # its subscription comes back on its own, within seconds
            await direct.group_send("user.12", push(100 + attempt))
            if (await asyncio.wait({waiting}, timeout=0.2))[0]:
                break
        else:
            waiting.cancel()
            pytest.fail("the layer behind the link never received again after the link came back")
        assert waiting.result()["text"].startswith('{"code":200')
        await behind.flush()
        await direct.flush()
        await link.cut()

    run(scenario(), timeout=60)


# --- Through the real consumer ---------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@synchronously
async def test_the_socket_that_creates_a_group_gets_the_groups_messages(production_layer, prefix, settings, alice,
                                                                         bob):
    # given the production layer; the 306 "invited" skips the acting socket, but carries the join
    settings.CHANNEL_LAYERS = {"default": {**production_layer, "CONFIG": {**production_layer["CONFIG"],
                                                                          "prefix": prefix}}}
    phone, bobs = await open_socket(alice), await open_socket(bob)
    try:
        created = await request(phone, "group", "create", {"name": "Hikers", "uids": [bob.pk]})
        assert created["code"] == 1, created
        assert (await bobs.receive_json_from(timeout=WAIT))["code"] == 306

        # when bob writes to the group
        sent = await request(bobs, "chat", "sendMsg", {"to_uid": created["result"]["group_id"], "chat_type": 2,
                                                       "msg_type": 1, "msg": "hi all", "chat_id": ""})

        # then the socket alice created it from gets it
        assert sent["code"] == 1, sent
        pushed = await phone.receive_json_from(timeout=WAIT)
        assert (pushed["code"], pushed["result"]["msg"]) == (200, "hi all")
    finally:
        for communicator in (phone, bobs):
            if not communicator.future.done():  # a receive that timed out has stopped its socket already
                await communicator.disconnect()
        await asyncio.sleep(0.2)  # the layer lets go of the closed sockets' channels in the background
        await get_channel_layer().flush()


def test_a_process_registers_its_groups_again_when_redis_forgot_them(make_layer, prefix, redis_url):
    """Redis restarted without its data: the heartbeat notices and the groups route again."""
    config_layer = make_layer()
    config_layer.resync_seconds = 0.2
    sender = make_layer()

    async def scenario():
        channel = await member_of(config_layer, "user.30")
        store = redis.Redis.from_url(redis_url)
        store.delete(*store.scan_iter(match=f"{prefix}*"))  # what a restart without persistence leaves
        store.close()
        await asyncio.sleep(1.0)  # a few heartbeats
        await sender.group_send("user.30", push(30))
        assert (await next_message(config_layer, channel))["text"] == push(30)["text"]
        await config_layer.flush()
        await sender.flush()

    run(scenario())


def test_a_member_that_joins_while_its_group_is_being_registered_waits_for_it(make_layer):
    """group_add returns only once other processes route the group here, for the second member too
    (a socket joins its groups before its handshake completes: nothing may pass it by)."""
    here, there = make_layer(), make_layer()

    async def scenario():
        first, second = await here.new_channel(), await here.new_channel()
        async with here._layer().registering:  # Redis is slow to take the first member's SADD
            joining_first = asyncio.ensure_future(here.group_add("user.40", first))
            await asyncio.sleep(0.05)
            joining_second = asyncio.ensure_future(here.group_add("user.40", second))
            await asyncio.sleep(0.05)
            assert not joining_second.done()
        await asyncio.wait_for(asyncio.gather(joining_first, joining_second), WAIT)
        await there.group_send("user.40", push(40))
        assert (await next_message(here, second))["text"] == push(40)["text"]
        await here.flush()
        await there.flush()

    run(scenario())


def test_a_consumer_that_goes_away_without_leaving_is_taken_out_of_its_groups(make_layer, prefix, redis_url):
    """Its receive is cancelled: the layer drops it from every group it was in (and from Redis once a
    group has no member left here), while the other members keep getting pushes."""
    here, there = make_layer(), make_layer()

    async def scenario():
        gone, staying = await member_of(here, "user.50"), await member_of(here, "chatgroup.50")
        await here.group_add("chatgroup.50", gone)
        waiting = asyncio.ensure_future(here.receive(gone))
        await asyncio.sleep(0)
        waiting.cancel()
        await asyncio.sleep(0.2)  # the discards it started
        store = redis.Redis.from_url(redis_url)
        assert store.smembers(f"{prefix}:layer:group:user.50") == set()
        assert store.smembers(f"{prefix}:layer:group:chatgroup.50") != set()
        store.close()
        await there.group_send("chatgroup.50", push(50))
        assert (await next_message(here, staying))["text"] == push(50)["text"]
        await here.flush()
        await there.flush()

    run(scenario())
