"""The shop's routing strategy as a pure function: no sockets, no database."""

import random
from dataclasses import dataclass
from datetime import datetime


@dataclass
class Candidate:
    """An agent who is online with a live socket; `open_sessions` is their load at this shop."""

    user_id: int
    open_sessions: int
    max_sessions: int
    last_assigned_at: datetime | None

    @property
    def has_capacity(self) -> bool:
        return self.open_sessions < self.max_sessions


def _longest_waiting(candidate: Candidate) -> tuple:
    # Never assigned sorts first, then the longest since the last assignment, then the lowest id.
    stamp = candidate.last_assigned_at
    return (stamp is not None, stamp.timestamp() if stamp else 0.0, candidate.user_id)


def pick_agent(strategy: str, candidates: list[Candidate], rng: random.Random | None = None) -> Candidate | None:
    """The agent a new session goes to, or None when nobody has capacity."""
    available = [candidate for candidate in candidates if candidate.has_capacity]
    if not available:
        return None
    if strategy == "random":
        return (rng or random).choice(available)
    if strategy == "round_robin":
        return min(available, key=_longest_waiting)
    # least_busy: fewest open sessions, ties by longest since their last assignment.
    return min(available, key=lambda candidate: (candidate.open_sessions, *_longest_waiting(candidate)))
