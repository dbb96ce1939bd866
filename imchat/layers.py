"""The channel layer: groups routed per process through Redis (or, without Redis, one process's own).

channels-redis' pub/sub layer publishes every `group_send` to Redis, and every process subscribed to
the group reads it back, its own sockets included: a publish, a parse and a queue per push, even when
sender and receiver share a process. PITFALLS.md measured that per-push path as the wall. Here Redis
holds, per group, the set of processes with members in it. A push goes straight to this process's
members, and the pushes of one event-loop tick bound for other processes cost one round trip: a
script (SEND_TO_OTHERS) that looks the groups up and sends each other process one PUBLISH of its
items, in order. A socket joins all its groups at once (`group_add_many`): those new to this
process are registered in one pipeline.

A channel may have a receiver (`attach`): a plain function that gets each message for the channel
at once, in the loop that delivers it, instead of a queue entry that wakes the channel's consumer
(a task and an `asyncio.wait` per message). What the receiver declines (returns False) is queued as
usual. The layer reads no key of a message but its routing.

Without hosts (`make run`, the unit tests) there is no Redis: the same groups and receivers, and
nothing to reach beyond this process.

If Redis restarts without its data, each process sees within `resync_seconds` that its heartbeat key
is gone and registers its groups again; so it does after a Sentinel failover
(imchat/redis_client.py). Pushes in that gap reach only local sockets; clients fill gaps by seq
(chat.sync), as for any missed push.
"""

import asyncio
import contextvars
import logging
import uuid
from collections.abc import Callable
from io import BytesIO

import msgpack
from channels_redis.utils import decode_hosts

from imchat import outages, redis_client
from imchat.mailbox import Mailbox

logger = logging.getLogger(__name__)


class RoutedChannelLayer:
    """The Channels layer interface (channels and groups, flush); one `LoopLayer` per event loop."""

    extensions = ["groups", "flush"]

    def __init__(self, hosts=None, prefix: str = "asgi", resync_seconds: float = 2.0, **kwargs):
        self.host = decode_hosts(hosts)[0] if hosts else None
        self.prefix = prefix
        self.resync_seconds = resync_seconds
        self._layers: dict[asyncio.AbstractEventLoop, LoopLayer] = {}

    def _layer(self) -> "LoopLayer":
        loop = asyncio.get_running_loop()
        layer = self._layers.get(loop)
        if layer is None:
            layer = self._layers[loop] = LoopLayer(self.host, self.prefix, self.resync_seconds)
        return layer

    async def new_channel(self, prefix: str = "specific") -> str:
        return self._layer().new_channel(prefix)

    async def receive(self, channel: str) -> dict:
        return await self._layer().receive(channel)

    async def send(self, channel: str, message: dict) -> None:
        await self._layer().send(channel, message)

    async def group_add(self, group: str, channel: str) -> None:
        await self._layer().group_add_many([group], channel)

    async def group_add_many(self, groups: list[str], channel: str) -> None:
        """All of a socket's groups with one Redis round trip (none if this process has them all)."""
        await self._layer().group_add_many(groups, channel)

    async def group_discard(self, group: str, channel: str) -> None:
        await self._layer().group_discard_many([group], channel)

    async def group_discard_many(self, groups: list[str], channel: str) -> None:
        await self._layer().group_discard_many(groups, channel)

    async def group_send(self, group: str, message: dict) -> None:
        await self._layer().group_send_many([(group, message)])

    async def group_send_many(self, sends: list[tuple[str, dict]]) -> None:
        """Many group_sends at once (one wait, no task each); raises if other processes missed them."""
        await self._layer().group_send_many(sends)

    def attach(self, channel: str, receiver: Callable[[dict], bool]) -> None:
        """`receiver(message)` gets the channel's messages first, at once; those it returns False for
        are queued for the channel's consumer. Undone when the channel is forgotten."""
        self._layer().receivers[channel] = receiver

    def close_channel(self, channel: str) -> None:
        """The channel's consumer is done (one that never waits on `receive`): forget the channel,
        its receiver, and its groups here."""
        self._layer()._forget_channel(channel)

    async def flush(self) -> None:
        layer = self._layers.pop(asyncio.get_running_loop(), None)
        if layer is not None:
            await layer.close()


