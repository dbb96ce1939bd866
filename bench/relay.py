"""The plain relay baseline: asyncio + `websockets`, no Django, no database, no channel layer.

It speaks just enough of our frames for `imbench` private mode: `?token=` (HS256, our claims) on
connect, PONG to anything that is not a request, and for chat.sendMsg a code-1 reply followed by a
code-200 push to every socket of `to_uid`. This is the ceiling of Python on one core.

    python -m bench.relay --port 9600      # IM_JWT_SECRET / IM_JWT_ISSUER as the server's
"""

import argparse
import asyncio
import itertools
import json
import os
import signal
from collections import defaultdict
from urllib.parse import parse_qs, urlsplit

import jwt
from websockets.asyncio.server import serve

PONG = json.dumps({"code": -1, "msg": "PONG", "result": None})


class Relay:
    def __init__(self, secret: str, issuer: str):
        self.secret = secret
        self.issuer = issuer
        self.sockets: dict[int, set] = defaultdict(set)
        self.msg_ids = itertools.count(1)

    def user_id(self, path: str) -> int | None:
        token = parse_qs(urlsplit(path).query).get("token", [""])[0]
        try:
            claims = jwt.decode(token, self.secret, algorithms=["HS256"], issuer=self.issuer)
            return int(claims["data"]["id"])
        except (jwt.InvalidTokenError, KeyError, TypeError, ValueError):
            return None

    async def handle(self, ws) -> None:
        uid = self.user_id(ws.request.path)
        if uid is None:
            await ws.send(json.dumps({"code": -200, "msg": "invalid token", "result": None}))
            await ws.close(4401)
            return
        self.sockets[uid].add(ws)
        try:
            async for text in ws:
                await self.receive(ws, uid, text)
        finally:
            self.sockets[uid].discard(ws)
            if not self.sockets[uid]:
                del self.sockets[uid]

    async def receive(self, ws, uid: int, text) -> None:
        try:
            frame = json.loads(text)
        except (TypeError, ValueError):
            frame = None
        if not isinstance(frame, dict) or not frame.get("class"):
            await ws.send(PONG)
            return
        content = frame.get("content") or {}
        if str(frame.get("action", "")).lower() != "sendmsg":
            await ws.send(json.dumps({"code": 0, "msg": "unknown action", "result": None}))
            return
        to_uid = int(content["to_uid"])
        msg_id = next(self.msg_ids)
        client_msg_id = content.get("client_msg_id")
        await ws.send(json.dumps({"code": 1, "msg": None, "result": {"msg_id": msg_id, "client_msg_id": client_msg_id}}))
        push = json.dumps({"code": 200, "msg": None, "result": {
            "id": uid, "chat_type": 1, "msg_type": content.get("msg_type", 1), "msg": content.get("msg"),
            "msg_id": msg_id, "from_uid": uid, "to_uid": to_uid, "client_msg_id": client_msg_id,
        }})
        for peer in list(self.sockets.get(to_uid, ())):
            try:
                await peer.send(push)
            except Exception:  # noqa: BLE001 - a peer that went away just misses it
                pass


async def main(host: str, port: int) -> None:
    relay = Relay(os.environ.get("IM_JWT_SECRET", ""), os.environ.get("IM_JWT_ISSUER", "imchat"))
    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    async with serve(relay.handle, host, port, compression=None, ping_interval=None, max_size=2**20):
        await stop


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    options = parser.parse_args()
    asyncio.run(main(options.host, options.port))
