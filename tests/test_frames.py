"""imchat/frames.py: a push's frame built once, read back by a real WebSocket client's parser, and
written to a real Twisted connection over a real socket."""

import socket
from types import SimpleNamespace

import pytest
from twisted.internet import tcp
from twisted.internet.selectreactor import SelectReactor
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from imchat.frames import text_frame, writer_of


def parsed(data: bytes) -> Frame:
    """The frame as the `websockets` client reads it (unmasked: from a server)."""
    reader = StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    parser = Frame.parse(reader.read_exact, mask=False)
    try:
        next(parser)
    except StopIteration as done:
        return done.value
    raise AssertionError("the parser waits for more")


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 70000])
def test_a_built_frame_is_one_final_text_frame_of_exactly_the_text(size):
    text = ("消息" * size)[:size]  # three bytes a character: every length encoding's edge
    frame = parsed(text_frame(text))

    assert (frame.opcode, frame.fin, frame.rsv1) == (Opcode.TEXT, True, False)
    assert frame.data.decode() == text


def test_the_header_counts_every_byte_of_the_text():
    with pytest.raises(EOFError):
        parsed(text_frame("x" * 300)[:-1])


def test_frames_a_socket_takes_only_in_part_reach_it_whole_and_in_order():
    """A frame goes to the socket at once only while Twisted holds nothing for it; what the socket
    does not take waits in Twisted's buffer, and so does every frame after it."""
    ours, theirs = socket.socketpair()
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    theirs.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    ours.setblocking(False)
    reactor = SelectReactor()  # never run: the test calls doWrite() where the reactor would
    connection = tcp.Connection(ours, None, reactor)
    connection.connected = True
    write = writer_of(SimpleNamespace(state=1, STATE_OPEN=1, transport=connection))
    sent = [text_frame(f"{n:03d}" + "x" * 10_000) for n in range(40)]

    theirs.setblocking(False)

    def read(size: int) -> bytes:
        try:
            return theirs.recv(size)
        except BlockingIOError:
            return b""

    received = bytearray()
    for frame in sent:
        assert write(frame)
        received += read(3_000)  # the reader keeps up only partly
    assert connection._tempDataLen or connection.dataBuffer  # some waited in Twisted's buffer
    for _ in range(10_000):
        if len(received) == sum(map(len, sent)):
            break
        connection.doWrite()
        received += read(1 << 16)

    assert bytes(received) == b"".join(sent)
    connection.socket.close()
    theirs.close()


def test_a_closing_connection_takes_no_frame():
    ours, theirs = socket.socketpair()
    connection = tcp.Connection(ours, None, SelectReactor())
    connection.connected = True
    assert not writer_of(SimpleNamespace(state=2, STATE_OPEN=1, transport=connection))(text_frame("late"))
    ours.close()
    theirs.close()
