"""imchat/frames.py: a push's frame built once, read back by a real WebSocket client's parser, and
written to a real Twisted connection over a real socket; clients' frames, made by a real WebSocket
client's serializer, read in or left to autobahn byte for byte."""

import socket
from types import SimpleNamespace

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from twisted.internet import tcp
from twisted.internet.selectreactor import SelectReactor
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from imchat.frames import read_text_frames, text_frame, writer_of
from tests.e2e.harness import client_frame


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


# --- Clients' frames in --------------------------------------------------------------------------


class Protocol(SimpleNamespace):
    """What read_text_frames uses of daphne's protocol: its limits, its state and onMessage."""

    STATE_OPEN, STATE_CLOSING = 1, 2

    def __init__(self, limit: int = 1 << 20):
        super().__init__(maxFramePayloadSize=limit, maxMessagePayloadSize=limit, state=1, messages=[],
                         autoPingTimeoutCall=None, autoPingRestartOnAnyTraffic=True)

    def _cancelAutoPingTimeoutCall(self) -> None:
        self.autoPingTimeoutCall = None

    def onMessage(self, payload: bytes, is_binary: bool) -> None:
        self.messages.append((payload.decode(), is_binary))


@given(st.lists(st.text(max_size=300), max_size=6))
@example(["", "a" * 125, "b" * 126, "消息" * 100, "c" * 65_535])  # each length encoding's edge
def test_whole_text_frames_are_each_one_message_in_order(texts):
    protocol = Protocol()
    assert read_text_frames(protocol, b"".join(map(client_frame, texts))) == b""
    assert protocol.messages == [(text, False) for text in texts]


@given(st.lists(st.text(min_size=1, max_size=200), min_size=1, max_size=4), st.data())
def test_a_frame_cut_by_the_read_is_left_whole_for_autobahn(texts, data):
    frames = list(map(client_frame, texts))
    stream = b"".join(frames)
    cut = data.draw(st.integers(0, len(stream) - 1))
    whole = 0
    while sum(map(len, frames[:whole + 1])) <= cut:
        whole += 1
    protocol = Protocol()

    assert read_text_frames(protocol, stream[:cut]) == stream[sum(map(len, frames[:whole])):cut]
    assert protocol.messages == [(text, False) for text in texts[:whole]]


@pytest.mark.parametrize("odd_one", [
    pytest.param(client_frame(b"", Opcode.PING), id="a ping"),
    pytest.param(client_frame(b"\x03\xe8", Opcode.CLOSE), id="a close"),
    pytest.param(client_frame(b"{}", Opcode.BINARY), id="a binary frame"),
    pytest.param(client_frame("{", fin=False), id="a fragment"),
    pytest.param(Frame(Opcode.TEXT, b"{}").serialize(mask=False), id="an unmasked frame"),
    pytest.param(client_frame(b"\xff\xfe"), id="invalid UTF-8"),
    pytest.param(bytes([0x81 | 0x40]) + client_frame("{}")[1:], id="a reserved bit"),
    pytest.param(bytes([0x81, 0x80 | 126, 0, 5]) + client_frame("hello")[2:], id="a 16-bit length under 126"),
    pytest.param(client_frame("x" * 70_000), id="a 64-bit length"),
    pytest.param(client_frame("x" * 2_000), id="over the limit"),
])
def test_anything_but_a_plain_text_frame_is_left_to_autobahn_from_its_first_byte(odd_one):
    protocol = Protocol(limit=1_000)
    before, after = client_frame("first"), client_frame("after")

    assert read_text_frames(protocol, before + odd_one + after) == odd_one + after
    assert protocol.messages == [("first", False)]


def test_a_frame_of_a_126_byte_text_takes_the_16_bit_length():
    protocol = Protocol()
    frame = client_frame("y" * 126)
    assert frame[1] & 0x7F == 126
    assert read_text_frames(protocol, frame) == b""
    assert protocol.messages == [("y" * 126, False)]


def test_a_frame_of_exactly_the_limit_is_read_and_one_byte_more_is_not():
    protocol = Protocol(limit=1_000)
    assert read_text_frames(protocol, client_frame("z" * 1_000)) == b""
    too_big = client_frame("z" * 1_001)
    assert read_text_frames(protocol, too_big) == too_big
    assert protocol.messages == [("z" * 1_000, False)]


def test_nothing_is_read_once_the_protocol_is_closing():
    protocol = Protocol()
    protocol.state = Protocol.STATE_CLOSING
    data = client_frame("late")
    assert read_text_frames(protocol, data) == data
    assert protocol.messages == []


def test_frames_after_a_message_that_closes_the_socket_are_left_to_autobahn():
    """onMessage may close the socket (a frame too large: 4009); what follows is autobahn's to drop."""
    protocol = Protocol()

    def closing(payload, is_binary):
        protocol.messages.append((payload.decode(), is_binary))
        protocol.state = Protocol.STATE_CLOSING

    protocol.onMessage = closing
    rest = client_frame("second")
    assert read_text_frames(protocol, client_frame("first") + rest) == rest
    assert protocol.messages == [("first", False)]


def test_a_text_frame_read_stands_in_for_a_late_pong_as_with_autobahn():
    """autobahn cancels the drop it set for a ping not yet answered when a data frame arrives
    (autoPingRestartOnAnyTraffic): a busy client's requests keep its socket."""
    protocol = Protocol()
    protocol.autoPingTimeoutCall = "the drop"
    ping = client_frame(b"", Opcode.PING)
    assert read_text_frames(protocol, ping) == ping
    assert protocol.autoPingTimeoutCall == "the drop"  # nothing read: autobahn's to judge
    assert read_text_frames(protocol, client_frame("ping")) == b""
    assert protocol.autoPingTimeoutCall is None


def test_a_pending_drop_stays_when_the_option_is_off():
    protocol = Protocol()
    protocol.autoPingTimeoutCall, protocol.autoPingRestartOnAnyTraffic = "the drop", False
    assert read_text_frames(protocol, client_frame("ping")) == b""
    assert protocol.autoPingTimeoutCall == "the drop"
