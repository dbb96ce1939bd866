"""How long a queued consumer will wait: the `eta_seconds` of the `queued` 305 (PROTOCOL-EXT.md, Queue ETA).

The estimator, from the shop's own recent history (one query per queue push, whatever the queue's length):

    eta(position) = ceil(position x mean_handling / slots), at least 1 s

- `mean_handling`: the mean time an agent held a session, over the shop's sessions closed in the last
  IM_ETA_HISTORY_SECONDS (the newest IM_ETA_SAMPLE of them): from assignment to close, or to the last
  message when the session was closed for being idle (the silence before an idle close is nobody's work).
- `slots`: the capacity of the agents set online (the sum of their `max_sessions`): the sessions the
  shop serves at once. A slot frees every `mean_handling` seconds on average, so the shop takes one
  consumer from its queue every `mean_handling / slots` seconds, and the p-th waits p of those turns.

No history, or no agent online (the queue waits for someone to come, which no history predicts): null.
"""

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import IntegerField, OuterRef, Subquery, Sum
from django.utils import timezone

from customer_service.models import ServiceAgent, ServiceSession


@dataclass(frozen=True)
class Pace:
    """What the estimate needs of a shop: mean handling seconds (None: no history) and online slots."""

    mean_handling: float | None
    slots: int

    def eta_seconds(self, position: int) -> int | None:
        if self.mean_handling is None or self.slots <= 0 or position < 1:
            return None
        return max(1, math.ceil(position * self.mean_handling / self.slots))


def handling_seconds(*, assigned_at: datetime, closed_at: datetime, last_activity_at: datetime) -> float:
    """How long an agent held one closed session (the silence before an idle close does not count)."""
    idle = timedelta(seconds=settings.IM_SESSION_IDLE_SECONDS)
    ended = last_activity_at if closed_at - last_activity_at >= idle else closed_at
    return max(0.0, (ended - assigned_at).total_seconds())


def mean_handling(rows: Iterable[tuple[datetime, datetime, datetime]]) -> float | None:
    """Mean of `handling_seconds` over (assigned_at, closed_at, last_activity_at) rows; None for none."""
    durations = [handling_seconds(assigned_at=a, closed_at=c, last_activity_at=last) for a, c, last in rows]
    return sum(durations) / len(durations) if durations else None


def shop_pace(shop_id: int, *, now: datetime | None = None) -> Pace:
    """The shop's pace in one query: its recent closed sessions, each row carrying the online slots."""
    now = now or timezone.now()
    slots = (
        ServiceAgent.objects.filter(shop_id=OuterRef("shop_id"), status=ServiceAgent.Status.ONLINE)
        .values("shop_id").annotate(total=Sum("max_sessions")).values("total")
    )
    rows = list(
        ServiceSession.objects.filter(
            shop_id=shop_id, state=ServiceSession.State.CLOSED, assigned_at__isnull=False,
            closed_at__gte=now - timedelta(seconds=settings.IM_ETA_HISTORY_SECONDS),
        )
        .order_by("-closed_at")
        .annotate(slots=Subquery(slots, output_field=IntegerField()))
        .values_list("assigned_at", "closed_at", "last_activity_at", "slots")[: settings.IM_ETA_SAMPLE]
    )
    if not rows:
        return Pace(None, 0)
    return Pace(mean_handling((a, c, last) for a, c, last, _ in rows), rows[0][3] or 0)
