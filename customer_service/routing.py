"""Which agent gets a consumer's session, and the queue (PROTOCOL.md section 5).

Every decision that may hand out a session locks the shop's row first, so two consumers arriving
at once (on any process) are assigned one after the other and never push an agent over capacity.
A message in a session that stays with its agent takes no lock.
"""

import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

from chat import realtime
from chat.models import Message
from chat.payloads import message_result_from_row
from chat.presence import presence
from customer_service.assignment import Candidate, pick_agent
from customer_service.models import Assignment, ServiceAgent, ServiceSession, Shop
from imchat.errors import Code

Reason = Assignment.Reason
State = ServiceSession.State


@dataclass
class Routed:
    """The session a consumer's message belongs to, and whom it goes to (0 while queued)."""

    session: ServiceSession
    agent_id: int


def session_event(session: ServiceSession, event: str, *, agent_id: int = 0, position: int = 0) -> dict:
    return {
        "chat_id": session.conversation.chat_id,
        "shop_id": session.shop_id,
        "event": event,
        "agent_uid": agent_id,
        "queue_position": position,
    }


def push_session_event(session: ServiceSession, event: str, *, to_users: list[int], agent_id: int = 0,
                       position: int = 0, to_shop: bool = False, exclude_channel: str | None = None) -> None:
    """A 305; `exclude_channel` is the socket whose own close or transfer it echoes (it has the reply)."""
    groups = [realtime.user_group(uid) for uid in dict.fromkeys(to_users) if uid]
    if to_shop:
        groups.append(realtime.shop_agents_group(session.shop_id))
    realtime.push_on_commit(
        groups, Code.SESSION_EVENT, session_event(session, event, agent_id=agent_id, position=position),
        exclude_channel=exclude_channel,
    )


def live_session(conversation_id: int, *, lock: bool = False, conversation=None) -> ServiceSession | None:
    """The conversation's queued or open session; pass the `conversation` when you have it (no join)."""
    query = ServiceSession.objects.filter(conversation_id=conversation_id, state__in=[State.QUEUED, State.OPEN])
    if conversation is None:
        query = query.select_related("conversation")
    if lock:
        query = query.select_for_update(of=("self",))
    session = query.first()
    if session is not None and conversation is not None:
        session.conversation = conversation
    return session


def lock_shop(shop_id: int) -> Shop:
    return Shop.objects.select_for_update().get(pk=shop_id)


def candidates_for(shop: Shop) -> list[Candidate]:
    """Agents who may take a new session now: status online and at least one live socket."""
    agents = list(ServiceAgent.objects.filter(shop=shop, status=ServiceAgent.Status.ONLINE))
    live = presence().online(agent.user_id for agent in agents)
    agents = [agent for agent in agents if agent.user_id in live]
    if not agents:
        return []
    loads = dict(
        ServiceSession.objects.filter(shop=shop, state=State.OPEN, agent_id__in=[a.user_id for a in agents])
        .values("agent_id")
        .annotate(open_sessions=Count("id"))
        .values_list("agent_id", "open_sessions")
    )
    return [
        Candidate(agent.user_id, loads.get(agent.user_id, 0), agent.max_sessions, agent.last_assigned_at)
        for agent in agents
    ]


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


def assign(session: ServiceSession, agent_id: int, reason: str, now: datetime, detail: str = "") -> None:
    """Give a session to an agent and tell both sides (305 assigned)."""
    session.agent_id = agent_id
    session.state = State.OPEN
    session.assigned_at = now
    session.last_activity_at = now
    session.save(update_fields=["agent", "state", "assigned_at", "last_activity_at"])
    Assignment.objects.create(session=session, agent_id=agent_id, reason=reason, detail=detail[:200])
    ServiceAgent.objects.filter(shop_id=session.shop_id, user_id=agent_id).update(last_assigned_at=now)
    push_session_event(session, "assigned", to_users=[agent_id, session.consumer_id], agent_id=agent_id)


