"""Customer-service reads: who serves which shop, who is a shop's customer, live sessions."""

import logging
import threading
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from django.db import connection
from django.db.models import Count, IntegerField, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce

from accounts.models import User
from chat import ids
from chat.models import ChatType, Conversation, Message, SentAs
from chat.payloads import unix
from chat.presence import presence
from customer_service.hours import Hours, Interval, hours_payload, is_open, zone_names
from customer_service.models import ServiceAgent, ServiceSession, Shop, ShopClosedDay, ShopHours
from imchat.errors import bad_request, forbidden, not_found
from imchat.links import absolute_url
from imchat.sql import in_list, prepared

logger = logging.getLogger(__name__)


def served_shop_ids(user: User) -> list[int]:
    """Shops the user answers for: as an agent, or as the owner."""
    agent_shops = ServiceAgent.objects.filter(user=user).values_list("shop_id", flat=True)
    owned = Shop.objects.filter(owner=user).values_list("pk", flat=True)
    return sorted(set(agent_shops.union(owned)))  # one query: every socket opening asks


def agents_with_state(agents: QuerySet[ServiceAgent]) -> list[ServiceAgent]:
    """The agents, each with `open_sessions` (their load) and `connected` (a live socket on any
    process): one query and one presence ask, for routing, the REST API, reports and pages alike."""
    load = (
        ServiceSession.objects.filter(shop_id=OuterRef("shop_id"), agent_id=OuterRef("user_id"),
                                      state=ServiceSession.State.OPEN)
        .values("agent_id").annotate(n=Count("pk")).values("n")
    )
    rows = list(agents.annotate(open_sessions=Coalesce(Subquery(load, output_field=IntegerField()), 0)))
    connected = presence().online({agent.user_id for agent in rows})
    for agent in rows:
        agent.connected = agent.user_id in connected
    return rows


def agent_available(agent: ServiceAgent) -> bool:
    """Gets new sessions now: online, connected and below capacity (PROTOCOL.md section 5)."""
    return agent.status == ServiceAgent.Status.ONLINE and agent.connected and agent.open_sessions < agent.max_sessions


def live_session(conversation_id: int, *, lock: bool = False, conversation=None) -> ServiceSession | None:
    """The conversation's queued or open session; pass the `conversation` when you have it (no join)."""
    query = ServiceSession.objects.filter(conversation_id=conversation_id,
                                          state__in=[ServiceSession.State.QUEUED, ServiceSession.State.OPEN])
    if conversation is None:
        query = query.select_related("conversation")
    if lock:
        query = query.select_for_update(of=("self",))
    session = query.first()
    if session is not None and conversation is not None:
        session.conversation = conversation
    return session


def can_serve(user_id: int, shop_id: int) -> bool:
    """Whether the user answers for the shop: as an agent, or as the owner."""
    return (
        ServiceAgent.objects.filter(user_id=user_id, shop_id=shop_id).exists()
        or Shop.objects.filter(pk=shop_id, owner_id=user_id).exists()
    )


def shop_side_of(user: User, chat_id: str) -> int:
    """The shop of a customer-service chat the user answers for, or -403."""
    ref = ids.parse_chat_id(chat_id)
    if ref.chat_type != ChatType.SERVICE:
        raise bad_request("chat_id: not a customer-service chat")
    if not can_serve(user.pk, ref.a):
        raise forbidden("not an agent of this shop")
    return ref.a


def shop_side_unless_own(user: User, chat_id: str) -> int | None:
    """The shop of `<shop>____<someone else>` when the user serves that shop; None for any other chat.

    What a chat_id alone means (the compat client asks for an agent's history without role_type):
    the customer's own chat is their side, and a caller who does not serve the shop gets no shop side.
    Only another user's customer-service chat costs a query.
    """
    ref = ids.parse_chat_id(chat_id)
    if ref.chat_type != ChatType.SERVICE or ref.b == user.pk:
        return None
    return ref.a if can_serve(user.pk, ref.a) else None


def customer_conversation(shop_id: int, user_id: int) -> Conversation | None:
    """The user's conversation with the shop, or None when they are not its customer.

    Only a consumer's own message opens it (a shop never writes first), so it exists exactly when
    the user has written to the shop: the one test of "a customer of this shop" for the shop side.
    """
    return Conversation.objects.filter(chat_id=ids.service_chat_id(shop_id, user_id)).first()