# One round trip a tick: the processes of each group, and one PUBLISH to each other process of its
# items in order. KEYS: the tick's groups' keys; ARGV[1]: this process, ARGV[2]: the inbox key
# prefix, ARGV[3]: a msgpack array of pairs, an item's group (its position in KEYS) and the item
# (msgpack bytes). A parcel is its items' bytes one after the other. Returns the processes nobody
# heard.
SEND_TO_OTHERS = """
local others = {}
for position, key in ipairs(KEYS) do
    local found = {}
    for _, process in ipairs(redis.call('SMEMBERS', key)) do
        if process ~= ARGV[1] then found[#found + 1] = process end
    end
    others[position] = found
end
local items = cmsgpack.unpack(ARGV[3])
local parcels, order = {}, {}
for index = 1, #items, 2 do
    for _, process in ipairs(others[items[index]]) do
        local parts = parcels[process]
        if parts == nil then
            parts = {}
            parcels[process] = parts
            order[#order + 1] = process
        end
        parts[#parts + 1] = items[index + 1]
    end
end
local unheard = {}
for _, process in ipairs(order) do
    if redis.call('PUBLISH', ARGV[2] .. process, table.concat(parcels[process])) == 0 then
        unheard[#unheard + 1] = process
    end
end
return unheard
"""


ITEM_OF_GROUP = b"\x93" + msgpack.packb("group")  # the start of a packed 3-array ("group", name, message)


async def _parcel_as_is(response: list) -> list:
    """redis-py's own handler of a pub/sub message (RESP3, its default) builds a debug line of the
    whole message, `str()` of the parcel's bytes, logged or not: ~2 µs a push received (perf)."""
    return response


