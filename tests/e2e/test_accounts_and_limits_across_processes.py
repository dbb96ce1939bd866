"""What a user may do holds on every process: a closed account loses its sockets everywhere, and the
per-user request rate counts the user's sockets on all processes together (PostgreSQL + Redis)."""

import asyncio
import time

import pytest

from tests.e2e.harness import Client, Site, postgres_redis_deployment, run

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.redis]

USER_RATE = 5  # per second per user, a burst of twice that (IM_USER_RATE_LIMIT)


@pytest.fixture(scope="module")
def site():
    # The per-socket limit is out of the way, so only the per-user one speaks.
    with postgres_redis_deployment(2, IM_USER_RATE_LIMIT=str(USER_RATE), IM_RATE_LIMIT="1000",
                                   IM_RATE_BURST="1000", IM_ACCOUNT_CHECK_SECONDS="1") as deployment:
        yield deployment


def close_account(site: Site, user_id: int, how: str) -> None:
    """Behind the server's back, as an operator's shell or SQL would."""
    action = "update(is_active=False)" if how == "deactivated" else "delete()"
    site.manage("shell", "-c", f"from accounts.models import User; User.objects.filter(pk={user_id}).{action}")


@pytest.mark.parametrize("how", ["deactivated", "deleted"])
def test_a_closed_account_loses_its_sockets_on_every_process_within_seconds(site, how):
    first, second = site.servers
    alice, bob = site.users(2)

    async def scenario():
        phone, laptop = await Client.as_user(first, alice), await Client.as_user(second, alice)
        bobs = await Client.as_user(second, bob)
        started = time.monotonic()
        close_account(site, alice.id, how)
        codes = await asyncio.gather(phone.closed(timeout=10), laptop.closed(timeout=10))
        took = time.monotonic() - started
        told = [[f for f in client.buffer if f.get("code") == -200] for client in (phone, laptop)]
        assert (await bobs.request("user", "friendList"))["code"] == 100  # bob is untouched
        await bobs.close()
        return codes, told, took

    codes, told, took = run(scenario())

    assert codes == [4401, 4401]
    assert told == [[{"code": -200, "msg": "account deactivated", "result": None}]] * 2
    print(f"sockets of a {how} account closed on both processes within {took:.1f} s")


def test_a_closed_account_cannot_open_a_new_socket(site):
    first, _ = site.servers
    (carol,) = site.users(1)
    close_account(site, carol.id, "deactivated")

    async def scenario():
        client = await Client.open(first.socket_url(carol.token))
        return await client.closed()

    assert run(scenario()) == 4401


def test_the_per_user_rate_counts_a_users_sockets_on_all_processes_together(site):
    first, second = site.servers
    (dave,) = site.users(1)
    seconds, per_socket_rate = 4.0, 20

    async def hammer(client: Client) -> int:
        """Cheap requests at a steady pace (an unknown action: refused after the rate check)."""
        passed = 0
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            reply = await client.request("x", "y")
            passed += reply["code"] != -429
            await asyncio.sleep(1 / per_socket_rate)
        return passed

    async def scenario():
        a, b = await Client.as_user(first, dave), await Client.as_user(second, dave)
        started = time.monotonic()
        passed = await asyncio.gather(hammer(a), hammer(b))
        elapsed = time.monotonic() - started
        await a.close()
        await b.close()
        return sum(passed), elapsed

    passed, elapsed = run(scenario())

    budget = 2 * USER_RATE + USER_RATE * elapsed  # burst + rate: one user, wherever their sockets are
    each_alone = 2 * budget  # what two processes that did not share would let through
    print(f"passed {passed} in {elapsed:.1f} s; one budget {budget:.0f}, per-process limits alone {each_alone:.0f}")
    assert budget * 0.8 <= passed <= budget + 2 * USER_RATE + 4