@dataclass(frozen=True, slots=True)
class LiveSession:
    """An open session with what routing one more message needs."""

    pk: int
    shop_id: int
    agent_id: int | None
    agent_status: str | None  # None: the agent is no agent of the shop (any more)
    agent_serves: bool  # an agent or the owner of the shop
    consumer_active: bool
    shop_name: str
    shop_logo: str
    contact_guard: str  # the shop's Shop.ContactGuard
    offline_notify_minutes: int  # the shop's Shop.offline_notify_minutes
    # PostgreSQL: a digest of the agent and every field above from other rows (ROUTING_STAMP); the
    # batch's store compares it with what is true then. "" elsewhere (never kept: see below).
    stamp: str = ""


# The tables a session's routing facts come from, joined to a session `s`, and their digest: the
# live-sessions read takes it, and chat/messages.py's store recomputes it for the sessions it
# touches, so a message counted on facts that changed since (an agent's status, the shop's guard,
# name or logo, a consumer deactivated) is left out of the batch and goes through routing.
ROUTING_JOINS = f"""
JOIN {Shop._meta.db_table} shop ON shop.id = s.shop_id
JOIN {User._meta.db_table} u ON u.id = s.consumer_id
LEFT JOIN {ServiceAgent._meta.db_table} a ON a.shop_id = s.shop_id AND a.user_id = s.agent_id"""
ROUTING_STAMP = ("md5(concat_ws('|', s.agent_id, coalesce(a.status, '-'), shop.owner_id, u.is_active, shop.name, "
                 "shop.logo, shop.contact_guard, shop.offline_notify_minutes))")

_LIVE_SESSIONS_SQL = f"""
SELECT c.chat_id, s.id, s.shop_id, s.agent_id, a.status, shop.owner_id, u.is_active, shop.name, shop.logo,
       shop.contact_guard, shop.offline_notify_minutes, {{stamp}}
FROM {Conversation._meta.db_table} c
JOIN {ServiceSession._meta.db_table} s ON s.conversation_id = c.id AND s.state = 'open'
{ROUTING_JOINS}
WHERE c.chat_id """
_LIVE_SESSIONS_POSTGRES = _LIVE_SESSIONS_SQL.format(stamp=ROUTING_STAMP) + "= ANY(%(chat_ids)b::text[])"


def live_sessions_of(chat_ids: set[str]) -> dict[str, LiveSession]:
    """The open sessions of these conversations, in one statement (prepared on PostgreSQL)."""
    if connection.vendor == "postgresql":
        rows = prepared(_LIVE_SESSIONS_POSTGRES, {"chat_ids": list(chat_ids)})
    else:
        marks, values = in_list(chat_ids)
        with connection.cursor() as cursor:
            cursor.execute(_LIVE_SESSIONS_SQL.format(stamp="''") + f"IN ({marks})", values)
            rows = cursor.fetchall()
    return {chat_id: LiveSession(pk, shop_id, agent_id, status, status is not None or owner_id == agent_id,
                                 bool(active), shop_name, shop_logo, contact_guard, offline_notify_minutes, stamp)
            for (chat_id, pk, shop_id, agent_id, status, owner_id, active, shop_name, shop_logo, contact_guard,
                 offline_notify_minutes, stamp) in rows}


class KnownSessions:
    """The live sessions this process read, kept between batches (PostgreSQL only, where the
    batch's one statement checks each against the database: the session still open with the same
    agent, the stamp unchanged). A message counted on one that changed goes alone through routing,
    which forgets it here; the next batch reads it again. Elsewhere every batch reads."""

    def __init__(self, limit: int):
        self.limit = limit
        self._sessions: dict[str, LiveSession] = {}
        self._lock = threading.Lock()  # the batch's thread reads; a REST send may forget

    def of(self, chat_ids: set[str]) -> dict[str, LiveSession]:
        if connection.vendor != "postgresql":
            return live_sessions_of(chat_ids)
        with self._lock:
            found = {chat_id: self._sessions[chat_id] for chat_id in chat_ids if chat_id in self._sessions}
        missing = chat_ids - found.keys()
        if missing:
            read = live_sessions_of(missing)
            found.update(read)
            with self._lock:
                while self._sessions and len(self._sessions) + len(read) > self.limit:
                    del self._sessions[next(iter(self._sessions))]  # the oldest read first
                self._sessions.update(read)
        return found

    def forget(self, chat_id: str) -> None:
        with self._lock:
            self._sessions.pop(chat_id, None)


known_sessions = KnownSessions(limit=20_000)  # ~0.5 KB each


