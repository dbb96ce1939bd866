"""Customer-service writes: shops, agents and their status, and messages between consumers and shops."""

import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import cached_property

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from accounts.models import User
from chat import ids, realtime
from chat.cards import Card
from chat.inputs import SendInput
from chat.messages import (
    NOBODY, Author, Draft, Notify, Plan, Served, Side, Stored, message_store, messages_store, payload,
)
from chat.models import ChatType, Conversation, Message, MsgType, Participant, SentAs
from chat.payloads import message_result_from_row
from chat.presence import presence
from chat.protocol import Caller
from customer_service import eta, guard, ratings, routing, selectors, webhooks
from customer_service.assignment import pick_agent
from customer_service.hours import (
    Hours, Interval, check_schedule, check_timezone, describe_moment, is_open, next_opening,
)
from customer_service.models import Assignment, ServiceAgent, ServiceSession, Shop, ShopClosedDay, ShopHours
from customer_service.offline import Role
from customer_service.selectors import can_serve, customer_conversation
from imchat import outages
from imchat.errors import AppError, Code, bad_request, forbidden, not_found
from imchat.links import absolute_url

logger = logging.getLogger(__name__)

State = ServiceSession.State
Status = ServiceAgent.Status


# --- Shops and agents ---------------------------------------------------------------------------


@transaction.atomic
def shop_create(*, name: str, owner: User, shop_id: int | None = None, logo: str = "",
                strategy: str = Shop.Strategy.LEAST_BUSY, offline_notice: str | None = None) -> Shop:
    if strategy not in Shop.Strategy.values:
        raise bad_request(f"strategy: one of {', '.join(Shop.Strategy.values)}")
    shop = Shop(id=shop_id, name=name, owner=owner, logo=logo, strategy=strategy)
    if offline_notice:
        shop.offline_notice = offline_notice
    shop.save(force_insert=True)
    return shop


@transaction.atomic
def shop_update(*, shop: Shop, **changes) -> Shop:
    """Change a shop's settings (the mall's sync, the admin); its name and logo follow into every
    conversation list at once, and a new owner's open sockets take the old owner's place in the
    shop's agent group."""
    old_owner_id = None
    if "owner" in changes or "owner_id" in changes:
        # From the row, not `shop`: the admin hands over an instance its form has already changed.
        old_owner_id = Shop.objects.select_for_update().values_list("owner_id", flat=True).get(pk=shop.pk)
    for name, value in changes.items():
        setattr(shop, name, value)
    shop.save()
    Conversation.objects.filter(chat_type=ChatType.SERVICE, shop_id=shop.pk).update(title=shop.name, avatar=shop.logo)
    if old_owner_id is not None and shop.owner_id != old_owner_id:
        realtime.membership_on_commit([realtime.user_group(shop.owner_id)], join=realtime.shop_agents_group(shop.pk))
        _shop_group_leave_unless_serving(shop_id=shop.pk, user_id=old_owner_id)
    return shop


@transaction.atomic
def shop_hours_set(*, shop: Shop, timezone_name: str, intervals: list[Interval],
                   closed_days: list[tuple[date, str]], greeting: str | None = None,
                   out_of_hours_message: str | None = None, base_url: str = "") -> Hours:
    """Replace a shop's business hours (and its greeting and out-of-hours text, when given). A shop
    that is open now after the change lets its queue move at once; else the periodic drain does at
    the opening."""
    try:
        check_timezone(timezone_name)
        check_schedule(intervals, [day for day, _ in closed_days])
    except ValueError as error:
        raise bad_request(str(error)) from None
    if len({day for day, _ in closed_days}) != len(closed_days):
        raise bad_request("closed_days: a date is listed twice")
    shop = lock_shop(shop.pk)
    shop.timezone = timezone_name
    if greeting is not None:
        shop.greeting = greeting
    if out_of_hours_message is not None:
        shop.out_of_hours_message = out_of_hours_message
    shop.save(update_fields=["timezone", "greeting", "out_of_hours_message"])
    ShopHours.objects.filter(shop=shop).delete()
    ShopHours.objects.bulk_create([ShopHours(shop=shop, weekday=interval.weekday, opens=interval.opens,
                                             closes=interval.closes) for interval in intervals])
    ShopClosedDay.objects.filter(shop=shop).delete()
    ShopClosedDay.objects.bulk_create([ShopClosedDay(shop=shop, date=day, note=note) for day, note in closed_days])
    queue_drain(shop_id=shop.pk, base_url=base_url)
    return selectors.shop_hours(shop.pk, timezone=shop.timezone)


def _shop_group_leave_unless_serving(*, shop_id: int, user_id: int) -> None:
    """Someone who no longer answers for the shop (neither agent nor owner) stops hearing its events."""
    if not can_serve(user_id, shop_id):
        realtime.membership_on_commit([realtime.user_group(user_id)], leave=realtime.shop_agents_group(shop_id))


@transaction.atomic
def agent_add(*, shop: Shop, user: User, status: str = Status.OFFLINE, max_sessions: int = 10,
              base_url: str = "") -> ServiceAgent:
    """Make a user an agent of a shop (or update an existing agent's status and capacity)."""
    if status not in Status.values:
        raise bad_request(f"status: one of {', '.join(Status.values)}")
    agent, created = ServiceAgent.objects.get_or_create(
        shop=shop, user=user, defaults={"status": status, "max_sessions": max_sessions}
    )
    if not created:
        agent_set_capacity(agent=agent, max_sessions=max_sessions, base_url=base_url)
        agent_set_status(user=user, status=status, shop_id=shop.pk, base_url=base_url)
        return agent
    # Their open sockets hear the shop's events from now on.
    realtime.membership_on_commit([realtime.user_group(user.pk)], join=realtime.shop_agents_group(shop.pk))
    if status == Status.ONLINE:
        queue_drain(shop_id=shop.pk, base_url=base_url)
    return agent


