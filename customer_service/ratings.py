"""CSAT: a consumer rates a closed customer-service session once (PROTOCOL-EXT.md, CSAT), and the
shop's side reads the ratings (workspace, dashboard, admin, REST).

The rating lives on the session (ServiceSession.rating / rating_comment / rated_at). Rules: only the
session's consumer (anyone else: -404, as for no session at all), only a closed session, only once,
only within IM_CSAT_WINDOW_SECONDS of the close (code 0 otherwise, naming the field); `score` an
integer 1..5, `comment` at most COMMENT_MAX characters.
"""

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Exists, OuterRef, QuerySet
from django.utils import timezone

from accounts.models import User
from chat import ids, realtime
from chat.models import ChatType
from chat.payloads import unix
from chat.protocol import read_int, read_str
from customer_service import webhooks
from customer_service.models import ServiceSession, WebhookDelivery
from imchat.errors import AppError, Code, bad_request, not_found

State = ServiceSession.State
COMMENT_MAX = ServiceSession._meta.get_field("rating_comment").max_length
SCORES = range(1, 6)
PENDING_MAX = 50
PAGE_SIZE = 50
REPORT_DAYS = 30


def rate_until(session: ServiceSession) -> int:
    """Unix second after which the closed session can no longer be rated."""
    return unix(session.closed_at) + settings.IM_CSAT_WINDOW_SECONDS


def closed_event_ext(session: ServiceSession) -> dict[str, int]:
    """What the 305 `closed` adds (ext): which session to rate, and until when."""
    return {"session_id": session.pk, "rate_until": rate_until(session)}


# --- Input --------------------------------------------------------------------------------------


def read_score(content: dict) -> int:
    try:
        score = read_int(content, "score", required=True, minimum=1)
    except AppError:
        score = None
    if score not in SCORES:
        raise bad_request("score: must be an integer from 1 to 5")
    return score


def read_comment(content: dict) -> str:
    return (read_str(content, "comment", max_length=COMMENT_MAX) or "").strip()


def read_session_ref(content: dict) -> tuple[int | None, str | None]:
    """(session_id, chat_id): one of them names the session (session_id wins)."""
    session_id = read_int(content, "session_id", minimum=1)
    chat_id = None if session_id else read_str(content, "chat_id", max_length=64)
    if not session_id and not chat_id:
        raise bad_request("session_id: required (or chat_id)")
    return session_id, chat_id


# --- The write ----------------------------------------------------------------------------------


def _session_to_rate(consumer_id: int, session_id: int | None, chat_id: str | None) -> tuple[ServiceSession, str]:
    """The consumer's session named by id, or the conversation's latest closed one; locked. -404 for
    anyone else's (their existence is not revealed)."""
    sessions = ServiceSession.objects.select_related("conversation").select_for_update(of=("self",))
    if session_id:
        session = sessions.filter(pk=session_id, consumer_id=consumer_id).first()
        if session is None:
            raise not_found("session_id: no such session")
        return session, "session_id"
    ref = ids.parse_chat_id(chat_id)
    if ref.chat_type != ChatType.SERVICE or ref.b != consumer_id:
        raise not_found("chat_id: no such session")
    mine = sessions.filter(conversation__chat_id=chat_id, consumer_id=consumer_id)
    session = mine.filter(state=State.CLOSED).order_by("-closed_at", "-pk").first()
    if session is None:
        if mine.exists():
            raise bad_request("chat_id: the session is not closed yet")
        raise not_found("chat_id: no such session")
    return session, "chat_id"


@transaction.atomic
def session_rate(*, consumer: User, score: int, comment: str = "", session_id: int | None = None,
                 chat_id: str | None = None, exclude_channel: str | None = None,
                 now: datetime | None = None) -> ServiceSession:
    """Store the consumer's rating of a closed session (once); the shop's agents get a 308, the mall
    a `session.rated` webhook."""
    if score not in SCORES:
        raise bad_request("score: must be an integer from 1 to 5")
    if len(comment) > COMMENT_MAX:
        raise bad_request(f"comment: at most {COMMENT_MAX} characters")
    now = now or timezone.now()
    session, field = _session_to_rate(consumer.pk, session_id, chat_id)
    if session.state != State.CLOSED:
        raise bad_request(f"{field}: the session is not closed yet")
    if session.rating is not None:
        raise bad_request(f"{field}: already rated")
    if now.timestamp() > rate_until(session):
        raise bad_request(f"{field}: too late to rate (the window closed)")
    # Conditional, so two ratings at once store one even where the row lock is a no-op (SQLite).
    if not ServiceSession.objects.filter(pk=session.pk, rating__isnull=True).update(
            rating=score, rating_comment=comment, rated_at=now):
        raise bad_request(f"{field}: already rated")
    session.rating, session.rating_comment, session.rated_at = score, comment, now
    event = rating_event(session)
    # The shop's agents and owner; the consumer's other sockets (their widget there is done too).
    realtime.push_on_commit([realtime.shop_agents_group(session.shop_id)], Code.SESSION_RATED, event)
    realtime.push_on_commit([realtime.user_group(consumer.pk)], Code.SESSION_RATED, event,
                            exclude_channel=exclude_channel)
    webhooks.webhook_enqueue(event=WebhookDelivery.Event.SESSION_RATED, now=now, data={
        **event, "consumer_uid": session.consumer_id, "rated_at": unix(now)})
    return session


