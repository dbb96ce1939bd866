"""Which agent gets a consumer's session (PROTOCOL.md section 5): decisions only, no writes.

customer_service/services.py asks these and writes what they decide: under the shop's row lock
whenever a session may be handed out, so consumers arriving at once (on any process) are assigned
one after the other and never push an agent over capacity.
"""

import time
from datetime import datetime

from django.conf import settings
from django.db.models import Q

from chat.presence import presence
from customer_service.assignment import Candidate, pick_agent
from customer_service.models import Assignment, ServiceAgent, ServiceSession, Shop
from customer_service.selectors import agents_with_state

Reason = Assignment.Reason
State = ServiceSession.State


def candidates_for(shop: Shop) -> list[Candidate]:
    """Agents who may take a new session now: status online and at least one live socket."""
    agents = agents_with_state(ServiceAgent.objects.filter(shop=shop, status=ServiceAgent.Status.ONLINE))
    return [Candidate(agent.user_id, agent.open_sessions, agent.max_sessions, agent.last_assigned_at)
            for agent in agents if agent.connected]


def agent_keeps_session(session: ServiceSession, now: datetime) -> tuple[bool, float]:
    """Sticky rule: the agent keeps it unless offline, or unavailable for the grace period.

    Returns (keeps, seconds since the agent was last connected; 0 when connected now).
    """
    status = (
        ServiceAgent.objects.filter(shop_id=session.shop_id, user_id=session.agent_id)
        .values_list("status", flat=True)
        .first()
    )
    if status is None or status == ServiceAgent.Status.OFFLINE:
        return False, 0.0
    if presence().online([session.agent_id]):
        return True, 0.0
    seen = presence().last_seen(session.agent_id)
    away = time.time() - seen if seen is not None else float("inf")
    return away < settings.IM_AGENT_GRACE_SECONDS, away


def previous_agent_id(conversation_id: int) -> int | None:
    """The agent who served this consumer last (in this shop's conversation)."""
    return (
        ServiceSession.objects.filter(conversation_id=conversation_id, agent__isnull=False)
        .order_by("-assigned_at", "-pk")
        .values_list("agent_id", flat=True)
        .first()
    )


def previous_agents(conversation_ids: list[int]) -> dict[int, int]:
    """previous_agent_id for many conversations: one query."""
    rows = (
        ServiceSession.objects.filter(conversation_id__in=conversation_ids, agent__isnull=False)
        .order_by("conversation_id", "-assigned_at", "-pk")
        .values_list("conversation_id", "agent_id")
    )
    last: dict[int, int] = {}
    for conversation_id, agent_id in rows:
        last.setdefault(conversation_id, agent_id)
    return last


def choose_agent(session: ServiceSession, shop: Shop, *, exclude_agent: int | None = None) -> tuple[int, str]:
    """(agent, reason) for a session that needs one now, or (0, "") to queue it.

    While others wait in the shop's queue a newcomer joins its end instead of jumping it; then the
    agent who served this consumer last, if available; then the shop's strategy.
    """
    if ServiceSession.objects.filter(shop=shop, state=State.QUEUED).exclude(pk=session.pk).exists():
        return 0, ""
    candidates = [c for c in candidates_for(shop) if c.user_id != exclude_agent]
    by_id = {candidate.user_id: candidate for candidate in candidates}
    last = previous_agent_id(session.conversation_id)
    if last in by_id and by_id[last].has_capacity:
        return last, Reason.LAST_AGENT
    picked = pick_agent(shop.strategy, candidates)
    return (picked.user_id, Reason.STRATEGY) if picked else (0, "")


def queue_position(session: ServiceSession) -> int:
    ahead = Q(queued_at__lt=session.queued_at) | Q(queued_at=session.queued_at, pk__lt=session.pk)
    return ServiceSession.objects.filter(ahead, shop_id=session.shop_id, state=State.QUEUED).count() + 1