@transaction.atomic
def agent_remove(*, agent: ServiceAgent, base_url: str = "") -> None:
    """A merchant removes an agent: their sessions go to colleagues (or the queue) and their open
    sockets leave the shop's agent group (unless they own the shop)."""
    sessions_hand_back(agent, timezone.now(), base_url)
    agent.delete()
    _shop_group_leave_unless_serving(shop_id=agent.shop_id, user_id=agent.user_id)


@transaction.atomic
def agent_set_capacity(*, agent: ServiceAgent, max_sessions: int, base_url: str = "") -> None:
    """Change how many sessions an agent takes at once; more room lets the queue move at once."""
    if max_sessions < 0:
        raise bad_request("max_sessions: must be 0 or more")
    grew = max_sessions > agent.max_sessions
    ServiceAgent.objects.filter(pk=agent.pk).update(max_sessions=max_sessions)
    agent.max_sessions = max_sessions
    if grew:
        queue_drain(shop_id=agent.shop_id, base_url=base_url)


@transaction.atomic
def agent_set_status(*, user: User, status: str, shop_id: int | None = None, exclude_channel: str | None = None,
                     base_url: str = "") -> list[ServiceAgent]:
    """Set an agent's status in one or all of their shops; takes effect for routing at once.

    Online drains the shop's queue; offline hands the agent's open sessions back (to another
    agent, or the queue); busy keeps them but takes no new ones.
    """
    if status not in Status.values:
        raise bad_request(f"status: one of {', '.join(Status.values)}")
    agents = ServiceAgent.objects.filter(user=user)
    if shop_id:
        agents = agents.filter(shop_id=shop_id)
    agents = list(agents.select_for_update())
    if not agents:
        raise forbidden("not an agent of this shop" if shop_id else "not a service agent")
    now = timezone.now()
    for agent in agents:
        changed = agent.status != status
        agent.status = status
        agent.status_changed_at = now
        agent.save(update_fields=["status", "status_changed_at"])
        realtime.push_on_commit(
            [realtime.user_group(user.pk)],
            Code.AGENT_STATUS,
            {"shop_id": agent.shop_id, "uid": user.pk, "status": status},
            exclude_channel=exclude_channel,
        )
        if status == Status.ONLINE:
            queue_drain(shop_id=agent.shop_id, base_url=base_url, now=now)
        elif status == Status.OFFLINE and changed:
            sessions_hand_back(agent, now, base_url)
    return agents


def sessions_hand_back(agent: ServiceAgent, now, base_url: str) -> None:
    """An agent gone offline or removed: their open sessions go to colleagues, or the queue (the
    mall's events of them stored with one INSERT)."""
    sessions = list(
        ServiceSession.objects.select_related("conversation").select_for_update(of=("self",))
        .filter(shop_id=agent.shop_id, agent_id=agent.user_id, state=State.OPEN)
    )
    if not sessions:
        return
    shop = lock_shop(agent.shop_id)
    with webhooks.batched():
        for session in sessions:
            session_route(session=session, shop=shop, now=now, exclude_agent=agent.user_id,
                          detail=f"handed back by agent {agent.user_id} going offline", base_url=base_url)


# --- Sessions: every change of one is written here; customer_service/routing.py decides ---------


OUT_OF_HOURS = "out_of_hours"


class ShopOpening:
    """Whether a shop is open at `now`, its hours read (two queries) the first time that is asked."""

    def __init__(self, shop: Shop, now: datetime) -> None:
        self.shop = shop
        self.now = now

    @cached_property
    def hours(self) -> Hours:
        return selectors.shop_hours(self.shop.pk, timezone=self.shop.timezone)

    @cached_property
    def open_now(self) -> bool:
        return is_open(self.hours, self.now)


def session_event(session: ServiceSession, event: str, *, agent_id: int = 0, position: int = 0,
                  ext: dict | None = None) -> dict:
    """A 305's result: the compat fields, then the event's ext ones (queued: eta_seconds and, while
    the shop is closed, reason "out_of_hours"; closed: session_id, rate_until)."""
    return {
        "chat_id": session.conversation.chat_id,
        "shop_id": session.shop_id,
        "event": event,
        "agent_uid": agent_id,
        "queue_position": position,
        **(ext or {}),
    }


def _push_session_event(session: ServiceSession, event: str, *, to_users: list[int], agent_id: int = 0,
                        position: int = 0, to_shop: bool = False, exclude_channel: str | None = None,
                        ext: dict | None = None) -> None:
    """A 305; `exclude_channel` is the socket whose own close or transfer it echoes (it has the reply)."""
    groups = [realtime.user_group(uid) for uid in dict.fromkeys(to_users) if uid]
    if to_shop:
        groups.append(realtime.shop_agents_group(session.shop_id))
    realtime.push_on_commit(
        groups, Code.SESSION_EVENT, session_event(session, event, agent_id=agent_id, position=position, ext=ext),
        exclude_channel=exclude_channel,
    )


def _push_queued(session: ServiceSession, position: int, pace: eta.Pace, *, open_now: bool = True) -> None:
    ext = {"eta_seconds": pace.eta_seconds(position)}
    if not open_now:
        ext["reason"] = OUT_OF_HOURS
    _push_session_event(session, "queued", to_users=[session.consumer_id], position=position, ext=ext)


def lock_shop(shop_id: int) -> Shop:
    """Anything that may hand out a session holds this first: assignments happen one at a time."""
    return Shop.objects.select_for_update().get(pk=shop_id)