def previous_agent_id(conversation_id: int) -> int | None:
    """The agent who served this consumer last (in this shop's conversation)."""
    return (
        ServiceSession.objects.filter(conversation_id=conversation_id, agent__isnull=False)
        .order_by("-assigned_at", "-pk")
        .values_list("agent_id", flat=True)
        .first()
    )


def queue_position(session: ServiceSession) -> int:
    ahead = Q(queued_at__lt=session.queued_at) | Q(queued_at=session.queued_at, pk__lt=session.pk)
    return ServiceSession.objects.filter(ahead, shop_id=session.shop_id, state=State.QUEUED).count() + 1


def push_queue_positions(shop_id: int) -> None:
    """Tell every queued consumer of the shop their place (after the queue moved)."""
    queued = (
        ServiceSession.objects.select_related("conversation")
        .filter(shop_id=shop_id, state=State.QUEUED)
        .order_by("queued_at", "pk")
    )
    for position, session in enumerate(queued, start=1):
        push_session_event(session, "queued", to_users=[session.consumer_id], position=position)


def route_new_assignment(session: ServiceSession, shop: Shop, now: datetime, *, exclude_agent: int | None = None,
                         detail: str = "", base_url: str = "") -> int:
    """With the shop locked: give the session to the best available agent, or queue it. Returns agent id or 0.

    While others wait in the shop's queue a newcomer joins its end instead of jumping it. A session
    taken from another agent (`exclude_agent`) brings its messages so far to the new one.
    """
    queue_waiting = ServiceSession.objects.filter(shop=shop, state=State.QUEUED).exclude(pk=session.pk).exists()
    candidates = [] if queue_waiting else [c for c in candidates_for(shop) if c.user_id != exclude_agent]
    by_id = {candidate.user_id: candidate for candidate in candidates}
    last = previous_agent_id(session.conversation_id)
    if last in by_id and by_id[last].has_capacity:
        chosen, reason = last, Reason.LAST_AGENT
    else:
        picked = pick_agent(shop.strategy, candidates)
        chosen, reason = (picked.user_id, Reason.STRATEGY) if picked else (0, "")
    if chosen:
        assign(session, chosen, reason, now, detail or (shop.strategy if reason == Reason.STRATEGY else ""))
        if exclude_agent:
            push_backlog(session, chosen, base_url)
        return chosen
    session.agent_id = None
    session.state = State.QUEUED
    # Taken under the shop's lock (not the request's start time), so queue order is lock order.
    session.queued_at = timezone.now()
    session.save(update_fields=["agent", "state", "queued_at"])
    push_session_event(session, "queued", to_users=[session.consumer_id], position=queue_position(session))
    return 0


def route_consumer_message(*, shop: Shop, conversation, consumer_id: int, next_seq: int, now: datetime,
                           base_url: str) -> Routed:
    """Find or open the session for a consumer's message and decide which agent it goes to."""
    session = live_session(conversation.pk, lock=True, conversation=conversation)
    if session is not None and session.state == State.OPEN:
        idle_cutoff = now - timedelta(seconds=settings.IM_SESSION_IDLE_SECONDS)
        if session.last_activity_at < idle_cutoff:
            session_close(session, now)
            queue_drain(shop.pk, base_url=base_url, now=now)  # its place goes to the queue first
            session = None
        else:
            keeps, away = agent_keeps_session(session, now)
            if keeps:
                if away and not session.assignments.filter(reason=Reason.STICKY, created_at__gte=now - timedelta(
                        seconds=settings.IM_AGENT_GRACE_SECONDS)).exists():
                    Assignment.objects.create(
                        session=session, agent_id=session.agent_id, reason=Reason.STICKY,
                        detail=f"kept through {int(away)} s without a connection",
                    )
                ServiceSession.objects.filter(pk=session.pk).update(last_activity_at=now)
                return Routed(session, session.agent_id)
    if session is not None and session.state == State.QUEUED:
        ServiceSession.objects.filter(pk=session.pk).update(last_activity_at=now)
        return Routed(session, 0)

    shop = lock_shop(shop.pk)
    if session is None:
        session = ServiceSession.objects.create(
            shop=shop, consumer_id=consumer_id, conversation=conversation, state=State.QUEUED,
            first_seq=next_seq, last_activity_at=now, queued_at=now,
        )
        session.conversation = conversation
        agent_id = route_new_assignment(session, shop, now)
    else:
        previous = session.agent_id
        agent_id = route_new_assignment(session, shop, now, exclude_agent=previous,
                                        detail=f"agent {previous} unavailable", base_url=base_url)
    return Routed(session, agent_id)


