"""Reads behind the web pages: the agent workspace's lists and the merchant dashboard's numbers.

Each function takes the shops the viewer may see (the views decide that) and runs a few queries
with no per-row lookups.
"""

from datetime import UTC, datetime, timedelta
from statistics import median
from typing import Any

from django.db.models import Count, Q
from django.utils import timezone

from accounts.models import User
from chat.models import Participant
from chat.payloads import unix
from customer_service import periods, ratings
from customer_service.desk import label_ids_by_session, shop_labels
from customer_service.models import QuickReply, ServiceAgent, ServiceSession, Shop, ShopLabel
from customer_service.selectors import agent_available, agents_with_state, flagged_count
from imchat.links import absolute_url

State = ServiceSession.State
LIVE_STATES = (State.QUEUED, State.OPEN)
CUSTOMER_SESSIONS = 10
LABEL_REPORT_DAYS = 30


def shop_rows(shop_ids: list[int], base_url: str) -> list[dict[str, Any]]:
    return [
        {"id": shop.pk, "name": shop.name, "logo": absolute_url(shop.logo, base_url)}
        for shop in Shop.objects.filter(pk__in=shop_ids).order_by("pk")
    ]


def agent_rows(shop_ids: list[int], base_url: str) -> list[dict[str, Any]]:
    """The shops' agents with status, whether connected, and open sessions (their load)."""
    agents = ServiceAgent.objects.filter(shop_id__in=shop_ids).select_related("user").order_by("shop_id",
                                                                                               "user__username")
    return [
        {
            "shop_id": agent.shop_id,
            "uid": agent.user_id,
            "name": agent.user.display_name,
            "avatar": absolute_url(agent.user.avatar, base_url),
            "status": agent.status,
            "connected": agent.connected,
            "available": agent_available(agent),
            "open_sessions": agent.open_sessions,
            "max_sessions": agent.max_sessions,
        }
        for agent in agents_with_state(agents)
    ]


def live_sessions(shop_ids: list[int], base_url: str) -> list[dict[str, Any]]:
    """Queued and open sessions of the shops, with the shop side's unread count, queue order first."""
    sessions = list(
        ServiceSession.objects.filter(shop_id__in=shop_ids, state__in=LIVE_STATES)
        .select_related("consumer", "conversation")
        .order_by("queued_at", "created_at", "pk")
    )
    read = dict(
        Participant.objects.filter(conversation_id__in=[s.conversation_id for s in sessions], user__isnull=True)
        .values_list("conversation_id", "last_read_seq")
    )
    labels = label_ids_by_session(session.pk for session in sessions)
    positions: dict[int, int] = {}
    rows = []
    for session in sorted(sessions, key=lambda s: (s.queued_at or s.created_at, s.pk)):
        conversation = session.conversation
        position = 0
        if session.state == State.QUEUED:
            position = positions[session.shop_id] = positions.get(session.shop_id, 0) + 1
        rows.append({
            "chat_id": conversation.chat_id,
            "shop_id": session.shop_id,
            "state": session.state,
            "agent_uid": session.agent_id or 0,
            "consumer": {
                "id": session.consumer_id,
                "name": session.consumer.display_name,
                "avatar": absolute_url(session.consumer.avatar, base_url),
            },
            "queue_position": position,
            "created_at": unix(session.created_at),
            "queued_at": unix(session.queued_at),
            "assigned_at": unix(session.assigned_at),
            "last_msg": conversation.last_msg,
            "msg_type": conversation.last_msg_type,
            "last_time": unix(conversation.last_time),
            "unread_count": max(0, conversation.last_seq - read.get(conversation.pk, conversation.last_seq)),
            "session_id": session.pk,
            "labels": labels.get(session.pk, []),
        })
    return rows


def quick_replies(shop_ids: list[int]) -> list[dict[str, Any]]:
    return [
        {"id": reply.pk, "shop_id": reply.shop_id, "title": reply.title, "text": reply.text,
         "shortcut": reply.shortcut}
        for reply in QuickReply.objects.filter(shop_id__in=shop_ids)
    ]


def workspace_state(*, user: User, shop_ids: list[int], base_url: str) -> dict[str, Any]:
    """Everything the workspace lists: shops, my status, agents, live sessions, quick replies."""
    return {
        "uid": user.pk,
        "server_time": unix(timezone.now()),
        "shops": shop_rows(shop_ids, base_url),
        "status": {
            str(shop_id): status
            for shop_id, status in ServiceAgent.objects.filter(user=user, shop_id__in=shop_ids)
            .values_list("shop_id", "status")
        },
        "agents": agent_rows(shop_ids, base_url),
        "sessions": live_sessions(shop_ids, base_url),
        "quick_replies": quick_replies(shop_ids),
        "labels": shop_labels(shop_ids),
    }


