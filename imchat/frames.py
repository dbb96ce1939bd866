"""A push's WebSocket frame, built once for every socket of this process it goes to.

Through ASGI each socket's copy of a push costs daphne a coroutine, autobahn encoding the text and
framing it again, then the write. A push to a group of 100 is one text for 100 sockets, so the
frame is built once (RFC 6455 5.2: a server's frame is unmasked; one final text frame) and written
to each connection as it is. The server adds the writer to a WebSocket's scope as an ASGI
extension (imchat/shutdown.py); without it (another server, the test communicator) frames go
through ASGI's `send` as before.
"""

import struct
from collections.abc import Callable

EXTENSION = "imchat.write_frame"  # scope["extensions"][EXTENSION]: write(frame) -> written?

FrameWriter = Callable[[bytes], bool]


def text_frame(text: str) -> bytes:
    """One final, unmasked text frame holding `text`."""
    payload = text.encode()
    size = len(payload)
    if size < 126:
        return struct.pack("!BB", 0x81, size) + payload
    if size < 1 << 16:
        return struct.pack("!BBH", 0x81, 126, size) + payload
    return struct.pack("!BBQ", 0x81, 127, size) + payload


def writer_of(protocol) -> FrameWriter:
    """Writes a frame to daphne's connection (an autobahn protocol) while it is open; False
    otherwise (a closing or closed socket: the frame then goes ASGI's way, which knows).

    A frame goes to the socket at once when nothing of Twisted's waits before it: Twisted's own
    `write` buffers it, registers the socket with the event loop and unregisters it once written (two
    `epoll_ctl` calls and a loop turn per frame, ~13 % of the server's CPU in private chat). What the
    socket does not take, and every frame while Twisted holds data, goes through Twisted's `write`,
    so the order holds; TLS connections always do.
    """
    transport = protocol.transport
    sock = None if getattr(transport, "TLS", True) else getattr(transport, "socket", None)

    def write(frame: bytes) -> bool:
        if protocol.state != protocol.STATE_OPEN:
            return False
        if sock is not None and _nothing_buffered(transport):
            try:
                sent = sock.send(frame)
            except OSError:  # full (EAGAIN), or broken: Twisted's write finds out and closes its way
                sent = 0
            if sent == len(frame):
                return True
            frame = frame[sent:]
        transport.write(frame)
        return True

    return write


def _nothing_buffered(transport) -> bool:
    """Whether a Twisted TCP connection is open for writing with nothing waiting to be written."""
    return (transport.connected and not transport.disconnecting and not transport._writeDisconnected
            and not transport._tempDataLen and transport.offset == len(transport.dataBuffer))