def session_assign(*, session: ServiceSession, agent_id: int, reason: str, now, detail: str = "",
                   event: str = "assigned", also_tell: tuple[int, ...] = (),
                   exclude_channel: str | None = None) -> None:
    """Give a session to an agent; the agent and the consumer (and `also_tell`) get a 305 `event`,
    and the mall session.assigned (a transfer tells it session.transferred: session_transfer)."""
    session.agent_id = agent_id
    session.state = State.OPEN
    session.assigned_at = now
    session.first_assigned_at = session.first_assigned_at or now
    session.last_activity_at = now
    session.save(update_fields=["agent", "state", "assigned_at", "first_assigned_at", "last_activity_at"])
    Assignment.objects.create(session=session, agent_id=agent_id, reason=reason, detail=detail[:200])
    ServiceAgent.objects.filter(shop_id=session.shop_id, user_id=agent_id).update(last_assigned_at=now)
    _push_session_event(session, event, to_users=[*also_tell, agent_id, session.consumer_id], agent_id=agent_id,
                        exclude_channel=exclude_channel)
    if event == "assigned":
        webhooks.session_changed(webhooks.Event.SESSION_ASSIGNED, session, reason=reason)


def session_route(*, session: ServiceSession, shop: Shop, now, exclude_agent: int | None = None, detail: str = "",
                  base_url: str = "", open_now: bool | None = None) -> int:
    """With the shop locked: the agent routing chooses gets the session, else it is queued. Returns
    the agent or 0. A session taken from another agent (`exclude_agent`) brings its messages so far.
    Outside the shop's hours nobody is chosen: the session waits in the queue for the opening."""
    if open_now is None:
        open_now = is_open(selectors.shop_hours(shop.pk, timezone=shop.timezone), now)
    chosen, reason = routing.choose_agent(session, shop, exclude_agent=exclude_agent) if open_now else (0, "")
    if chosen:
        session_assign(session=session, agent_id=chosen, reason=reason, now=now,
                       detail=detail or (shop.strategy if reason == Assignment.Reason.STRATEGY else ""))
        if exclude_agent:
            _push_backlog(session, chosen, base_url)
        return chosen
    session.agent_id = None
    session.state = State.QUEUED
    # Taken under the shop's lock (not the request's start time), so queue order is lock order.
    session.queued_at = timezone.now()
    session.save(update_fields=["agent", "state", "queued_at"])
    position = routing.queue_position(session)
    _push_queued(session, position, eta.shop_pace(session.shop_id), open_now=open_now)
    webhooks.session_changed(webhooks.Event.SESSION_QUEUED, session, queue_position=position,
                             out_of_hours=not open_now, previous_agent_uid=exclude_agent or 0)
    return 0


@dataclass(frozen=True)
class Opened:
    """A session `sessions_open_together` opened: what its first message's batch still needs."""

    shop: Shop
    session: ServiceSession
    agent_id: int


def sessions_open_together(shop_id: int, consumers: dict[int, User], *, now) -> dict[str, Opened]:
    """New sessions for consumers of one shop who have none, each assigned as routing would assign
    them one after the other (the agent who served them last, else the shop's strategy, each pick
    counting the ones before): a dozen statements under the shop's lock, however many consumers.
    {chat_id: Opened} for those opened; the others go through routing one by one (a shop closed now
    or missing, a queue waiting, nobody with capacity, a session opened meanwhile)."""
    with transaction.atomic():
        shop = Shop.objects.select_for_update().filter(pk=shop_id).first()
        if shop is None or not ShopOpening(shop, now).open_now:
            return {}
        if ServiceSession.objects.filter(shop=shop, state=State.QUEUED).exists():  # newcomers join its end
            return {}
        conversations = _service_conversations_open(shop, consumers)
        live = set(ServiceSession.objects.filter(conversation__in=conversations.values(),
                                                 state__in=[State.QUEUED, State.OPEN]).values_list("consumer_id",
                                                                                                   flat=True))
        candidates = {candidate.user_id: candidate for candidate in routing.candidates_for(shop)}
        last_agents = routing.previous_agents([conversation.pk for conversation in conversations.values()])
        sessions, reasons = [], []
        for consumer_id, conversation in conversations.items():
            if consumer_id in live:
                continue
            last = candidates.get(last_agents.get(conversation.pk))
            picked, reason = (last, Assignment.Reason.LAST_AGENT) if last is not None and last.has_capacity else (
                pick_agent(shop.strategy, list(candidates.values())), Assignment.Reason.STRATEGY)
            if picked is None:
                break  # nobody has capacity: the rest queue, through routing
            picked.open_sessions += 1
            picked.last_assigned_at = now
            sessions.append(ServiceSession(
                shop=shop, consumer_id=consumer_id, conversation=conversation, agent_id=picked.user_id,
                state=State.OPEN, first_seq=conversation.last_seq + 1, last_activity_at=now, queued_at=now,
                assigned_at=now, first_assigned_at=now,
            ))
            reasons.append(reason)
        if not sessions:
            return {}
        ServiceSession.objects.bulk_create(sessions)
        Assignment.objects.bulk_create([
            Assignment(session=session, agent_id=session.agent_id, reason=reason,
                       detail=shop.strategy if reason == Assignment.Reason.STRATEGY else "")
            for session, reason in zip(sessions, reasons)])
        ServiceAgent.objects.filter(shop=shop, user_id__in={session.agent_id for session in sessions}).update(
            last_assigned_at=now)
        with webhooks.batched():
            for session, reason in zip(sessions, reasons):
                _push_session_event(session, "assigned", to_users=[session.agent_id, session.consumer_id],
                                    agent_id=session.agent_id)
                webhooks.session_changed(webhooks.Event.SESSION_ASSIGNED, session, reason=reason)
                webhooks.session_created(session, consumer_nickname=consumers[session.consumer_id].display_name,
                                         now=now)
    return {session.conversation.chat_id: Opened(shop, session, session.agent_id) for session in sessions}


