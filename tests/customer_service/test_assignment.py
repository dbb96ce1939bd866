"""The shop's routing strategy as a pure function (customer_service.assignment.pick_agent)."""

import random
from datetime import UTC, datetime, timedelta

from customer_service.assignment import Candidate, pick_agent

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def agent(user_id: int, open_sessions: int = 0, *, max_sessions: int = 10, minutes_ago: int | None = None) -> Candidate:
    last = T0 - timedelta(minutes=minutes_ago) if minutes_ago is not None else None
    return Candidate(user_id=user_id, open_sessions=open_sessions, max_sessions=max_sessions, last_assigned_at=last)


# --- least_busy ----------------------------------------------------------------------------------


def test_least_busy_picks_the_agent_with_the_fewest_open_sessions():
    candidates = [agent(1, 3, minutes_ago=50), agent(2, 1, minutes_ago=1), agent(3, 2, minutes_ago=90)]

    assert pick_agent("least_busy", candidates).user_id == 2


def test_least_busy_breaks_a_tie_by_the_longest_time_since_the_last_assignment():
    candidates = [agent(1, 2, minutes_ago=5), agent(2, 2, minutes_ago=30), agent(3, 2, minutes_ago=10)]

    assert pick_agent("least_busy", candidates).user_id == 2


def test_least_busy_prefers_an_agent_never_assigned_on_a_tie():
    candidates = [agent(1, 0, minutes_ago=600), agent(2, 0, minutes_ago=None), agent(3, 0, minutes_ago=5)]

    assert pick_agent("least_busy", candidates).user_id == 2


def test_least_busy_does_not_let_a_never_assigned_agent_beat_a_less_busy_one():
    candidates = [agent(1, 4, minutes_ago=None), agent(2, 1, minutes_ago=1)]

    assert pick_agent("least_busy", candidates).user_id == 2


def test_least_busy_is_the_default_for_an_unknown_strategy_name():
    candidates = [agent(1, 3), agent(2, 0)]

    assert pick_agent("", candidates).user_id == 2


def test_least_busy_skips_an_agent_at_capacity_even_if_it_would_win_otherwise():
    candidates = [agent(1, 2, max_sessions=2, minutes_ago=None), agent(2, 5, max_sessions=10, minutes_ago=1)]

    assert pick_agent("least_busy", candidates).user_id == 2


def test_least_busy_on_a_full_tie_picks_the_lowest_user_id_whatever_the_order():
    candidates = [agent(9), agent(4), agent(7)]

    assert pick_agent("least_busy", candidates).user_id == 4
    assert pick_agent("least_busy", list(reversed(candidates))).user_id == 4


# --- round_robin ---------------------------------------------------------------------------------


def test_round_robin_picks_the_agent_longest_since_their_last_assignment_whatever_their_load():
    candidates = [agent(1, 0, minutes_ago=1), agent(2, 8, minutes_ago=45), agent(3, 2, minutes_ago=20)]

    assert pick_agent("round_robin", candidates).user_id == 2


def test_round_robin_picks_a_never_assigned_agent_first():
    candidates = [agent(1, 0, minutes_ago=999), agent(2, 5, minutes_ago=None)]

    assert pick_agent("round_robin", candidates).user_id == 2


def test_round_robin_cycles_through_the_agents_as_each_gets_an_assignment():
    candidates = [agent(1), agent(2), agent(3)]
    picked = []
    for minute in range(6):
        chosen = pick_agent("round_robin", candidates)
        picked.append(chosen.user_id)
        chosen.open_sessions += 1
        chosen.last_assigned_at = T0 + timedelta(minutes=minute)

    assert picked == [1, 2, 3, 1, 2, 3]


def test_round_robin_skips_an_agent_at_capacity():
    candidates = [agent(1, 1, max_sessions=1, minutes_ago=None), agent(2, 0, minutes_ago=3)]

    assert pick_agent("round_robin", candidates).user_id == 2


# --- random --------------------------------------------------------------------------------------


def test_random_with_a_seeded_generator_is_reproducible():
    candidates = [agent(1), agent(2), agent(3), agent(4)]

    first = [pick_agent("random", candidates, random.Random(42)).user_id for _ in range(5)]
    again = [pick_agent("random", candidates, random.Random(42)).user_id for _ in range(5)]

    assert first == again
    assert pick_agent("random", candidates, random.Random(7)).user_id == random.Random(7).choice([1, 2, 3, 4])


def test_random_reaches_every_agent_with_capacity_and_never_one_without():
    candidates = [agent(1), agent(2, 3, max_sessions=3), agent(3), agent(4, 1, max_sessions=1)]
    rng = random.Random(1234)

    picked = {pick_agent("random", candidates, rng).user_id for _ in range(200)}

    assert picked == {1, 3}


# --- nobody --------------------------------------------------------------------------------------


def test_nobody_is_picked_when_no_agent_has_capacity():
    candidates = [agent(1, 2, max_sessions=2), agent(2, 5, max_sessions=1), agent(3, 0, max_sessions=0)]

    for strategy in ("least_busy", "round_robin", "random"):
        assert pick_agent(strategy, candidates, random.Random(0)) is None


def test_nobody_is_picked_from_an_empty_list():
    for strategy in ("least_busy", "round_robin", "random"):
        assert pick_agent(strategy, [], random.Random(0)) is None


def test_picking_does_not_change_the_candidates():
    candidates = [agent(1, 1, minutes_ago=3), agent(2, 0, minutes_ago=None)]
    before = [(c.user_id, c.open_sessions, c.last_assigned_at) for c in candidates]

    pick_agent("least_busy", candidates)

    assert [(c.user_id, c.open_sessions, c.last_assigned_at) for c in candidates] == before
