"""imchat/frames.py: a push's frame built once, read back by a real WebSocket client's parser."""

import pytest
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from imchat.frames import text_frame


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
