"""Rate limits and connection caps (-429 with retry_after; the socket stays usable)."""

import pytest

from chat.throttling import TokenBucket
from tests.factories import open_socket, refusal, request, send_content, socket, synchronously, token_for


def test_a_bucket_lets_a_burst_through_then_asks_to_wait_until_a_token_is_back():
    bucket = TokenBucket(rate=10, burst=3, stamp=100.0)

    assert [bucket.take(now=100.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(now=100.0) == pytest.approx(0.1)
    assert bucket.take(now=100.11) == 0.0


@pytest.mark.django_db(transaction=True)
@synchronously
async def test_requests_past_the_burst_get_429_with_retry_after_and_the_socket_keeps_working(settings, alice, bob):
    settings.IM_RATE_LIMIT, settings.IM_RATE_BURST = 1, 2
    alices = await open_socket(alice)

    replies = [await request(alices, "user", "recentChat", {}) for _ in range(3)]

    assert [reply["code"] for reply in replies] == [102, 102, -429]
    assert replies[2]["msg"] == "too many requests" and replies[2]["result"]["retry_after"] > 0
    await alices.send_to(text_data="ping")
    assert (await alices.receive_json_from())["code"] == -1  # heartbeats are never limited
    await alices.disconnect()


@pytest.mark.django_db(transaction=True)
@synchronously
async def test_the_user_limit_counts_all_of_a_users_sockets_together(settings, alice, bob):
    settings.IM_USER_RATE_LIMIT = 1  # a burst of 2 for the user, whatever the socket
    first, second = await open_socket(alice), await open_socket(alice)

    codes = [(await request(first, "user", "recentChat", {}))["code"],
             (await request(second, "user", "recentChat", {}))["code"],
             (await request(second, "chat", "sendMsg", send_content(bob.pk)))["code"]]

    assert codes == [102, 102, -429]
    await first.disconnect()
    await second.disconnect()


@pytest.mark.django_db(transaction=True)
@synchronously
async def test_a_socket_over_the_per_user_cap_is_told_why_and_closed_4429(settings, alice):
    settings.IM_MAX_SOCKETS_PER_USER = 2
    kept = [await open_socket(alice), await open_socket(alice)]

    third = socket(f"/?token={token_for(alice)}")
    connected, _ = await third.connect()
    frame, code = await refusal(third)

    assert connected and code == 4429
    assert frame["code"] == -429 and "connections" in frame["msg"]
    assert (await request(kept[0], "user", "recentChat", {}))["code"] == 102
    for communicator in kept:
        await communicator.disconnect()


# --- The user limit across processes (real Redis) -------------------------------------------------


def allowed_over(budgets, *, seconds: float, attempts_per_second: float, tick: float) -> int:
    """Each budget (one per process) sees `attempts_per_second` requests of one user for `seconds`,
    settling every `tick`, on a shared clock; how many went through in all."""
    from asgiref.sync import async_to_sync

    clock = budgets[0].clock.__self__

    async def drive() -> int:
        passed, step, next_settle = 0, 1 / attempts_per_second, tick
        while clock.now < seconds:
            for budget in budgets:
                passed += budget.take(7) == 0
            clock.now += step
            if clock.now >= next_settle:
                for budget in budgets:
                    await budget.settle()
                next_settle += tick
        for budget in budgets:
            budget.worker.cancel() if budget.worker else None
            await budget.client.aclose()
        return passed

    return async_to_sync(drive)()


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def time(self) -> float:
        return self.now


@pytest.mark.redis
def test_the_user_limit_holds_across_processes_sharing_one_redis():
    import secrets

    import redis.asyncio

    from chat.throttling import SharedUserBudget
    from tests.services import require_redis

    url = require_redis()
    rate, burst, seconds = 5, 10, 4.0

    def process(prefix: str, clock: FakeClock) -> SharedUserBudget:
        return SharedUserBudget(redis.asyncio.Redis.from_url(url), prefix, rate=rate, burst=burst, tick=3600,
                                clock=clock.time)

    shared_clock = FakeClock()
    prefix = f"imtest{secrets.token_hex(4)}"
    together = allowed_over([process(prefix, shared_clock), process(prefix, shared_clock)],
                            seconds=seconds, attempts_per_second=20, tick=0.1)
    apart_clock = FakeClock()
    apart = allowed_over([process(prefix + "a", apart_clock), process(prefix + "b", apart_clock)],
                         seconds=seconds, attempts_per_second=20, tick=0.1)

    budget = burst + rate * seconds  # what one user may do in 4 s
    assert apart >= 2 * budget - 4  # each process alone would let the whole budget through
    assert budget <= together <= budget + 2 * 20 * 0.1 + 2  # two processes: one budget, give or take a tick