def shop_hours(shop_id: int, *, timezone: str | None = None, today: date | None = None) -> Hours:
    """The shop's business hours (its closed dates from yesterday on): two queries, three without
    the `timezone`. Only the slow path asks (a session created or queued, a drain, a page)."""
    if timezone is None:
        timezone = Shop.objects.filter(pk=shop_id).values_list("timezone", flat=True).first() or "UTC"
    intervals = tuple(Interval(weekday, opens, closes) for weekday, opens, closes in
                      ShopHours.objects.filter(shop_id=shop_id).values_list("weekday", "opens", "closes"))
    if not intervals:
        return Hours(timezone)  # always open: the zone is not read
    since = (today or datetime.now(UTC).date()) - timedelta(days=2)  # yesterday, wherever the shop is
    closed = frozenset(ShopClosedDay.objects.filter(shop_id=shop_id, date__gte=since).values_list("date", flat=True))
    if timezone not in zone_names():  # set by hand past the checks: read as UTC rather than fail a message
        logger.warning("shop %s has an unknown time zone %r: its hours are read in UTC", shop_id, timezone)
        timezone = "UTC"
    return Hours(timezone, intervals, closed)


def shops_open_now(shops: list[Shop], now: datetime) -> dict[int, bool]:
    """Whether each shop is open at `now`, for a list of shops: two queries whatever their number."""
    intervals: dict[int, list[Interval]] = {}
    for shop_id, weekday, opens, closes in ShopHours.objects.filter(shop__in=shops).values_list(
            "shop_id", "weekday", "opens", "closes"):
        intervals.setdefault(shop_id, []).append(Interval(weekday, opens, closes))
    closed: dict[int, set[date]] = {}
    if intervals:
        since = now.date() - timedelta(days=2)
        for shop_id, day in ShopClosedDay.objects.filter(shop_id__in=list(intervals), date__gte=since,
                                                         date__lte=now.date() + timedelta(days=2)).values_list(
                "shop_id", "date"):
            closed.setdefault(shop_id, set()).add(day)
    return {shop.pk: is_open(Hours(shop.timezone if shop.timezone in zone_names() else "UTC",
                                   tuple(intervals.get(shop.pk, ())), frozenset(closed.get(shop.pk, ()))), now)
            for shop in shops}


def shop_info(shop_id: int, *, base_url: str, now: datetime) -> dict:
    """What anyone may read about a shop: name, logo, hours (and closed dates from today on)."""
    shop = Shop.objects.filter(pk=shop_id).only("name", "logo", "timezone").first()
    if shop is None:
        raise not_found("shop_id: no such shop")
    hours = shop_hours(shop.pk, timezone=shop.timezone)
    today = now.astimezone(ZoneInfo(hours.timezone)).date() if not hours.always_open else now.date()
    return {"shop_id": shop.pk, "name": shop.name, "logo": absolute_url(shop.logo, base_url),
            **hours_payload(hours, now), "closed_days": sorted(day.isoformat() for day in hours.closed_days
                                                               if day >= today)}
def flagged_messages(*, shop_id: int, page: int, limit: int) -> dict:
    """The shop's messages the contact guard flagged, newest first: one page, and how many in all
    (both read the partial index `message_flagged`)."""
    flagged = Message.objects.filter(shop_id=shop_id, chat_type=ChatType.SERVICE).exclude(guard_kinds="")
    start = (page - 1) * limit
    rows = list(flagged.select_related("conversation", "sender").order_by("-id")[start:start + limit])
    return {
        "total": flagged.count(),
        "page": page,
        "rows": [
            {
                "msg_id": message.pk,
                "chat_id": message.conversation.chat_id,
                "seq": message.seq,
                "consumer_uid": ids.parse_chat_id(message.conversation.chat_id).b,
                "from_uid": message.from_uid,
                "side": "agent" if message.sent_as == SentAs.SERVICE else "consumer",
                "nickname": message.sender.display_name if message.sender else "",
                "msg_type": message.msg_type,
                "msg": message.msg,
                "kinds": message.guard_kinds.split(","),
                "createtime": unix(message.created_at),
            }
            for message in rows
        ],
    }


def flagged_count(shop_ids: list[int], *, since: datetime | None = None) -> int:
    """How many of the shops' messages the contact guard flagged (since a moment, or ever)."""
    flagged = Message.objects.filter(shop_id__in=shop_ids, chat_type=ChatType.SERVICE).exclude(guard_kinds="")
    if since is not None:
        flagged = flagged.filter(created_at__gte=since)
    return flagged.count()
