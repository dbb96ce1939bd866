"""Our app under uvicorn, as `imbench --server uvicorn` runs it, speaks the compat protocol as under
daphne (production's server; docs/PERFORMANCE.md, "daphne or uvicorn")."""

from collections.abc import Iterator

import pytest

from tests.e2e.conftest import sqlite_deployment
from tests.e2e.harness import Client, Site, run, send_msg_frame, send_ok

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def uvicorn_site() -> Iterator[Site]:
    """SQLite in a fresh directory, the in-memory layer, one uvicorn."""
    with sqlite_deployment("uvicorn") as site:
        yield site


def test_under_uvicorn_a_message_reaches_the_peer_as_200_and_the_senders_other_socket_as_307(uvicorn_site):
    alice, bob = uvicorn_site.users(2)
    server = uvicorn_site.servers[0]

    async def scenario():
        # given alice on two devices and bob, each socket opened with ?token=
        async with await Client.as_user(server, alice) as phone, await Client.as_user(server, alice) as laptop, \
                await Client.as_user(server, bob) as bobs:
            # when alice writes from her phone
            sent = await send_ok(phone, send_msg_frame(bob.id, "hello over uvicorn"))

            # then bob gets the 200 push, her laptop the 307, and her phone only its reply
            pushed, echoed = await bobs.expect_code(200), await laptop.expect_code(307)
            for frame in (pushed, echoed):
                assert frame["result"]["msg"] == "hello over uvicorn"
                assert frame["result"]["msg_id"] == sent["msg_id"] and frame["result"]["from_uid"] == alice.id
            assert await phone.settle() == []

    run(scenario())