class LoopLayer:
    """One process's (one event loop's) channels, groups and Redis connections."""

    def __init__(self, host: dict | None, prefix: str, resync_seconds: float):
        self.process = uuid.uuid4().hex
        self.prefix = prefix
        self.resync_seconds = resync_seconds
        self.redis = None  # no Redis: this process is the whole world
        if host is not None:
            options = dict(host)
            self.redis = redis_client.async_client(options.pop("address"), **options)
            self.send_to_others = self.redis.register_script(SEND_TO_OTHERS)
        self.channels: dict[str, Mailbox] = {}
        self.receivers: dict[str, Callable[[dict], bool]] = {}
        self.groups: dict[str, set[str]] = {}
        self.memberships: dict[str, set[str]] = {}  # channel -> its groups (the index of `groups`)
        self.outbox: list[tuple[str, dict, asyncio.Future]] = []
        self.sender: asyncio.Task | None = None
        self.background: list[asyncio.Task] = []
        self.tasks: set[asyncio.Task] = set()
        self.closing = False
        self.starting = asyncio.Lock()
        self.registering = asyncio.Lock()  # SADD/SREM in the order they were asked for
        self.registrations: dict[str, asyncio.Future] = {}  # group -> its SADD (done once done)
        self.master_moves = 0  # Sentinel failovers seen (imchat/redis_client.py)

    # --- keys ---------------------------------------------------------------------------------
    def group_key(self, group: str) -> str:
        return f"{self.prefix}:layer:group:{group}"

    def inbox(self, process: str) -> str:
        return f"{self.prefix}:layer:inbox:{process}"

    def alive_key(self, process: str) -> str:
        return f"{self.prefix}:layer:alive:{process}"

    # --- channels -----------------------------------------------------------------------------
    def new_channel(self, prefix: str) -> str:
        name = f"{prefix}.{self.process}!{uuid.uuid4().hex}"
        self.channels[name] = Mailbox()
        return name

    async def receive(self, channel: str) -> dict:
        mailbox = self.channels[channel]
        try:
            return await mailbox.get()
        except asyncio.CancelledError:  # the consumer is gone: so is its channel
            self._forget_channel(channel)
            raise

    async def send(self, channel: str, message: dict) -> None:
        if channel in self.channels:
            self._hand(channel, message)
            return
        if self.redis is None:
            return  # a channel of no process: as for a socket that is gone
        process = channel.partition(".")[2].partition("!")[0]
        await self._start()
        await self.redis.publish(self.inbox(process), msgpack.packb(("channel", channel, message)))

    def _hand(self, channel: str, message: dict) -> None:
        receiver = self.receivers.get(channel)
        if receiver is None or not receiver(message):
            self.channels[channel].put(message)

    def _forget_channel(self, channel: str) -> None:
        self.channels.pop(channel, None)
        self.receivers.pop(channel, None)
        groups = self.memberships.get(channel)
        if not groups:
            return
        if self.closing:  # close() unregisters every group itself
            for group in self.memberships.pop(channel):
                self.groups.get(group, set()).discard(channel)
        else:
            self._spawn(self.group_discard_many(list(groups), channel))

    # --- groups -------------------------------------------------------------------------------
    async def group_add_many(self, groups: list[str], channel: str) -> None:
        """Returns once other processes route every group here (for a later member too). The groups
        new to this process are registered together; on failure the channel is in none of those."""
        groups = list(dict.fromkeys(groups))
        new = [group for group in groups if group not in self.registrations]
        for group in groups:
            self.groups.setdefault(group, set()).add(channel)
            self.memberships.setdefault(channel, set()).add(group)
        if self.redis is None:
            return
        if new:
            registration = asyncio.ensure_future(self._register(new))
            self.registrations.update(dict.fromkeys(new, registration))
        failed = None
        for registration in {self.registrations[group] for group in groups}:
            try:
                await asyncio.shield(registration)
            except Exception as error:
                failed = error
        if failed is not None:
            for group in groups:
                registration = self.registrations.get(group)
                if registration is not None and registration.done() and registration.exception() is not None:
                    self._leave(group, channel)
                    if not self.groups.get(group):
                        del self.registrations[group]  # the next member tries again
            raise failed

    async def _register(self, groups: list[str]) -> None:
        await self._start()
        async with self.registering:
            await self._for_each("SADD", [group for group in groups if self.groups.get(group)])  # not left meanwhile

    async def group_discard_many(self, groups: list[str], channel: str) -> None:
        """The groups this channel was the last member of here are unregistered in one round trip."""
        emptied = [group for group in dict.fromkeys(groups) if self._leave(group, channel)]
        for group in emptied:
            self.registrations.pop(group, None)
        if not emptied or self.redis is None:
            return
        async with self.registering:
            await self._for_each("SREM", [group for group in emptied if group not in self.groups])  # not joined again

    async def _for_each(self, command: str, groups: list[str]) -> None:
        """SADD or SREM this process for the groups: one round trip (a pipeline only for several)."""
        if len(groups) == 1:
            await self.redis.execute_command(command, self.group_key(groups[0]), self.process)
        elif groups:
            async with self.redis.pipeline(transaction=False) as pipe:
                for group in groups:
                    pipe.execute_command(command, self.group_key(group), self.process)
                await pipe.execute()

    def _leave(self, group: str, channel: str) -> bool:
        """Takes the channel out of the group here; whether that left the group with no member."""
        members = self.groups.get(group)
        if members is None or channel not in members:
            return False
        members.discard(channel)
        self._unindex(channel, group)
        if members:
            return False
        del self.groups[group]
        return True

    def _unindex(self, channel: str, group: str) -> None:
        groups = self.memberships.get(channel)
        if groups is not None:
            groups.discard(group)
            if not groups:
                del self.memberships[channel]

    async def group_send_many(self, sends: list[tuple[str, dict]]) -> None:
        """Local members now; other processes in this tick's pipeline (raises if that failed)."""
        for group, message in sends:
            self._deliver(group, message)
        if not sends or self.redis is None:
            return
        sent = asyncio.get_running_loop().create_future()
        self.outbox.extend((group, message, sent) for group, message in sends)
        if self.sender is None:
            self.sender = asyncio.ensure_future(self._send_outbox())
        await sent

    def _deliver(self, group: str, message: dict) -> None:
        for channel in self.groups.get(group, ()):
            if channel in self.channels:
                self._hand(channel, message)

    async def _send_outbox(self) -> None:
        try:
            while self.outbox:
                batch, self.outbox = self.outbox, []
                try:
                    await self._start()
                    await self._send_remote(batch)
                except Exception as error:
                    for _, _, sent in batch:
                        if not sent.done():
                            sent.set_exception(error)
                else:
                    for _, _, sent in batch:
                        if not sent.done():
                            sent.set_result(None)
        finally:
            self.sender = None

    async def _send_remote(self, batch: list[tuple[str, dict, asyncio.Future]]) -> None:
        positions: dict[str, int] = {}
        packed: dict[int, bytes] = {}  # a message sent to several groups is packed once
        items: list = []
        for group, message, _ in batch:
            position = positions.setdefault(group, len(positions) + 1)
            body = packed.get(id(message))
            if body is None:
                body = packed[id(message)] = msgpack.packb(message)
            items += (position, ITEM_OF_GROUP + msgpack.packb(group) + body)  # ("group", group, message)
        groups = list(positions)
        parcel = msgpack.packb(items, use_bin_type=False)  # Redis's Lua cmsgpack reads str, not bin
        unheard = await self.send_to_others(keys=[self.group_key(group) for group in groups],
                                            args=[self.process, self.inbox(""), parcel])
        if unheard:
            await self._drop_dead([process.decode() for process in unheard], groups)

    async def _drop_dead(self, processes: list[str], groups: list[str]) -> None:
        """A process nobody hears whose heartbeat expired has died: take it out of these groups."""
        for process in processes:
            if not await self.redis.exists(self.alive_key(process)):
                async with self.redis.pipeline(transaction=False) as pipe:
                    for group in groups:
                        pipe.srem(self.group_key(group), process)
                    await pipe.execute()

    # --- background: the inbox and the heartbeat ---------------------------------------------
    async def _start(self) -> None:
        if self.background:
            return
        async with self.starting:  # once, however many callers arrive at the same time
            if not self.background:
                await self._start_background()

    async def _start_background(self) -> None:
        await self.redis.set(self.alive_key(self.process), 1, ex=self._alive_ttl())
        pubsub = self.redis.pubsub(push_handler_func=_parcel_as_is)
        await pubsub.subscribe(self.inbox(self.process))
        self.background = [self._spawn(self._read_inbox(pubsub)), self._spawn(self._heartbeat())]

    def _alive_ttl(self) -> int:
        return max(10, int(self.resync_seconds * 5))

    async def _read_inbox(self, pubsub) -> None:
        while True:
            try:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if message is None:
                    continue
                for kind, name, event in msgpack.Unpacker(BytesIO(message["data"])):
                    if kind == "group":
                        self._deliver(name, event)
                    elif name in self.channels:
                        self._hand(name, event)
            except asyncio.CancelledError:
                await pubsub.aclose()
                raise
            except Exception as error:
                outages.report(logger, error, "channel layer inbox: reading failed; retrying", requests=0,
                               level=logging.WARNING)
                await asyncio.sleep(0.5)

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.resync_seconds)
            try:
                still_there = await self.redis.set(self.alive_key(self.process), 1, ex=self._alive_ttl(), xx=True)
                moves = redis_client.master_moves(self.redis)
                # Redis forgot us (restarted without data), or a Sentinel failover may have lost
                # what went to the old master: register again
                if not still_there or moves != self.master_moves:
                    self.master_moves = moves
                    await self.redis.set(self.alive_key(self.process), 1, ex=self._alive_ttl())
                    async with self.registering:
                        groups = list(self.groups)
                        await self._for_each("SADD", groups)
                    logger.warning("channel layer: Redis had lost this process's groups, or its master moved; "
                                   "%d registered again", len(groups))
                outages.REDIS.success()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                outages.report(logger, error, "channel layer heartbeat", requests=0, level=logging.WARNING)

    def _spawn(self, coroutine) -> asyncio.Task:
        # in a context of its own: the layer serves every socket, its log lines name none of them
        task = asyncio.get_running_loop().create_task(coroutine, context=contextvars.Context())
        self.tasks.add(task)  # held until done: the loop keeps only weak references
        task.add_done_callback(self.tasks.discard)
        return task

    async def close(self) -> None:
        self.closing = True
        tasks = [*self.background, *self.tasks]
        for task in self.background:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)  # discards still running finish first
        self.background = []
        if self.redis is None:
            return
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for group in self.groups:
                    pipe.srem(self.group_key(group), self.process)
                pipe.delete(self.alive_key(self.process))
                await pipe.execute()
        except Exception as error:
            outages.report(logger, error, "channel layer: unregistering on close", requests=0,
                           level=logging.WARNING)
        await self.redis.aclose(close_connection_pool=True)