def customer_summary(*, shop_id: int, consumer: User, base_url: str) -> dict[str, Any]:
    """Who the consumer is and their last sessions with this shop (newest first)."""
    sessions = list(
        ServiceSession.objects.filter(shop_id=shop_id, consumer=consumer).select_related("agent")
        .order_by("-created_at", "-pk")[:CUSTOMER_SESSIONS]
    )
    total = ServiceSession.objects.filter(shop_id=shop_id, consumer=consumer).count()
    return {
        "id": consumer.pk,
        "name": consumer.display_name,
        "username": consumer.username,
        "avatar": absolute_url(consumer.avatar, base_url),
        "joined": unix(consumer.date_joined),
        "sessions_total": total,
        "sessions": [
            {
                "state": session.state,
                "agent": session.agent.display_name if session.agent else "",
                "created_at": unix(session.created_at),
                "closed_at": unix(session.closed_at),
                "first_response_seconds": _seconds(session.created_at, session.first_response_at),
                "session_id": session.pk,
                "rating": session.rating,
                "rating_comment": session.rating_comment,
            }
            for session in sessions
        ],
    }


def _seconds(start: datetime | None, end: datetime | None) -> int | None:
    if start is None or end is None:
        return None
    return max(0, round((end - start).total_seconds()))


def _summary(values: list[int]) -> dict[str, Any]:
    if not values:
        return {"count": 0, "average": None, "median": None}
    return {"count": len(values), "average": round(sum(values) / len(values)), "median": round(median(values))}


def start_of_day(now: datetime) -> datetime:
    local = timezone.localtime(now)
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


def shop_dashboard(*, shop_ids: list[int], base_url: str, now: datetime | None = None) -> dict[str, Any]:
    """Today's numbers for the shops (local time): agents, queue, sessions, response and resolution times;
    and the consumers' ratings of the last 30 days (per shop and per agent)."""
    now = now or timezone.now()
    day_start = start_of_day(now)
    today = list(
        ServiceSession.objects.filter(shop_id__in=shop_ids, created_at__gte=day_start)
        .values_list("state", "created_at", "first_response_at", "closed_at")
    )
    closed_today = list(
        ServiceSession.objects.filter(shop_id__in=shop_ids, closed_at__gte=day_start)
        .values_list("created_at", "closed_at")
    )
    queued = list(
        ServiceSession.objects.filter(shop_id__in=shop_ids, state=State.QUEUED).values_list("queued_at", flat=True)
    )
    open_now = ServiceSession.objects.filter(shop_id__in=shop_ids, state=State.OPEN).count()
    hours = [0] * 24
    for _, created_at, _, _ in today:
        hours[timezone.localtime(created_at).hour] += 1
    first_responses = [_seconds(created, first) for _, created, first, _ in today if first is not None]
    resolutions = [_seconds(created, closed) for created, closed in closed_today]
    oldest = min((moment for moment in queued if moment is not None), default=None)
    labels = sessions_per_label(shop_ids=shop_ids, since=day_start - timedelta(days=LABEL_REPORT_DAYS - 1), until=now)
    return {
        "server_time": unix(now),
        "day": day_start.date().isoformat(),
        "agents": agent_rows(shop_ids, base_url),
        "queue": {"length": len(queued), "longest_wait_seconds": _seconds(oldest, now) if oldest else 0},
        "sessions": {
            "today": len(today),
            "open": open_now,
            "closed_today": len(closed_today),
            "answered_today": len(first_responses),
        },
        "first_response": _summary(first_responses),
        "resolution": _summary(resolutions),
        "hourly": [{"hour": hour, "sessions": count} for hour, count in enumerate(hours)],
        "ratings": ratings.rating_summary(shop_ids, now=now),
        "labels": labels,
        "labels_max": max((row["sessions"] for row in labels), default=0),
        "flagged": {"today": flagged_count(shop_ids, since=day_start), "total": flagged_count(shop_ids)},
    }



def sessions_per_label(*, shop_ids: list[int], since: datetime, until: datetime) -> list[dict[str, Any]]:
    """Each label of the shops with how many sessions begun in [since, until) carry it (one query)."""
    begun = Q(sessions__created_at__gte=since, sessions__created_at__lt=until)
    labels = (ShopLabel.objects.filter(shop_id__in=shop_ids).annotate(total=Count("sessions", filter=begun))
              .order_by("shop_id", "-total", "name"))
    return [{"shop_id": label.shop_id, "label_id": label.pk, "name": label.name, "color": label.color,
             "sessions": label.total} for label in labels]


REPORT_DAYS = (7, 30)


def dashboard_period(*, shop_ids: list[int], days: int, now: datetime | None = None) -> dict[str, Any]:
    """The dashboard's charts and agent table: the last `days` days per day and per agent, in the
    shop's zone (several shops: UTC days, as every report over several shops)."""
    zones = list(Shop.objects.filter(pk__in=shop_ids).values_list("timezone", flat=True)[:2])
    zone = periods.shop_zone(zones[0]) if len(zones) == 1 else UTC
    period = periods.period_parse(None, None, zone=zone, now=now, default_days=days)
    return {
        "days": days, "since": period.since.isoformat(), "until": period.until.isoformat(), "timezone": str(zone),
        "daily": periods.period_report(shop_ids=shop_ids, period=period, grouping="day"),
        "agents": periods.period_report(shop_ids=shop_ids, period=period, grouping="agent"),
    }

