"""SIGTERM drains a server process (imchat/shutdown.py): a real daphne under clients that keep sending.

Every socket of the process gets close code 4012, every message it acked is stored (and reaches the
peer on the other process), nothing it stored went unacked, new connections are refused, the process
unregisters from the channel layer, and it exits 0 within IM_SHUTDOWN_SECONDS.
"""

import asyncio
import json
import signal
import socket

import psycopg
import pytest
import redis
from websockets.exceptions import ConnectionClosed

from tests.e2e.harness import Client, postgres_redis_deployment, private_chat_id, run
from tests.services import REDIS_URL

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.redis]

SHUTDOWN_SECONDS = 6
PAIRS = 6
IN_FLIGHT = 40  # frames each sender has sent and not yet had answered when SIGTERM comes


def test_sigterm_closes_every_socket_with_4012_after_storing_what_it_acked():
    with postgres_redis_deployment(2, IM_SHUTDOWN_SECONDS=str(SHUTDOWN_SECONDS)) as site:
        leaving, staying = site.servers
        users = site.users(2 * PAIRS)
        senders, peers = users[:PAIRS], users[PAIRS:]

        async def scenario():
            sockets = [await Client.as_user(leaving, user) for user in senders]
            listeners = [await Client.as_user(staying, user) for user in peers]
            sent: dict[str, tuple] = {}
            acked: dict[str, int] = {}
            codes: list[int | None] = []

            async def send_until_closed(index: int, client: Client) -> None:
                sender, peer = senders[index], peers[index]
                number = 0

                async def read() -> None:
                    try:
                        async for raw in client.ws:
                            frame = json.loads(raw)
                            result = frame.get("result") or {}
                            if frame.get("code") == 1 and isinstance(result, dict) and "client_msg_id" in result:
                                acked[result["client_msg_id"]] = result["msg_id"]
                    except ConnectionClosed:
                        pass
                    codes.append(client.ws.close_code)

                reader = asyncio.create_task(read())
                while not reader.done():
                    while number - sum(key.startswith(f"{sender.id}:") for key in acked) < IN_FLIGHT:
                        number += 1
                        client_msg_id = f"{sender.id}:{number}"
                        sent[client_msg_id] = (sender.id, peer.id)
                        frame = {"class": "chat", "action": "sendMsg", "req_id": client_msg_id, "content": {
                            "to_uid": peer.id, "chat_type": 1, "msg_type": 1, "msg": client_msg_id,
                            "chat_id": private_chat_id(sender.id, peer.id), "client_msg_id": client_msg_id}}
                        try:
                            await client.ws.send(json.dumps(frame))
                        except ConnectionClosed:
                            break
                    await asyncio.sleep(0.005)
                await reader

            traffic = [asyncio.create_task(send_until_closed(i, c)) for i, c in enumerate(sockets)]
            while len(acked) < PAIRS * IN_FLIGHT:  # under way on every socket
                await asyncio.sleep(0.05)
            leaving.process.send_signal(signal.SIGTERM)
            await asyncio.gather(*traffic)
            exit_code = await asyncio.to_thread(leaving.process.wait, SHUTDOWN_SECONDS + 5)
            with pytest.raises(OSError):
                socket.create_connection(("127.0.0.1", leaving.port), timeout=2).close()

            # what the peers have on the other process: live pushes and chat.sync from seq 0
            delivered: set[str] = set()
            for index, listener in enumerate(listeners):
                chat_id = private_chat_id(senders[index].id, peers[index].id)
                frames = await listener.settle()
                delivered |= {frame["result"]["client_msg_id"] for frame in frames if frame.get("code") == 200}
                cursor = 0
                while True:
                    reply = await listener.request("chat", "sync", {"chats": {chat_id: cursor}, "limit": 500})
                    messages = reply["result"]["messages"]
                    delivered |= {message["client_msg_id"] for message in messages}
                    if not reply["result"]["more"] or not messages:
                        break
                    cursor = messages[-1]["seq"]
                await listener.close()
            return sent, acked, codes, exit_code, delivered

        sent, acked, codes, exit_code, delivered = run(scenario(), timeout=90)

        with psycopg.connect(site.postgres_url) as db:
            stored = dict(db.execute("SELECT client_msg_id, id FROM chat_message WHERE client_msg_id IS NOT NULL"))
        assert codes == [4012] * PAIRS
        assert exit_code == 0, leaving.log()
        assert len(acked) >= PAIRS * IN_FLIGHT
        assert {key: stored.get(key) for key in acked} == acked  # every ack is a stored message
        assert set(stored) <= set(acked)  # nothing stored that the client was not told about
        assert set(acked) <= delivered  # and the peers have them all
        assert len(sent) > len(acked)  # frames were still coming when the socket closed

        store = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
        try:
            alive = list(store.scan_iter(match=f"{site.env['IM_REDIS_PREFIX']}:layer:alive:*"))
        finally:
            store.close()
        assert len(alive) == 1  # only the process that stays is routed to
