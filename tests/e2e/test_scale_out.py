"""Two daphne processes sharing PostgreSQL and Redis: chat, devices, seq order and presence across them."""

import asyncio
import time

import psycopg
import pytest

from tests.e2e.harness import Client, Site, http_post, private_chat_id, run, send_msg_frame

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.redis]

SOCKETS_PER_USER_PER_PROCESS = 2
MESSAGES_PER_SOCKET = 25


@pytest.fixture(scope="module")
def site(scale_out_site: Site) -> Site:
    return scale_out_site


def stored_seqs(site: Site, chat_id: str) -> list[int]:
    with psycopg.connect(site.postgres_url) as db:
        rows = db.execute(
            "SELECT m.seq FROM chat_message m JOIN chat_conversation c ON c.id = m.conversation_id "
            "WHERE c.chat_id = %s ORDER BY m.seq",
            [chat_id],
        ).fetchall()
    return [seq for (seq,) in rows]


async def friends_online(client: Client) -> int:
    reply = await client.request("user", "friendList")
    assert reply["code"] == 100, reply
    return reply["result"]["friend"][0]["online"]


def test_users_on_different_processes_chat_both_ways(site):
    first, second = site.servers
    alice, bob = site.users(2)
    chat_id = private_chat_id(alice.id, bob.id)

    async def scenario():
        async with await Client.as_user(first, alice) as a, await Client.as_user(second, bob) as b:
            for number, (sender, receiver, me, peer) in enumerate(
                [(a, b, alice, bob), (b, a, bob, alice), (a, b, alice, bob), (b, a, bob, alice)], start=1
            ):
                await sender.send(send_msg_frame(peer.id, f"hop {number}", chat_id="" if number < 3 else chat_id))
                reply = await sender.reply()
                assert reply["code"] == 1 and reply["result"]["seq"] == number, reply
                push = (await receiver.expect_code(200))["result"]
                assert push["msg"] == f"hop {number}" and push["seq"] == number and push["id"] == me.id
                assert push["chat_id"] == chat_id and push["to_uid"] == peer.id

    run(scenario())
    for server in site.servers:
        body = http_post(server, "/user/getChatRecord", {"chat_id": chat_id}, token=alice.token)
        assert [row["msg"] for row in body["result"]["rows"]] == ["hop 4", "hop 3", "hop 2", "hop 1"]


def test_the_same_user_on_two_processes_gets_307_on_the_other_socket(site):
    first, second = site.servers
    alice, bob = site.users(2)

    async def scenario():
        async with (
            await Client.as_user(first, alice) as phone,
            await Client.as_user(second, alice) as laptop,
            await Client.as_user(second, bob) as b1,
            await Client.as_user(first, bob) as b2,
        ):
            await phone.send(send_msg_frame(bob.id, "sent on process one"))
            sent = (await phone.reply())["result"]
            own = await laptop.expect_code(307)
            assert own["result"]["msg_id"] == sent["msg_id"] and own["result"]["id"] == alice.id
            for receiver in (b1, b2):
                assert (await receiver.expect_code(200))["result"] == own["result"]
            assert await phone.settle() == []
            for client in (laptop, b1, b2):
                assert not [f for f in await client.settle() if f["code"] in (200, 307)]

    run(scenario())


def test_concurrent_senders_on_both_processes_get_gap_free_distinct_seqs(site):
    alice, bob = site.users(2)
    chat_id = private_chat_id(alice.id, bob.id)
    total = 2 * len(site.servers) * SOCKETS_PER_USER_PER_PROCESS * MESSAGES_PER_SOCKET

    async def burst(client: Client, peer_id: int, tag: str) -> list[dict]:
        for number in range(MESSAGES_PER_SOCKET):
            await client.send(send_msg_frame(peer_id, f"{tag}#{number}", chat_id=chat_id if number % 2 else ""))
        return [await client.reply(timeout=30) for _ in range(MESSAGES_PER_SOCKET)]

    async def scenario():
        sockets = []
        try:
            for user, peer in ((alice, bob), (bob, alice)):
                for server in site.servers:
                    for _ in range(SOCKETS_PER_USER_PER_PROCESS):
                        client = await Client.as_user(server, user)
                        sockets.append((client, user, peer, f"{user.name}@{server.port}/{len(sockets)}"))
            replies = await asyncio.gather(*(burst(client, peer.id, tag) for client, _, peer, tag in sockets))

            seqs = []
            for (client, user, _, tag), socket_replies in zip(sockets, replies):
                assert all(reply["code"] == 1 for reply in socket_replies), socket_replies
                socket_seqs = [reply["result"]["seq"] for reply in socket_replies]
                assert socket_seqs == sorted(socket_seqs), f"{tag}: replies out of request order"
                seqs.extend(socket_seqs)
            assert len(seqs) == len(set(seqs)) == total
            assert sorted(seqs) == list(range(1, total + 1))

            # Every socket gets every message it did not send itself exactly once: 200 from the
            # peer, 307 from its own user's other sockets.
            msg_sender = {}
            for (_, user, _, tag), socket_replies in zip(sockets, replies):
                for reply in socket_replies:
                    msg_sender[reply["result"]["msg_id"]] = (user.id, tag)
            for client, user, _, tag in sockets:
                expected = {msg_id for msg_id, (_, sent_by) in msg_sender.items() if sent_by != tag}
                seen: list[int] = []
                deadline = time.monotonic() + 20
                while len(seen) < len(expected) and time.monotonic() < deadline:
                    frame = await client.expect(lambda f: f["code"] in (200, 307), timeout=20, what="a push")
                    result = frame["result"]
                    sender_id = msg_sender[result["msg_id"]][0]
                    assert frame["code"] == (307 if sender_id == user.id else 200), frame
                    seen.append(result["msg_id"])
                assert len(seen) == len(set(seen)), f"{tag}: a message was pushed twice"
                assert set(seen) == expected, f"{tag}: {len(expected - set(seen))} pushes missing"
        finally:
            for client, *_ in sockets:
                await client.close()

    run(scenario(), timeout=90)
    assert stored_seqs(site, chat_id) == list(range(1, total + 1))
    body = http_post(site.servers[1], "/user/getChatRecord", {"chat_id": chat_id}, token=bob.token)
    assert body["result"]["total"] == total
    assert [row["seq"] for row in body["result"]["rows"]] == list(range(total, total - 20, -1))


def test_friend_list_counts_a_user_on_another_process_until_that_process_is_killed(site):
    first, second = site.servers
    (doomed,) = site.start(1)  # a third process, so the others keep serving the rest of the module
    alice, bob = site.users(2)

    async def scenario():
        async with await Client.as_user(first, alice) as a:
            b = await Client.as_user(doomed, bob)
            try:
                await b.send(send_msg_frame(alice.id, "I live on the doomed process"))
                assert (await b.reply())["code"] == 1
                await a.expect_code(200)
                assert await friends_online(a) == 1
                index = http_post(second, "/user/index", token=alice.token)
                assert index["result"]["friend"][0]["online"] == 1, index
                assert [friend["id"] for friend in index["result"]["friend"][0]["list"]] == [bob.id]

                doomed.kill()  # SIGKILL: no disconnect is ever recorded for bob's socket
                killed_at = time.monotonic()
                while await friends_online(a) != 0:
                    assert time.monotonic() - killed_at < 10, "bob still online 10 s after his process died"
                    await asyncio.sleep(0.25)
                index = http_post(second, "/user/index", token=alice.token)
                assert index["result"]["friend"][0]["online"] == 0, index
            finally:
                await b.close()

    run(scenario())
