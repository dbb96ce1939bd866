"""`purgemessages` and `eraseuser` against a running deployment (PostgreSQL + Redis): the erased user's
open socket closes, the other party's history keeps its seqs with the text gone, a purge leaves the
conversation usable."""

import psycopg
import pytest

from tests.e2e.harness import Client, http_post, postgres_redis_deployment, private_chat_id, run, send_msg_frame, send_ok

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.redis]


@pytest.fixture(scope="module")
def site():
    with postgres_redis_deployment(1, IM_ACCOUNT_CHECK_SECONDS="1") as deployment:
        yield deployment


def stored(site, sender_id: int) -> list[tuple[int, str]]:
    with psycopg.connect(site.postgres_url) as db:
        return db.execute("SELECT seq, msg FROM chat_message WHERE sender_id = %s ORDER BY seq", [sender_id]).fetchall()


def test_an_erased_user_is_logged_out_and_their_words_are_gone_for_the_other_party(site):
    [server] = site.servers
    alice, bob = site.users(2)

    async def scenario():
        alices, bobs = await Client.as_user(server, alice), await Client.as_user(server, bob)
        for text in ("I live at 5 Tea Street", "call me on 13812345678"):
            await send_ok(alices, send_msg_frame(bob.id, text))
        await send_ok(bobs, send_msg_frame(alice.id, "noted"))
        output = site.manage("eraseuser", str(alice.id), "--noinput", "--by", "e2e", "--reason", "ticket 7")
        code = await alices.closed(timeout=10)
        await bobs.close()
        return output, code

    output, code = run(scenario())
    history = http_post(server, "/user/getChatRecord", {"chat_id": private_chat_id(alice.id, bob.id)},
                        token=bob.token)["result"]["rows"]

    assert "erased user" in output and "2 messages" in output
    assert code == 4401
    assert stored(site, alice.id) == [(1, "[deleted]"), (2, "[deleted]")]
    assert [row["msg"] for row in history] == ["noted", "[deleted]", "[deleted]"]
    with psycopg.connect(site.postgres_url) as db:
        audit = db.execute("SELECT user_id, by, reason, messages FROM accounts_erasure").fetchall()
    assert audit == [(alice.id, "e2e", "ticket 7", 2)]


def test_a_purge_leaves_the_conversation_going(site):
    [server] = site.servers
    carol, dave = site.users(2)

    async def chat(texts):
        carols = await Client.as_user(server, carol)
        seqs = [(await send_ok(carols, send_msg_frame(dave.id, text)))["seq"] for text in texts]
        await carols.close()
        return seqs

    assert run(chat(["old 1", "old 2"])) == [1, 2]
    with psycopg.connect(site.postgres_url) as db:
        db.execute("UPDATE chat_message SET created_at = now() - interval '400 days' WHERE sender_id = %s", [carol.id])

    dry = site.manage("purgemessages", "--older-than", "365", "--dry-run")
    done = site.manage("purgemessages", "--older-than", "365", "--batch", "1")

    assert "would delete 2 messages" in dry and "deleted 2 messages" in done and "in 2 batches" in done
    assert stored(site, carol.id) == []
    assert run(chat(["new"])) == [3]