def _service_conversations_open(shop: Shop, consumers: dict[int, User]) -> dict[int, Conversation]:
    """{consumer id: their conversation with the shop}, each opened with its two rows if new: three
    statements (conversation_open_service, for many)."""
    chat_ids = {ids.service_chat_id(shop.pk, consumer_id): consumer_id for consumer_id in consumers}
    Conversation.objects.bulk_create(
        [Conversation(chat_id=chat_id, chat_type=ChatType.SERVICE, shop_id=shop.pk, title=shop.name, avatar=shop.logo)
         for chat_id in sorted(chat_ids)], ignore_conflicts=True)
    conversations = {chat_ids[conversation.chat_id]: conversation
                     for conversation in Conversation.objects.filter(chat_id__in=chat_ids).order_by("chat_id")}
    Participant.objects.bulk_create(
        [row for consumer_id, conversation in conversations.items()
         for row in (Participant(conversation=conversation, user_id=consumer_id, shop_id=shop.pk),
                     Participant(conversation=conversation, shop_id=shop.pk, peer_user_id=consumer_id))],
        ignore_conflicts=True)
    return {consumer_id: conversations[consumer_id] for consumer_id in consumers if consumer_id in conversations}


def _session_for_consumer_message(*, shop: Shop, conversation: Conversation, consumer: User, next_seq: int, now,
                                  base_url: str, opening: ShopOpening) -> tuple[ServiceSession, int]:
    """The session a consumer's message belongs to (found, or opened), and its agent (0: queued)."""
    session = selectors.live_session(conversation.pk, lock=True, conversation=conversation)
    if session is not None and session.state == State.OPEN:
        if session.last_activity_at < now - timedelta(seconds=settings.IM_SESSION_IDLE_SECONDS):
            session_close(session=session, now=now)
            queue_drain(shop_id=shop.pk, base_url=base_url, now=now)  # its place goes to the queue first
            session = None
        else:
            keeps, away = routing.agent_keeps_session(session, now)
            if keeps:
                grace = now - timedelta(seconds=settings.IM_AGENT_GRACE_SECONDS)
                if away and not session.assignments.filter(reason=Assignment.Reason.STICKY,
                                                           created_at__gte=grace).exists():
                    Assignment.objects.create(session=session, agent_id=session.agent_id,
                                              reason=Assignment.Reason.STICKY,
                                              detail=f"kept through {int(away)} s without a connection")
                ServiceSession.objects.filter(pk=session.pk).update(last_activity_at=now)
                return session, session.agent_id
    if session is not None and session.state == State.QUEUED:
        ServiceSession.objects.filter(pk=session.pk).update(last_activity_at=now)
        return session, 0
    shop = lock_shop(shop.pk)
    if session is None:
        session = ServiceSession.objects.create(
            shop=shop, consumer_id=consumer.pk, conversation=conversation, state=State.QUEUED,
            first_seq=next_seq, last_activity_at=now, queued_at=now,
        )
        session.conversation = conversation
        with webhooks.batched():
            agent_id = session_route(session=session, shop=shop, now=now, open_now=opening.open_now)
            webhooks.session_created(session, consumer_nickname=consumer.display_name, now=now)
        return session, agent_id
    previous = session.agent_id
    return session, session_route(session=session, shop=shop, now=now, exclude_agent=previous,
                                  detail=f"agent {previous} unavailable", base_url=base_url,
                                  open_now=opening.open_now)


def session_close(*, session: ServiceSession, now, exclude_channel: str | None = None, closed_by: str = "idle",
                  by_uid: int = 0) -> None:
    """End a session; the shop's agents and the consumer get 305 closed (not the closing socket), the
    mall session.closed (`closed_by`: idle, agent or mall; `by_uid`: the agent or owner, else 0)."""
    was_queued = session.state == State.QUEUED
    ServiceSession.objects.filter(pk=session.pk).update(state=State.CLOSED, closed_at=now)
    session.state = State.CLOSED
    session.closed_at = now
    # The agent hears it through the shop's agent group, which every agent's socket joins.
    _push_session_event(session, "closed", to_users=[session.consumer_id], agent_id=session.agent_id or 0,
                        to_shop=True, exclude_channel=exclude_channel, ext=ratings.closed_event_ext(session))
    webhooks.session_changed(webhooks.Event.SESSION_CLOSED, session, closed_by=closed_by, by_uid=by_uid,
                             closed_at=int(now.timestamp()))
    if was_queued:
        push_queue_positions(session.shop_id)


def queue_drain(*, shop_id: int, base_url: str, now=None) -> int:
    """Assign queued sessions oldest first within capacity; the agent gets the backlog. Inside a
    transaction; the mall's session.assigned events are stored with one INSERT."""
    now = now or timezone.now()
    if not ServiceSession.objects.filter(shop_id=shop_id, state=State.QUEUED).exists():
        return 0
    if not is_open(selectors.shop_hours(shop_id), now):  # the queue waits for the opening (a periodic drain)
        return 0
    shop = lock_shop(shop_id)
    candidates = routing.candidates_for(shop)
    queued = list(
        ServiceSession.objects.select_related("conversation")
        .filter(shop_id=shop_id, state=State.QUEUED)
        .order_by("queued_at", "pk")
    )
    assigned = 0
    with webhooks.batched():
        for session in queued:
            picked = pick_agent(shop.strategy, candidates)
            if picked is None:
                break
            session_assign(session=session, agent_id=picked.user_id, reason=Assignment.Reason.QUEUE, now=now)
            picked.open_sessions += 1
            picked.last_assigned_at = now
            _push_backlog(session, picked.user_id, base_url)
            assigned += 1
    if assigned:
        push_queue_positions(shop_id)
    return assigned


def push_queue_positions(shop_id: int) -> None:
    """Tell every queued consumer of the shop their place (after the queue moved)."""
    queued = list(
        ServiceSession.objects.select_related("conversation")
        .filter(shop_id=shop_id, state=State.QUEUED)
        .order_by("queued_at", "pk")
    )
    if not queued:
        return
    # Only a queue that waits out of hours costs the look at the shop's hours.
    closed = any(session.out_of_hours_at for session in queued) and not is_open(selectors.shop_hours(shop_id),
                                                                               timezone.now())
    pace = eta.shop_pace(shop_id)  # one query for the whole queue
    for position, session in enumerate(queued, start=1):
        _push_queued(session, position, pace, open_now=not closed)