def session_close(session: ServiceSession, now: datetime, *, exclude_channel: str | None = None) -> None:
    """End a session; the shop's agents and the consumer get 305 closed (not the closing socket)."""
    was_queued = session.state == State.QUEUED
    ServiceSession.objects.filter(pk=session.pk).update(state=State.CLOSED, closed_at=now)
    session.state = State.CLOSED
    # The agent hears it through the shop's agent group, which every agent's socket joins.
    push_session_event(session, "closed", to_users=[session.consumer_id], agent_id=session.agent_id or 0,
                       to_shop=True, exclude_channel=exclude_channel)
    if was_queued:
        push_queue_positions(session.shop_id)


def queue_drain(shop_id: int, *, base_url: str, now: datetime | None = None) -> int:
    """Assign queued sessions oldest first within capacity; the agent gets the backlog. Inside a transaction."""
    now = now or timezone.now()
    if not ServiceSession.objects.filter(shop_id=shop_id, state=State.QUEUED).exists():
        return 0
    shop = lock_shop(shop_id)
    candidates = candidates_for(shop)
    queued = list(
        ServiceSession.objects.select_related("conversation")
        .filter(shop_id=shop_id, state=State.QUEUED)
        .order_by("queued_at", "pk")
    )
    assigned = 0
    for session in queued:
        picked = pick_agent(shop.strategy, candidates)
        if picked is None:
            break
        assign(session, picked.user_id, Reason.QUEUE, now)
        picked.open_sessions += 1
        picked.last_assigned_at = now
        push_backlog(session, picked.user_id, base_url)
        assigned += 1
    if assigned:
        push_queue_positions(shop_id)
    return assigned


def push_backlog(session: ServiceSession, agent_id: int, base_url: str) -> None:
    """Every message of the session so far, as 200 pushes in seq order, to its new agent."""
    messages = (
        Message.objects.select_related("conversation", "sender")
        .filter(conversation_id=session.conversation_id, seq__gte=session.first_seq)
        .order_by("seq")
    )
    for message in messages:
        realtime.push_on_commit([realtime.user_group(agent_id)], Code.MESSAGE, message_result_from_row(message, base_url))


def sessions_close_idle(*, base_url: str, now: datetime | None = None) -> int:
    """Close sessions silent for IM_SESSION_IDLE_SECONDS, then let their shops' queues move."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.IM_SESSION_IDLE_SECONDS)
    with transaction.atomic():
        idle = list(
            ServiceSession.objects.select_related("conversation")
            .select_for_update(skip_locked=True, of=("self",))
            .filter(state__in=[State.OPEN, State.QUEUED], last_activity_at__lt=cutoff)[:500]
        )
        for session in idle:
            session_close(session, now)
    # Also a safety net: any shop with a queue gets a drain, whatever freed its agents.
    waiting = set(ServiceSession.objects.filter(state=State.QUEUED).values_list("shop_id", flat=True).distinct())
    for shop_id in {session.shop_id for session in idle} | waiting:
        with transaction.atomic():
            queue_drain(shop_id, base_url=base_url, now=now)
    return len(idle)
