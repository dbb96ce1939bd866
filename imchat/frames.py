"""WebSocket frames the common way round, without autobahn's general machinery.

Out: a push's frame, built once for every socket of this process it goes to. Through ASGI each
socket's copy of a push costs daphne a coroutine, autobahn encoding the text and framing it again,
then the write. A push to a group of 100 is one text for 100 sockets, so the frame is built once
(RFC 6455 5.2: a server's frame is unmasked; one final text frame) and written to each connection
as it is. The server adds the writer to a WebSocket's scope as an ASGI extension
(imchat/shutdown.py); without it (another server, the test communicator) frames go through ASGI's
`send` as before.

In: a client's request is one whole, final, masked text frame, read here (`read_text_frames`) and
handed to daphne as autobahn would hand it. Everything else (a control frame, a fragment, a frame
cut across reads, a binary or an oversized one, anything autobahn would refuse) is left to autobahn
from that byte on, so it answers as it always did.
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


def read_text_frames(protocol, data: bytes) -> bytes:
    """Hands daphne's protocol (an autobahn one) the messages at the head of `data` that are each
    one whole, final, masked text frame of valid UTF-8 within its limits (`onMessage`, as autobahn
    would); returns the rest, from the first byte that is anything else, for autobahn to read. The
    caller makes sure autobahn holds nothing of a frame or message before `data`.

    autobahn reads a frame through a dozen method calls, a masker object per frame and a UTF-8
    validator (~10 % of the server's CPU per private message, py-spy); here it is a header, an XOR
    and a decode."""
    limit = min([size for size in (protocol.maxFramePayloadSize, protocol.maxMessagePayloadSize) if size > 0],
                default=1 << 62)
    start, end = 0, len(data)
    while end - start >= 6 and data[start] == 0x81 and protocol.state == protocol.STATE_OPEN:  # FIN, text
        second = data[start + 1]
        if not second & 0x80:  # a client's frame is masked (RFC 6455 5.1): autobahn fails it
            break
        length, header = second & 0x7F, 6
        if length == 126 and end - start >= 8:
            length, header = (data[start + 2] << 8) | data[start + 3], 8
            if length < 126:  # not the shortest encoding: autobahn refuses it
                break
        elif length >= 126:  # a 64-bit length (over daphne's 1 MiB limit anyway), or a cut header
            break
        if length > limit or end - start < header + length:
            break
        mask = data[start + header - 4:start + header]
        masked = data[start + header:start + header + length]
        payload = (int.from_bytes(masked, "big") ^ int.from_bytes((mask * (length // 4 + 1))[:length], "big")
                   ).to_bytes(length, "big")
        try:
            payload.decode()
        except UnicodeDecodeError:  # autobahn fails the connection (1007)
            break
        protocol.onMessage(payload, False)
        start += header + length
    if start and protocol.autoPingTimeoutCall and protocol.autoPingRestartOnAnyTraffic:
        protocol._cancelAutoPingTimeoutCall()  # as autobahn does: data stands in for a late pong
    return data[start:] if start else data