def _push_backlog(session: ServiceSession, agent_id: int, base_url: str) -> None:
    """Every message of the session so far, as 200 pushes in seq order, to its new agent (the
    stored messages' own payloads: chat/payloads.py builds them as the store did)."""
    messages = (
        Message.objects.select_related("conversation", "sender")
        .filter(conversation_id=session.conversation_id, seq__gte=session.first_seq)
        .order_by("seq")
    )
    for message in messages:
        realtime.push_on_commit([realtime.user_group(agent_id)], Code.MESSAGE, message_result_from_row(message, base_url))


def sessions_close_idle(*, base_url: str, now=None) -> int:
    """Close sessions silent for IM_SESSION_IDLE_SECONDS, then let their shops' queues move."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.IM_SESSION_IDLE_SECONDS)
    # A session queued out of hours waits for the opening and an agent, however long the night.
    held = now - timedelta(seconds=settings.IM_OUT_OF_HOURS_HOLD_SECONDS)
    with transaction.atomic():
        idle = list(
            ServiceSession.objects.select_related("conversation")
            .select_for_update(skip_locked=True, of=("self",))
            .filter(state__in=[State.OPEN, State.QUEUED], last_activity_at__lt=cutoff)
            .exclude(state=State.QUEUED, out_of_hours_at__gt=held)[:500]
        )
        with webhooks.batched():
            for session in idle:
                session_close(session=session, now=now)
    # Also a safety net: any shop with a queue gets a drain, whatever freed its agents.
    # That is also how a queue moves when its shop opens; shops closed now are skipped in two queries.
    waiting = set(ServiceSession.objects.filter(state=State.QUEUED).values_list("shop_id", flat=True).distinct())
    shops = list(Shop.objects.filter(pk__in={session.shop_id for session in idle} | waiting).only("timezone"))
    open_now = selectors.shops_open_now(shops, now)
    for shop in shops:
        if open_now[shop.pk]:
            with transaction.atomic():
                queue_drain(shop_id=shop.pk, base_url=base_url, now=now)
    return len(idle)


def _locked_live_session(chat_id: str, session_id: int | None = None) -> ServiceSession:
    """The chat's live session, locked; with `session_id` (REST names the session) it must be that one."""
    conversation_id = Conversation.objects.filter(chat_id=chat_id).values_list("pk", flat=True).first()
    session = selectors.live_session(conversation_id, lock=True) if conversation_id else None
    if session_id is not None and (session is None or session.pk != session_id):
        raise not_found("session_id: the session is closed")
    if session is None:
        raise not_found("chat_id: no open session")
    return session


@transaction.atomic
def session_transfer(*, caller: Caller, shop_id: int, chat_id: str, to_uid: int, base_url: str,
                     session_id: int | None = None) -> ServiceSession:
    """Hand a session to another online agent of the shop (capacity not checked: it is deliberate).
    `caller` is an agent or the shop's owner (over the socket or REST), or the mall (uid None: 0)."""
    if not ServiceAgent.objects.filter(shop_id=shop_id, user_id=to_uid, status=Status.ONLINE).exists():
        raise bad_request("to_uid: not an online agent of this shop")
    session = _locked_live_session(chat_id, session_id)
    previous = session.agent_id or 0
    if previous == to_uid:
        raise bad_request("to_uid: already has this session")
    now = timezone.now()
    by_uid = caller.uid or 0
    session_assign(session=session, agent_id=to_uid, reason=Assignment.Reason.TRANSFER, now=now,
                   detail=f"from agent {previous} by {by_uid or 'the mall'}", event="transferred",
                   also_tell=(previous,), exclude_channel=caller.channel_name)
    webhooks.session_changed(webhooks.Event.SESSION_TRANSFERRED, session, from_agent_uid=previous, by_uid=by_uid)
    queue_drain(shop_id=shop_id, base_url=base_url, now=now)
    return session


@transaction.atomic
def session_close_by_agent(*, caller: Caller, chat_id: str, base_url: str,
                           session_id: int | None = None) -> ServiceSession:
    """An agent or the shop's owner ends a session (or the mall over REST: `caller.uid` None)."""
    session = _locked_live_session(chat_id, session_id)
    now = timezone.now()
    session_close(session=session, now=now, exclude_channel=caller.channel_name,
                  closed_by="agent" if caller.uid else "mall", by_uid=caller.uid or 0)
    queue_drain(shop_id=session.shop_id, base_url=base_url, now=now)
    return session


# --- Messages -----------------------------------------------------------------------------------


def conversation_open_service(*, shop: Shop, consumer: User) -> Conversation:
    """The consumer's conversation with a shop, with the consumer's row and the shared shop-side row.

    Only the consumer's message opens it: that makes them the shop's customer (customer_conversation).
    """
    chat_id = ids.service_chat_id(shop.pk, consumer.pk)
    existing = Conversation.objects.filter(chat_id=chat_id).first()
    if existing is not None:  # every message after the first: one SELECT, no savepoint
        return existing
    try:
        with transaction.atomic():
            conversation, created = Conversation.objects.get_or_create(
                chat_id=chat_id,
                defaults={"chat_type": ChatType.SERVICE, "shop_id": shop.pk, "title": shop.name, "avatar": shop.logo},
            )
            if created:
                Participant.objects.bulk_create([
                    Participant(conversation=conversation, user=consumer, shop_id=shop.pk),
                    Participant(conversation=conversation, shop_id=shop.pk, peer_user=consumer),
                ])
    except IntegrityError:
        conversation = Conversation.objects.get(chat_id=chat_id)
    return conversation


