"""A queue for one reader: what an idle socket holds twice (its channel's events, its ASGI input).

An asyncio.Queue costs ~3 KB (two deques, a Condition and its lock); this is a list and at most one
future, for the one task that reads it (a socket's consumer). Not for several readers.
"""

import asyncio


class Mailbox:
    """Messages for one reader, in order."""

    __slots__ = ("items", "head", "waiter")

    def __init__(self):
        self.items: list = []
        self.head = 0  # the next to read: a flood of frames is read in O(1) each, not list.pop(0)'s O(n)
        self.waiter: asyncio.Future | None = None

    def put(self, message) -> None:
        self.items.append(message)
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def get(self):
        while self.head == len(self.items):
            self.waiter = asyncio.get_running_loop().create_future()
            try:
                await self.waiter
            finally:
                self.waiter = None
        message = self.items[self.head]
        self.head += 1
        if self.head == len(self.items):
            self.items, self.head = [], 0
        return message

    put_nowait = put  # as asyncio.Queue's, for daphne
