"""One WebSocket: frames go to handlers.run; what comes for the socket's channel (pushes,
membership, logout, restart) reaches its SocketWriter at once, from the layer."""

import asyncio
import logging

from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer

from chat import background, dispatch, draining, handlers, protocol, realtime, throttling
from chat.protocol import Caller
from imchat import frames, metrics, outages
from imchat.errors import AppError, CloseCode, Code
from imchat.links import base_url_from_scope

logger = logging.getLogger(__name__)

class ChatConsumer(AsyncWebsocketConsumer):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.caller: Caller | None = None
        self.closing = False  # logged out, or its process shuts down: no frame is handled any more
        self.groups_joined: list[str] = []
        self.counted = False  # in imchat_sockets_open
        self.writer: realtime.SocketWriter | None = None
        self.tasks: set[asyncio.Task] = set()

    async def __call__(self, scope, receive, send):
        """Channels' AsyncConsumer.__call__ with one reader, the socket's own input: what comes for
        its channel is handed to its writer by the layer, so no second task waits on the channel
        and a frame costs no task and no asyncio.wait (Channels' await_many_dispatch)."""

        async def send_while_connected(message):
            try:
                await send(message)
            except OSError:
                # The connection was lost (ASGI 2.4 lets a server raise then: uvicorn does, daphne drops
                # the send). Its websocket.disconnect is next in line: disconnect() still runs.
                pass

        self.scope = scope
        self.channel_layer = get_channel_layer(self.channel_layer_alias)
        self.channel_name = await self.channel_layer.new_channel()
        self.base_send = send_while_connected
        try:
            while True:
                await self.dispatch(await receive())
        except StopConsumer:
            pass
        finally:
            self.channel_layer.close_channel(self.channel_name)

    async def dispatch(self, message):
        # Channels closes old DB connections on every event with a thread hop; all our DB work
        # goes through database_sync_to_async, which already does that around each call.
        handler = getattr(self, message["type"].replace(".", "_"), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def connect(self):
        background.ensure_started(handlers.BACKGROUND_JOBS)
        if "user_id" not in self.scope:
            await self.refuse(AppError(Code.NOT_LOGGED_IN, self.scope.get("auth_error", "not logged in")))
            return
        try:
            opening = await database_sync_to_async(handlers.socket_opened)(
                user_id=self.scope["user_id"], claims=self.scope.get("token_claims"),
                base_url=base_url_from_scope(self.scope), channel_name=self.channel_name)
        except AppError as error:
            await self.refuse(error)
            return
        except Exception as error:  # the database is away: the handshake fails, the client retries
            outages.report(logger, error, "opening a socket for user %s", self.scope["user_id"])
            metrics.SOCKETS_REFUSED.labels("server_fault").inc()
            await self.close(code=int(CloseCode.SERVER_FAULT))
            return
        # From here on disconnect() undoes presence, groups and the user's rate bucket.
        self.caller = caller = opening.caller
        self.groups_joined = opening.groups
        self.bucket = throttling.connection_bucket()
        self.user_bucket = throttling.user_buckets.acquire(caller.uid)
        self.shared_user_budget = throttling.shared_user_budget()
        # Join every push group before the handshake completes: once the client is connected,
        # nothing addressed to it can pass it by (its writer holds them until then).
        self.writer = realtime.SocketWriter(self.base_send, self.channel_name, caller.uid, self.socket_event,
                                            write_frame=(self.scope.get("extensions") or {}).get(frames.EXTENSION))
        self.channel_layer.attach(self.channel_name, self.writer.receive)
        try:
            await self.channel_layer.group_add_many(opening.groups, self.channel_name)
        except Exception as error:
            outages.report(logger, error, "joining push groups for user %s", caller.uid)
            metrics.SOCKETS_REFUSED.labels("server_fault").inc()
            await self.disconnect(CloseCode.SERVER_FAULT)
            await self.close(code=int(CloseCode.SERVER_FAULT))
            return
        await self.accept()
        await self.writer.release()
        metrics.SOCKETS_OPENED.inc()
        metrics.SOCKETS_OPEN.inc()
        self.counted = True
        # ties this socket's id (on every line logged for it) to its user
        logger.info("socket opened: user %s, %d push groups", caller.uid, len(opening.groups))
        await draining.socket_opened(self.channel_name)
        if opening.after_join is not None:
            try:
                await realtime.deliver(await database_sync_to_async(opening.after_join)())
            except Exception as error:  # the socket works; the queue moves at the next drain
                outages.report(logger, error, "after-connect work for user %s", caller.uid)

    async def refuse(self, error: AppError) -> None:
        """Accepted, told why in one frame, closed: -200 with 4401, -429 with 4429."""
        metrics.SOCKETS_REFUSED.labels("not_logged_in" if error.code == Code.NOT_LOGGED_IN else "too_many").inc()
        await self.accept()
        code = CloseCode.NOT_LOGGED_IN if error.code == Code.NOT_LOGGED_IN else CloseCode.TOO_MANY_SOCKETS
        await self._close_with(error, code)

    async def _close_with(self, error: AppError, close_code: CloseCode) -> None:
        """The error frame, then the close code that goes with it."""
        await self.send(protocol.dumps(protocol.error_reply(error)))
        await self.close(code=int(close_code))

    async def disconnect(self, code):
        if self.counted:
            self.counted = False
            metrics.SOCKETS_OPEN.dec()
        if self.caller is None:
            return
        logger.info("socket closed: user %s, code %s", self.caller.uid, code)
        try:
            await self.channel_layer.group_discard_many(self.groups_joined, self.channel_name)
        except Exception as error:
            outages.report(logger, error, "leaving %s", self.groups_joined, level=logging.WARNING)
        try:
            await database_sync_to_async(handlers.socket_closed)(self.caller)
        except Exception as error:  # presence expires with its TTL; sessions close when idle
            outages.report(logger, error, "closing the socket of user %s", self.caller.uid)
        throttling.user_buckets.release(self.caller.uid)
        self.caller = None
        draining.socket_closed(self.channel_name)

    async def receive(self, text_data=None, bytes_data=None):
        if self.caller is None or self.closing:
            return
        try:
            envelope = protocol.parse(text_data, bytes_data)
        except protocol.Pong:
            metrics.frame("ping")
            await self.send(protocol.PONG_TEXT)
            return
        except protocol.FrameTooLarge as error:
            metrics.frame("too_large")
            await self._close_with(error, CloseCode.FRAME_TOO_LARGE)
            return
        except AppError as error:
            metrics.frame("invalid")
            await self.send(protocol.dumps(protocol.error_reply(error)))
            return
        wait = self.bucket.take() or self.user_bucket.take() or self.shared_user_budget.take(self.caller.uid)
        metrics.frame(handlers.FRAME_KINDS.get(envelope.key, "unknown") if not wait else "rate_limited")
        if wait:
            error = AppError(Code.RATE_LIMITED, "too many requests", {"retry_after": round(wait, 3)})
            await self.send(protocol.dumps(protocol.error_reply(error, envelope)))
            return
        self.writer.busy = True  # what this request causes for this socket comes after its reply
        try:
            frame, pushes = await dispatch.run(self.caller, envelope)
            await self.send(protocol.dumps(frame))
        finally:
            await self.writer.release()
        if pushes:
            await realtime.deliver(pushes)

    async def send(self, text_data=None, bytes_data=None, close=False):
        """A reply, PONG or error: its frame written straight to the connection where the server
        offers that (imchat/frames.py: no ASGI message, coroutine and re-encoding per frame)."""
        if text_data is None or close or self.writer is None or not self.writer.write_text(text_data):
            await super().send(text_data, bytes_data, close)

    def socket_event(self, event: dict) -> None:
        """An event for this socket from the layer, at once (frames go to its writer)."""
        kind = event["type"]
        if kind == realtime.MEMBERSHIP_EVENT:
            task = asyncio.ensure_future(self._membership(event.get("join"), event.get("leave")))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        elif self.caller is None or self.closing:
            return
        elif kind == realtime.LOGOUT_EVENT:
            # The account was deactivated or deleted: say so, close, and handle nothing more.
            self.closing = True
            error = protocol.dumps(protocol.error_reply(AppError(Code.NOT_LOGGED_IN, event["text"])))
            self.writer.close(error, int(CloseCode.NOT_LOGGED_IN))
        elif kind == realtime.RESTART_EVENT:
            # This process shuts down (chat/draining.py): 4012, the client reconnects elsewhere; a
            # request in hand still gets its reply first (the writer holds the close until then).
            self.closing = True
            self.writer.close(None, int(CloseCode.SERVICE_RESTART))

    async def _membership(self, join: str | None, leave: str | None) -> None:
        """Join or leave a chat group (invited, created, kicked, dissolved, serving a shop or not)."""
        if self.caller is None:
            return
        if join and join not in self.groups_joined:
            self.groups_joined.append(join)
            await self.channel_layer.group_add(join, self.channel_name)
        if leave and leave in self.groups_joined:
            self.groups_joined.remove(leave)
            await self.channel_layer.group_discard(leave, self.channel_name)