def resolve_service_chat(*, caller: Caller, as_service: bool, shop_id: int | None, to_uid: int | None,
                         chat_id: str | None) -> tuple[int, int]:
    """(shop id, consumer id) of a type-4 message: shop_id if non-zero, else chat_id, else to_uid."""
    ref = ids.parse_chat_id(chat_id) if chat_id else None
    if ref is not None and ref.chat_type != ChatType.SERVICE:
        raise bad_request("chat_id: not a customer-service chat")
    if as_service:
        shop = shop_id or (ref.a if ref else None)
        consumer = (ref.b if ref else None) or to_uid
        if not shop:
            raise bad_request("shop_id: required")
        if not consumer:
            raise bad_request("to_uid: required")
        if ref is not None and (ref.a != shop or (to_uid and to_uid != ref.b)):
            raise bad_request("chat_id: does not match shop_id and to_uid")
        return shop, consumer
    shop = shop_id or (ref.a if ref else None) or to_uid
    if not shop:
        raise bad_request("to_uid: required")
    if ref is not None and ref.a != shop:
        raise bad_request("chat_id: does not match the shop")
    if ref is not None and ref.b != caller.uid:
        raise forbidden("chat_id: not your conversation")
    return shop, caller.uid


def _shop(shop_id: int) -> Shop:
    shop = Shop.objects.filter(pk=shop_id).first()
    if shop is None:
        raise not_found("shop_id: no such shop")
    return shop


@dataclass(frozen=True)
class Body:
    """What a message says, whoever sends it."""

    msg_type: int
    msg: str
    client_msg_id: str | None
    card: Card | None = None


def _notify(recipient_id: int, role: Role, minutes: int, session_id: int) -> Notify | None:
    """The receiver the mall tells of a message while they have no live socket (0 minutes: never)."""
    return Notify(recipient_id, role, minutes * 60, session_id) if minutes > 0 and recipient_id else None


def _consumer_draft(caller: Caller, message: Body, shop_id: int, agent_id: int, note: dict | None = None,
                    served: Served | None = None, notify: Notify | None = None) -> Draft:
    consumer = caller.user
    return Draft(
        chat_id=ids.service_chat_id(shop_id, consumer.pk), chat_type=ChatType.SERVICE, msg_type=message.msg_type,
        msg=message.msg, author=Author(consumer.display_name, caller.avatar_url, consumer.pk),
        reads=Side(user_id=consumer.pk), sent_as=SentAs.USER, to_uid=agent_id, sender_id=consumer.pk,
        shop_id=shop_id, client_msg_id=message.client_msg_id,
        receivers=(realtime.user_group(agent_id),) if agent_id else (), sender_socket=caller.channel_name,
        sender_note=note, card=message.card, served=served, notify=notify,
    )


def _agent_draft(caller: Caller, message: Body, *, shop_id: int, shop_name: str, shop_logo: str,
                 consumer_id: int, also_to: int | None = None, note: dict | None = None,
                 served: Served | None = None, notify: Notify | None = None) -> Draft:
    """An agent speaks for the shop: the shop's name and logo, the agent's own as service_*."""
    receivers = [realtime.user_group(consumer_id)]
    if also_to and also_to != caller.uid:  # the session's own agent, when a colleague or the owner answers
        receivers.append(realtime.user_group(also_to))
    return Draft(
        chat_id=ids.service_chat_id(shop_id, consumer_id), chat_type=ChatType.SERVICE, msg_type=message.msg_type,
        msg=message.msg,
        author=Author(shop_name, absolute_url(shop_logo, caller.base_url), None, caller.user.display_name,
                      caller.avatar_url),
        reads=Side(shop_id=shop_id), sent_as=SentAs.SERVICE, to_uid=consumer_id, sender_id=caller.uid,
        shop_id=shop_id, client_msg_id=message.client_msg_id, receivers=tuple(receivers),
        sender_socket=caller.channel_name, sender_note=note, card=message.card, served=served, notify=notify,
    )


def _guarded(mode: str, msg_type: int, msg: str, client_msg_id: str | None,
             card: Card | None = None) -> tuple[Body, guard.Verdict]:
    """The body as the shop's contact guard lets it through, and the verdict (kinds to flag, note).
    A card's text is the server's own line about what the mall signed: not screened."""
    verdict = guard.screen(Shop.ContactGuard.OFF if card is not None else mode, msg_type, msg)
    return Body(msg_type, verdict.msg, client_msg_id, card), verdict