def rating_event(session: ServiceSession) -> dict[str, Any]:
    """The 308's result, also the reply to service.rate."""
    return {
        "chat_id": session.conversation.chat_id,
        "shop_id": session.shop_id,
        "session_id": session.pk,
        "score": session.rating,
        "comment": session.rating_comment,
        "agent_uid": session.agent_id or 0,
    }


# --- Reads --------------------------------------------------------------------------------------


def pending_for(consumer_id: int, *, now: datetime | None = None) -> list[dict[str, Any]]:
    """The consumer's sessions that wait for a rating: each conversation's latest session when it is
    closed, unrated and within the window (one query)."""
    now = now or timezone.now()
    since = now - timedelta(seconds=settings.IM_CSAT_WINDOW_SECONDS)
    rows = (
        ServiceSession.objects.filter(consumer_id=consumer_id, state=State.CLOSED, rating__isnull=True,
                                      closed_at__gte=since)
        .exclude(Exists(ServiceSession.objects.filter(conversation_id=OuterRef("conversation_id"), pk__gt=OuterRef("pk"))))
        .select_related("conversation", "shop")
        .order_by("-closed_at", "-pk")[:PENDING_MAX]
    )
    return [{"session_id": session.pk, "chat_id": session.conversation.chat_id, "shop_id": session.shop_id,
             "shop_name": session.shop.name, "agent_uid": session.agent_id or 0,
             "closed_at": unix(session.closed_at), "rate_until": rate_until(session)} for session in rows]


def rated_sessions(shop_ids: list[int], *, agent_uid: int | None = None, score: int | None = None,
                   since: datetime | None = None) -> QuerySet[ServiceSession]:
    """The shops' rated sessions, newest rating first, optionally of one agent, one score, since a time."""
    query = ServiceSession.objects.filter(shop_id__in=shop_ids, rating__isnull=False)
    if agent_uid:
        query = query.filter(agent_id=agent_uid)
    if score:
        query = query.filter(rating=score)
    if since is not None:
        query = query.filter(rated_at__gte=since)
    return query.order_by("-rated_at", "-pk")


def rating_row(session: ServiceSession) -> dict[str, Any]:
    """One rating as the shop's side reads it (needs consumer and agent selected)."""
    return {
        **rating_event(session),
        "consumer_uid": session.consumer_id,
        "consumer_name": session.consumer.display_name,
        "agent_name": session.agent.display_name if session.agent else "",
        "closed_at": unix(session.closed_at),
        "rated_at": unix(session.rated_at),
    }


def _figures(counts: dict[int, int]) -> dict[str, Any]:
    total = sum(counts.values())
    average = round(sum(score * n for score, n in counts.items()) / total, 2) if total else None
    return {"count": total, "average": average,
            "distribution": {str(score): counts.get(score, 0) for score in SCORES}}


def rating_summary(shop_ids: list[int], *, since: datetime | None = None,
                   now: datetime | None = None) -> dict[str, Any]:
    """Average, count and distribution of scores: overall, per shop and per agent (one query).
    Default period: the last REPORT_DAYS days."""
    now = now or timezone.now()
    since = since or now - timedelta(days=REPORT_DAYS)
    rows = (
        ServiceSession.objects.filter(shop_id__in=shop_ids, rating__isnull=False, rated_at__gte=since)
        .values_list("shop_id", "agent_id", "agent__nickname", "agent__username", "rating")
        .annotate(n=Count("pk")).order_by()
    )
    overall: dict[int, int] = {}
    shops: dict[int, dict[int, int]] = {}
    agents: dict[tuple[int, int], dict[int, int]] = {}
    names: dict[int, str] = {}
    for shop_id, agent_id, nickname, username, score, n in rows:
        overall[score] = overall.get(score, 0) + n
        shop = shops.setdefault(shop_id, {})
        shop[score] = shop.get(score, 0) + n
        agent = agents.setdefault((shop_id, agent_id or 0), {})
        agent[score] = agent.get(score, 0) + n
        if agent_id:
            names[agent_id] = nickname or username
    return {
        "since": unix(since),
        **_figures(overall),
        "shops": [{"shop_id": shop_id, **_figures(counts)} for shop_id, counts in sorted(shops.items())],
        "agents": [{"shop_id": shop_id, "agent_uid": agent_id, "name": names.get(agent_id, ""), **_figures(counts)}
                   for (shop_id, agent_id), counts in sorted(agents.items())],
    }
