"""Where the load generator puts each private pair's two users when there are several servers."""

import pytest

from bench.load import Load, Plan
from bench.run import BenchError, Config, check

URLS = ["ws://127.0.0.1:1/", "ws://127.0.0.1:2/"]
USERS = [{"id": index, "token": f"t{index}"} for index in range(8)]


def servers_of_pairs(plan: Plan) -> list[tuple[str, str]]:
    socks = Load(plan, URLS, {"users": USERS})._make_socks(USERS)
    return [(socks[index].url.split("?")[0], socks[index + 1].url.split("?")[0]) for index in range(0, 8, 2)]


def test_each_pair_spans_two_servers_unless_asked_to_share_one():
    # by default every message of a pair crosses from one server to the other
    assert all(first != second for first, second in servers_of_pairs(Plan(mode="private")))

    # together: both users of a pair on one server, the pairs still spread over both
    together = servers_of_pairs(Plan(mode="private", pairs_together=True))
    assert all(first == second for first, second in together)
    assert {first for first, _ in together} == set(URLS)


def test_pairs_together_is_refused_outside_private_chat():
    with pytest.raises(BenchError, match="--pairs-together is for private mode"):
        check(Config(mode="group", pairs_together=True), {})