def service_plan(items: list[tuple[int, Caller, SendInput]], *, now) -> Plan:
    """Customer-service messages of a batch, set-based: one statement reads the live sessions they
    belong to that this process does not know yet (selectors.KnownSessions). A consumer's message
    whose session is open, with an agent who is online-or-busy and connected, and not idle, goes to
    that agent with no lock; an agent's answer in a session that is theirs likewise. The store
    checks that all of it still holds. Everything else (a first message, a queued or idle session,
    an agent gone, a claim) goes alone through routing, under the shop's lock."""
    plan = Plan()
    wanted: dict[int, tuple[Caller, SendInput, int, int]] = {}
    for index, caller, send in items:
        try:
            shop_id, consumer_id = resolve_service_chat(caller=caller, as_service=send.as_service,
                                                        shop_id=send.shop_id, to_uid=send.to_uid, chat_id=send.chat_id)
        except AppError as error:
            plan.errors[index] = error
            continue
        wanted[index] = (caller, send, shop_id, consumer_id)
    if not wanted:
        return plan
    sessions = selectors.known_sessions.of(
        {ids.service_chat_id(shop_id, consumer_id) for _, _, shop_id, consumer_id in wanted.values()})
    opened = _sessions_open_for_firsts(wanted, sessions, now)
    if opened:
        sessions.update(selectors.known_sessions.of(set(opened)))
    connected = presence().online({session.agent_id for session in sessions.values() if session.agent_id})
    flagged: dict[int, tuple[str, ...]] = {}  # index -> what the contact guard found
    for index, (caller, send, shop_id, consumer_id) in wanted.items():
        session = sessions.get(ids.service_chat_id(shop_id, consumer_id))
        if session is None or session.shop_id != shop_id or not session.agent_id:
            plan.alone.append(index)
            continue
        if send.as_service:
            if session.agent_id != caller.uid or not session.agent_serves or not session.consumer_active:
                plan.alone.append(index)
                continue
            body, verdict = _guarded(session.contact_guard, send.msg_type, send.msg, send.client_msg_id, send.card)
            plan.drafts[index] = _agent_draft(caller, body, shop_id=shop_id, shop_name=session.shop_name,
                                              shop_logo=session.shop_logo, consumer_id=consumer_id,
                                              note=verdict.note,
                                              served=Served(session.pk, session.agent_id, True, session.stamp),
                                              notify=_notify(consumer_id, Role.CONSUMER,
                                                             session.offline_notify_minutes, session.pk))
        elif session.agent_status in (Status.ONLINE, Status.BUSY) and session.agent_id in connected:
            # The agent is connected (just asked): nobody to tell offline. An idle session is left
            # out by the store and goes through routing, which closes it.
            body, verdict = _guarded(session.contact_guard, send.msg_type, send.msg, send.client_msg_id, send.card)
            plan.drafts[index] = _consumer_draft(caller, body, shop_id, session.agent_id, note=verdict.note,
                                                 served=Served(session.pk, session.agent_id, False, session.stamp))
        else:
            plan.alone.append(index)
            continue
        if verdict.flagged:
            flagged[index] = verdict.flagged

    greeted = {index: opened[plan.drafts[index].chat_id] for index in plan.drafts
               if plan.drafts[index].chat_id in opened and opened[plan.drafts[index].chat_id].shop.greeting}

    def after_store(stored: dict[int, Stored]) -> None:
        guard.messages_flag([(plan.drafts[index], stored[index], kinds)
                             for index, kinds in flagged.items() if index in stored])
        webhooks.messages_created([(plan.drafts[index], row, plan.drafts[index].served.session_id)
                                   for index, row in stored.items()])
        _greet({opened.session.pk: (opened, wanted[index][0].base_url)  # once a session, after its messages
                for index, opened in greeted.items() if index in stored}, now)

    # Nothing to do after the store (and no closure called) unless a flag, a greeting or the mall wants it.
    if flagged or greeted or webhooks.wanted(webhooks.MESSAGE_CREATED):
        plan.after_store = after_store
    return plan


def _sessions_open_for_firsts(wanted: dict[int, tuple[Caller, SendInput, int, int]], sessions: dict,
                              now) -> dict[str, Opened]:
    """Sessions for the consumers' messages with none open, per shop together (sessions_open_together);
    a shop that fails is logged and its messages go through routing one by one."""
    by_shop: dict[int, dict[int, User]] = {}
    for caller, send, shop_id, consumer_id in wanted.values():
        if not send.as_service and ids.service_chat_id(shop_id, consumer_id) not in sessions:
            by_shop.setdefault(shop_id, {})[consumer_id] = caller.user
    opened: dict[str, Opened] = {}
    for shop_id, consumers in by_shop.items():
        try:
            opened.update(sessions_open_together(shop_id, consumers, now=now))
        except Exception as error:
            outages.report(logger, error, "opening %d sessions of shop %s failed; routing them one by one",
                           len(consumers), shop_id, requests=0)
    return opened


def _greet(sessions: dict[int, tuple[Opened, str]], now) -> None:
    """The shops' greetings in sessions just opened together: one store for all (_shop_says, for many)."""
    if sessions:
        messages_store([_shop_draft(opened.shop, opened.session.consumer_id, opened.shop.greeting, base_url,
                                    agent_id=opened.agent_id) for opened, base_url in sessions.values()], now=now)


def service_message_send(*, caller: Caller, send: SendInput) -> Stored:
    """One customer-service message through routing: the consumer's to the shop, or an agent's answer."""
    shop_id, consumer_id = resolve_service_chat(caller=caller, as_service=send.as_service, shop_id=send.shop_id,
                                                to_uid=send.to_uid, chat_id=send.chat_id)
    selectors.known_sessions.forget(ids.service_chat_id(shop_id, consumer_id))  # it changed, or is new: read again
    body = dict(msg_type=send.msg_type, msg=send.msg, client_msg_id=send.client_msg_id, card=send.card)
    if send.as_service:
        return agent_message_send(caller=caller, shop_id=shop_id, consumer_id=consumer_id, **body)
    return consumer_message_send(caller=caller, shop_id=shop_id, **body)


def consumer_message_send(*, caller: Caller, shop_id: int, msg_type: int, msg: str,
                          client_msg_id: str | None, card: Card | None = None) -> Stored:
    """A consumer writes to a shop: route to one agent (or queue + offline notice), store, push."""
    shop = _shop(shop_id)
    consumer = caller.user
    with transaction.atomic():
        conversation = conversation_open_service(shop=shop, consumer=consumer)
        now = timezone.now()
        opening = ShopOpening(shop, now)
        session, agent_id = _session_for_consumer_message(
            shop=shop, conversation=conversation, consumer=consumer, next_seq=conversation.last_seq + 1, now=now,
            base_url=caller.base_url, opening=opening,
        )
        body, verdict = _guarded(shop.contact_guard, msg_type, msg, client_msg_id, card)
        # Queued (no agent): no receiver; `message.unattended` is the mall's cue. Kept by an agent
        # whose socket is gone (the grace): the agent hears through the mall.
        draft = _consumer_draft(caller, body, shop.pk, agent_id, note=verdict.note,
                                notify=_notify(agent_id, Role.AGENT, shop.offline_notify_minutes, session.pk))
        stored = message_store(draft, now=now)
        new_session = session.first_seq == stored.seq
        if verdict.flagged:
            guard.messages_flag([(draft, stored, verdict.flagged)])
        webhooks.messages_created([(draft, stored, session.pk)])
        if session.state == State.QUEUED and webhooks.wanted(webhooks.Event.MESSAGE_UNATTENDED):
            webhooks.message_unattended(session, payload(draft, stored))
        # The shop's automatic answers, after the message (the hours are read only here: a new or queued session).
        if agent_id == 0 and not opening.open_now:
            _out_of_hours_message_if_due(session, shop, consumer.pk, caller.base_url, now, opening.hours)
            return stored
        if new_session and shop.greeting:
            _shop_says(shop, consumer.pk, shop.greeting, caller.base_url, now, agent_id=agent_id)
        if agent_id == 0:
            _offline_notice_if_due(session, shop, consumer.pk, caller.base_url, now)
    return stored


