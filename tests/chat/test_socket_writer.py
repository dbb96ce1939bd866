"""chat.realtime.SocketWriter: pushes go straight to a socket's ASGI send, after the reply of the
request in hand, in order, one flush per tick for every socket (no Channels event per push)."""

import asyncio

from chat import realtime
from chat.protocol import push_text
from imchat import frames


class Socket:
    """An ASGI send that records what it is given; `gone` makes it raise as a closed connection's."""

    def __init__(self, gone: bool = False):
        self.sent: list[dict] = []
        self.gone = gone

    async def send(self, message: dict) -> None:
        if self.gone:
            raise RuntimeError("the connection is closed")
        self.sent.append(message)

    @property
    def texts(self) -> list[str]:
        return [message["text"] for message in self.sent]


def writer_of(socket: Socket, channel: str = "phone", uid: int = 1, *, accepted: bool = True) -> realtime.SocketWriter:
    writer = realtime.SocketWriter(socket.send, channel, uid)
    writer.busy = not accepted
    return writer


def run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, 10))


def test_pushes_are_written_by_one_flush_at_the_end_of_the_tick_in_order_with_one_frame_for_all_sockets():
    async def scenario():
        sockets = [Socket() for _ in range(3)]
        writers = [writer_of(socket, f"socket-{n}", uid=10 + n) for n, socket in enumerate(sockets)]
        events = [realtime.frame_event(f"push {n}") for n in range(3)]
        for event in events:
            assert all(writer.receive(event) for writer in writers)
        assert [socket.sent for socket in sockets] == [[], [], []]  # nothing written yet: one flush writes all
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert [socket.texts for socket in sockets] == [["push 0", "push 1", "push 2"]] * 3
        # the ASGI message of a push is built once, for every socket
        assert all(socket.sent[0] is events[0]["frame"] for socket in sockets)

    run(scenario())


def test_a_socket_with_a_request_in_hand_gets_its_pushes_after_the_reply():
    async def scenario():
        socket = Socket()
        writer = writer_of(socket)
        writer.busy = True  # a request is being handled
        writer.receive(realtime.frame_event("assigned to you"))
        writer.receive(realtime.frame_event("the customer's message"))
        await asyncio.sleep(0.01)
        assert socket.sent == []
        await socket.send({"type": "websocket.send", "text": "reply"})
        await writer.release()
        assert socket.texts == ["reply", "assigned to you", "the customer's message"]

    run(scenario())


def test_before_the_handshake_is_accepted_pushes_wait_for_it():
    async def scenario():
        socket = Socket()
        writer = writer_of(socket, accepted=False)
        writer.receive(realtime.frame_event("early"))
        await asyncio.sleep(0.01)
        assert socket.sent == []
        await writer.release()
        assert socket.texts == ["early"]

    run(scenario())


def test_the_acting_socket_is_skipped_and_the_senders_other_sockets_get_the_echo():
    async def scenario():
        acting, other_device, peer = Socket(), Socket(), Socket()
        writers = [writer_of(acting, "alice-phone", uid=1), writer_of(other_device, "alice-laptop", uid=1),
                   writer_of(peer, "bob-phone", uid=2)]
        text = push_text(200, '{"msg":"hi","note":"a, b"}')
        event = realtime.frame_event(text, exclude_channel="alice-phone", sender_uid=1, own_code=307)
        for writer in writers:
            writer.receive(event)
        await asyncio.sleep(0.01)
        assert acting.texts == []
        assert other_device.texts == [push_text(307, '{"msg":"hi","note":"a, b"}')]
        assert peer.texts == [text]

    run(scenario())


def test_events_that_change_a_socket_go_to_its_consumer_at_once_or_are_declined_without_one():
    handled = []
    writer = realtime.SocketWriter(Socket().send, "phone", 1, on_event=handled.append)
    membership = {"type": realtime.MEMBERSHIP_EVENT, "join": "chatgroup.1"}
    logout = {"type": realtime.LOGOUT_EVENT, "text": "account deactivated"}
    assert writer.receive(membership) and writer.receive(logout)
    assert handled == [membership, logout] and writer.pending == []
    bare = writer_of(Socket())
    assert bare.receive(membership) is False  # the layer queues it for the channel's consumer


def test_a_close_comes_after_the_reply_and_what_waited_and_nothing_is_written_after_it():
    async def scenario():
        socket = Socket()
        writer = writer_of(socket)
        writer.busy = True  # a request in hand
        writer.receive(realtime.frame_event("before"))
        writer.close('{"code":-200}', 4401)
        writer.receive(realtime.frame_event("after the close"))
        writer.close(None, 4012)  # a second close changes nothing
        await asyncio.sleep(0.01)
        assert socket.sent == []
        await socket.send({"type": "websocket.send", "text": "reply"})
        await writer.release()
        assert socket.sent == [{"type": "websocket.send", "text": "reply"},
                               {"type": "websocket.send", "text": "before"},
                               {"type": "websocket.send", "text": '{"code":-200}'},
                               {"type": "websocket.close", "code": 4401}]

    run(scenario())


def test_a_socket_that_went_loses_its_pushes_and_the_others_still_get_theirs():
    async def scenario():
        gone, alive = Socket(gone=True), Socket()
        writers = [writer_of(gone, "gone"), writer_of(alive, "alive")]
        for number in range(3):
            for writer in writers:
                writer.receive(realtime.frame_event(f"push {number}"))
        await asyncio.sleep(0.01)
        assert alive.texts == ["push 0", "push 1", "push 2"]
        assert writers[0].pending == []

    run(scenario())


class Connection:
    """A server's writer of built frames (imchat/frames.py) that records them; closed, it declines."""

    def __init__(self):
        self.frames: list[bytes] = []
        self.open = True

    def write(self, frame: bytes) -> bool:
        if self.open:
            self.frames.append(frame)
        return self.open


def test_with_the_servers_frame_writer_a_push_is_framed_once_for_all_sockets_and_the_rest_goes_through_asgi():
    async def scenario():
        sockets, connections = [Socket() for _ in range(4)], [Connection() for _ in range(4)]
        writers = [realtime.SocketWriter(socket.send, f"socket-{n}", 10 + n, write_frame=connection.write)
                   for n, (socket, connection) in enumerate(zip(sockets, connections))]
        for writer in writers:
            writer.busy = False
        connections[2].open = False  # closing: its frames go ASGI's way, which knows what to do
        event = realtime.frame_event("to everyone")
        for writer in writers:
            writer.receive(event)
        writers[0].close("bye", 4401)
        await asyncio.sleep(0)
        await asyncio.sleep(0)

        # what waits for a socket goes in one write, up to its close (which goes ASGI's way)
        assert connections[0].frames == [frames.text_frame("to everyone") + frames.text_frame("bye")]
        assert connections[1].frames[0] is connections[3].frames[0]  # built once
        assert connections[1].frames == [frames.text_frame("to everyone")]
        assert sockets[0].sent == [{"type": "websocket.close", "code": 4401}]
        assert sockets[1].sent == [] and connections[2].frames == []
        assert sockets[2].texts == ["to everyone"]

    run(scenario())
