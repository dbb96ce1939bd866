"""The channel layer: channels-redis' pub/sub layer, with publishes pipelined per event-loop tick.

The stock layer sends each `group_send` as its own PUBLISH behind a lock, one round trip each, so
under load every push waits for all the pushes before it. Here every `group_send` made while the
previous round trip is in flight goes out in the next pipeline: one write and one round trip for
all of them, in the order they were made. Subscriptions and receiving are the stock layer's.
"""

import asyncio
from weakref import WeakKeyDictionary

from channels_redis.pubsub import RedisPubSubChannelLayer
from channels_redis.utils import create_pool
from redis import asyncio as aioredis


class PipelinedPubSubChannelLayer(RedisPubSubChannelLayer):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._publishers: WeakKeyDictionary[asyncio.AbstractEventLoop, dict[int, Publisher]] = WeakKeyDictionary()

    async def group_send(self, group, message):
        layer = self._get_layer()
        channel = layer._get_group_channel_name(group)
        shard = layer._get_shard(channel)
        publishers = self._publishers.setdefault(asyncio.get_running_loop(), {})
        publisher = publishers.get(id(shard))
        if publisher is None:
            publisher = publishers[id(shard)] = Publisher(shard.host)
        await publisher.publish(channel, self.serialize(message))

    async def flush(self):
        for publisher in self._publishers.pop(asyncio.get_running_loop(), {}).values():
            await publisher.close()
        await super().flush()


class Publisher:
    """One Redis connection's worth of PUBLISHes, sent a pipeline at a time."""

    def __init__(self, host: dict):
        self.redis = aioredis.Redis(connection_pool=create_pool(host))
        self.outbox: list[tuple[str, bytes, asyncio.Future]] = []
        self.sender: asyncio.Task | None = None

    async def publish(self, channel: str, data: bytes) -> None:
        """Returns once Redis took the message; raises what the round trip raised."""
        sent = asyncio.get_running_loop().create_future()
        self.outbox.append((channel, data, sent))
        if self.sender is None:
            self.sender = asyncio.ensure_future(self._send())
        await sent

    async def _send(self) -> None:
        try:
            while self.outbox:
                batch, self.outbox = self.outbox, []
                try:
                    async with self.redis.pipeline(transaction=False) as pipe:
                        for channel, data, _ in batch:
                            pipe.publish(channel, data)
                        await pipe.execute()
                except Exception as error:  # every waiter of this round trip learns it
                    for _, _, sent in batch:
                        if not sent.done():
                            sent.set_exception(error)
                else:
                    for _, _, sent in batch:
                        if not sent.done():
                            sent.set_result(None)
        finally:
            self.sender = None

    async def close(self) -> None:
        await self.redis.aclose(close_connection_pool=True)
