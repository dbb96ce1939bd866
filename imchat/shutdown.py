"""SIGTERM drains the process instead of dropping every socket at once (daphne's own SIGTERM stops
the reactor: each client sees its socket die with 1006 and nothing is told to anyone).

In order, bounded by IM_SHUTDOWN_SECONDS: `/readyz` answers 503 and the listening ports close (the
balancer and the clients go to the other processes); every socket is closed with 4012 once the
request it is handling is answered, and the message batches in flight are stored and pushed
(chat/draining.py); the channel layer unregisters this process's groups, so no process routes to
it; then the reactor stops and the process exits 0. Past the bound it exits 1 whatever is left.
A second SIGTERM, or SIGINT, stops at once. Imported by imchat/serve.py after the loop policy is
set (importing daphne.server installs Twisted's reactor on the current loop).
"""

import asyncio
import logging
import os
import threading
from functools import partial

from daphne.server import Server
from daphne.ws_protocol import WebSocketProtocol
from django.conf import settings
from twisted.internet import reactor
from twisted.internet.error import ReactorNotRunning

from imchat import frames
from imchat.mailbox import Mailbox

logger = logging.getLogger(__name__)


class DrainingServer(Server):
    """daphne's server, with SIGTERM handled as above, and a socket's input in a Mailbox."""

    def create_application(self, protocol, scope):
        """daphne's, but a WebSocket's ASGI input is a Mailbox (imchat/mailbox.py: its one reader is
        the consumer), ~3 KB less than the asyncio.Queue daphne makes for every connection; and its
        scope offers the connection's frame writer (imchat/frames.py)."""
        if scope["type"] != "websocket":
            return super().create_application(protocol, scope)
        assert "application_instance" not in self.connections[protocol]
        input_queue = Mailbox()
        scope.setdefault("asgi", {"version": "3.0"})
        scope["extensions"] = {**(scope.get("extensions") or {}), frames.EXTENSION: frames.writer_of(protocol)}
        instance = self.application(scope=scope, receive=input_queue.get, send=partial(self.handle_reply, protocol))
        if protocol not in self.connections:
            return None
        self.connections[protocol]["application_instance"] = asyncio.ensure_future(instance)
        return input_queue

    def run(self):
        self.ports = []
        self.draining: asyncio.Task | None = None
        reactor.sigTerm = self.sig_term  # read when the reactor installs its signal handlers
        super().run()

    def listen_success(self, port):
        self.ports.append(port)
        self.ws_factory.protocol = FastReadWebSocketProtocol  # before the first connection
        super().listen_success(port)

    def sig_term(self, number, frame) -> None:
        reactor.callFromThread(self.start_draining)

    def start_draining(self) -> None:
        if self.draining is not None:
            logger.warning("second SIGTERM: stopping now")
            self.stop()
            return
        bound = settings.IM_SHUTDOWN_SECONDS
        watchdog = threading.Timer(bound, _exit_past_bound, args=(bound,))
        watchdog.daemon = True
        watchdog.start()
        self.draining = asyncio.ensure_future(self.drain(bound))

    async def drain(self, bound: float) -> None:
        from channels.layers import get_channel_layer

        from chat import draining
        from imchat import health

        loop = asyncio.get_running_loop()
        started = loop.time()
        health.mark_draining()
        for port in self.ports:
            port.stopListening()
        sockets = draining.open_sockets()
        logger.info("SIGTERM: draining %d sockets (at most %.0f s)", sockets, bound)
        try:
            # the last fifth of the bound is for unregistering and the reactor's own shutdown
            left = await draining.close_sockets(deadline=started + bound * 0.8)
            if left:
                logger.warning("%d sockets were still open at the shutdown bound", left)
            await asyncio.wait_for(get_channel_layer().flush(), timeout=max(0.1, started + bound * 0.9 - loop.time()))
        except Exception:
            logger.exception("draining failed; stopping anyway")
        logger.info("drained %d sockets in %.1f s; stopping", sockets, loop.time() - started)
        try:
            self.stop()
        except ReactorNotRunning:  # a second SIGTERM stopped it meanwhile
            pass


class FastReadWebSocketProtocol(WebSocketProtocol):
    """daphne's WebSocket protocol, reading requests with `frames.read_text_frames` while autobahn
    is between messages (nothing of a frame held, no message begun, no compression, no frame log)."""

    def dataReceived(self, data: bytes) -> None:
        if (self.state == self.STATE_OPEN and not self.data and self.current_frame is None
                and not self.inside_message and self._perMessageCompress is None and not self.logFrames):
            data = frames.read_text_frames(self, data)
            if not data:
                return
        self._dataReceived(data)


def _exit_past_bound(bound: float) -> None:
    logger.error("shutdown took longer than IM_SHUTDOWN_SECONDS=%s: exiting now", bound)
    logging.shutdown()
    os._exit(1)