def _shop_says(shop: Shop, consumer_id: int, text: str, base_url: str, now, *, agent_id: int = 0) -> None:
    """An automatic message from the shop (its name and logo) in the conversation; it reads nothing
    for the shop, so the consumer's question stays unread there. The session's agent sees it too."""
    message_store(_shop_draft(shop, consumer_id, text, base_url, agent_id=agent_id), now=now)


def _shop_draft(shop: Shop, consumer_id: int, text: str, base_url: str, *, agent_id: int = 0) -> Draft:
    receivers = [realtime.user_group(consumer_id)] + ([realtime.user_group(agent_id)] if agent_id else [])
    return Draft(
        chat_id=ids.service_chat_id(shop.pk, consumer_id), chat_type=ChatType.SERVICE, msg_type=MsgType.TEXT,
        msg=text, author=Author(shop.name, absolute_url(shop.logo, base_url)), reads=NOBODY,
        sent_as=SentAs.SYSTEM, to_uid=consumer_id, shop_id=shop.pk, receivers=tuple(receivers),
    )


def out_of_hours_text(shop: Shop, hours: Hours, now) -> str:
    """The shop's out-of-hours message with {next_opening} filled in (in the shop's time zone)."""
    opens = next_opening(hours, now)
    return shop.out_of_hours_message.replace(
        "{next_opening}", describe_moment(opens, hours.timezone) if opens else "soon")


def _out_of_hours_message_if_due(session: ServiceSession, shop: Shop, consumer_id: int, base_url: str, now,
                                 hours: Hours) -> None:
    """Once per session, outside the hours (in place of the offline notice and the greeting)."""
    if session.out_of_hours_at is not None:
        return
    ServiceSession.objects.filter(pk=session.pk).update(out_of_hours_at=now)
    session.out_of_hours_at = now
    _shop_says(shop, consumer_id, out_of_hours_text(shop, hours, now), base_url, now)


def _offline_notice_if_due(session: ServiceSession, shop: Shop, consumer_id: int, base_url: str, now) -> None:
    """The shop's offline notice, stored in the conversation, at most once per IM_OFFLINE_NOTICE_SECONDS."""
    recent = now - timedelta(seconds=settings.IM_OFFLINE_NOTICE_SECONDS)
    if session.offline_notice_at is not None and session.offline_notice_at > recent:
        return
    previous = (
        ServiceSession.objects.filter(conversation_id=session.conversation_id, offline_notice_at__gt=recent)
        .exclude(pk=session.pk).exists()
    )
    if previous:
        return
    ServiceSession.objects.filter(pk=session.pk).update(offline_notice_at=now)
    _shop_says(shop, consumer_id, shop.offline_notice, base_url, now)


def agent_message_send(*, caller: Caller, shop_id: int, consumer_id: int, msg_type: int, msg: str,
                       client_msg_id: str | None, card: Card | None = None) -> Stored:
    """An agent (or the shop's owner) answers a customer for the shop; a queued or closed session is claimed.

    The shop never writes first: to anyone who has not written to it, -404 (whether or not the id
    is a user), so the shop's side can neither spam nor probe user ids.
    """
    if not can_serve(caller.uid, shop_id):
        raise forbidden("not an agent of this shop")
    shop = _shop(shop_id)
    with transaction.atomic():
        conversation = customer_conversation(shop.pk, consumer_id)  # the lookup a reply makes anyway
        if conversation is None:
            raise not_found("to_uid: not a customer of this shop")
        consumer = User.objects.filter(pk=consumer_id, is_active=True).first()
        if consumer is None:
            raise not_found("to_uid: no such user")
        now = timezone.now()
        session = selectors.live_session(conversation.pk, lock=True)
        if session is None or session.state == State.QUEUED:
            lock_shop(shop.pk)
            if session is None:
                session = ServiceSession.objects.create(
                    shop=shop, consumer=consumer, conversation=conversation, state=State.OPEN,
                    first_seq=conversation.last_seq + 1, last_activity_at=now,
                )
                session.conversation = conversation
            was_queued = session.state == State.QUEUED
            with webhooks.batched():
                session_assign(session=session, agent_id=caller.uid, reason=Assignment.Reason.CLAIM, now=now)
                if not was_queued:  # a session the agent's answer opened
                    webhooks.session_created(session, consumer_nickname=consumer.display_name, now=now)
            if was_queued:
                push_queue_positions(shop.pk)
        ServiceSession.objects.filter(pk=session.pk).update(
            last_activity_at=now, first_response_at=Coalesce("first_response_at", Value(now)))
        body, verdict = _guarded(shop.contact_guard, msg_type, msg, client_msg_id, card)
        draft = _agent_draft(caller, body, shop_id=shop.pk, shop_name=shop.name, shop_logo=shop.logo,
                             consumer_id=consumer.pk, also_to=session.agent_id, note=verdict.note,
                             notify=_notify(consumer.pk, Role.CONSUMER, shop.offline_notify_minutes, session.pk))
        stored = message_store(draft, now=now)
        if verdict.flagged:
            guard.messages_flag([(draft, stored, verdict.flagged)])
        webhooks.messages_created([(draft, stored, session.pk)])
        return stored
