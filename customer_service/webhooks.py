"""Webhooks to the mall: what happens to customer-service sessions (created, queued, assigned,
transferred, closed, rated) and messages (created, unattended, flagged); docs/INTEGRATION.md is the
integrator's page.

The mall chooses its events with IM_WEBHOOK_EVENTS (`wanted`: a set lookup, no query); an event it
does not want is never stored.

An event is a row written in the same transaction as what it reports (so a restart loses none), and
delivered later by `webhooks_deliver`: POST IM_WEBHOOK_URL with the JSON body, signed
`X-Imchat-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>" with IM_WEBHOOK_SECRET>`
(Stripe's scheme: each attempt signs its own time, so the mall can refuse a captured delivery
replayed later; docs/INTEGRATION.md shows the check), retried with exponential backoff until a 2xx
(or IM_WEBHOOK_MAX_ATTEMPTS; each attempt is kept as a WebhookAttempt). Delivery runs in each server
process (a periodic job, in a thread of its own so HTTP never holds the database thread) and in
`manage.py deliverwebhooks`; rows are leased, so processes never send one event at the same time.
"""

import functools
import hashlib
import hmac
import logging
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.db import close_old_connections, connections, transaction
from django.dispatch import receiver
from django.utils import timezone

from chat.models import SentAs
from chat.protocol import dumps
from customer_service.models import ServiceSession, WebhookAttempt, WebhookDelivery
from imchat import metrics, outages

if TYPE_CHECKING:  # chat.messages imports this module's neighbours (customer_service.offline)
    from chat.messages import Draft, Stored

logger = logging.getLogger(__name__)

Event = WebhookDelivery.Event
State = WebhookDelivery.State

SIGNATURE_HEADER = "X-Imchat-Signature"
BATCH = 10
MAX_BACKOFF_SECONDS = 3600
USER_AGENT = "imchat-webhooks/1"


# A plain str (an enum member hashes ~5x slower): asked once per message batch.
MESSAGE_CREATED: str = Event.MESSAGE_CREATED.value
# Every event but message.created (one per message, both sides: the heavy one, asked for by name).
DEFAULT_EVENTS = frozenset(Event.values) - {Event.MESSAGE_CREATED}


def enabled() -> bool:
    return bool(settings.IM_WEBHOOK_URL)


@functools.lru_cache(maxsize=8)
def subscribed_events(value: str) -> frozenset[str]:
    """IM_WEBHOOK_EVENTS read: comma-separated event names, `default` (every event but
    message.created, also what an empty value means) and `all`; an unknown name is refused."""
    names = {name.strip() for name in value.split(",") if name.strip()} or {"default"}
    events: set[str] = set()
    for name in names:
        if name == "all":
            events |= set(Event.values)
        elif name == "default":
            events |= DEFAULT_EVENTS
        elif name in Event.values:
            events.add(name)
        else:
            raise ImproperlyConfigured(
                f"IM_WEBHOOK_EVENTS: unknown event {name!r} (events: {', '.join(Event.values)}; or default, all)")
    return frozenset(events)


_wanted: frozenset[str] | None = None  # the events sent now; read from the settings once


def wanted(event: str) -> bool:
    """Whether the mall receives `event`: IM_WEBHOOK_URL set and the event in IM_WEBHOOK_EVENTS.
    Every enqueue site asks first, so an event nobody wants costs one set lookup."""
    global _wanted
    if _wanted is None:
        _wanted = subscribed_events(settings.IM_WEBHOOK_EVENTS) if settings.IM_WEBHOOK_URL else frozenset()
    return event in _wanted


@receiver(setting_changed)
def _subscription_changed(*, setting: str, **kwargs: Any) -> None:
    """Tests (and override_settings) change the settings: read them again."""
    global _wanted
    if setting in ("IM_WEBHOOK_URL", "IM_WEBHOOK_EVENTS"):
        _wanted = None


_batch: ContextVar[list[WebhookDelivery] | None] = ContextVar("webhook_batch", default=None)


@contextmanager
def batched() -> Iterator[None]:
    """Events enqueued inside are stored with one INSERT at the end (a queue drain, an agent's
    sessions handed back, idle sessions closed); nested blocks join the outer one."""
    if _batch.get() is not None:
        yield
        return
    rows: list[WebhookDelivery] = []
    token = _batch.set(rows)
    try:
        yield
    finally:
        _batch.reset(token)
    if rows:
        # A session's session.created goes first, though written after routing (so it says where the
        # session went); pk order is the delivery order of events due at the same time.
        rows.sort(key=lambda row: row.event != Event.SESSION_CREATED)
        WebhookDelivery.objects.bulk_create(rows)


def sign(body: bytes, *, timestamp: int, secret: str | None = None) -> str:
    """The X-Imchat-Signature value of a body sent at `timestamp`: `t=<unix>,v1=<hex>`."""
    key = (settings.IM_WEBHOOK_SECRET if secret is None else secret).encode()
    return f"t={timestamp},v1=" + hmac.new(key, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def _row(event: str, data: dict[str, Any], now: datetime) -> WebhookDelivery:
    delivery_id = secrets.token_hex(16)
    body = dumps({"id": delivery_id, "event": event, "created": int(now.timestamp()), "data": data})
    return WebhookDelivery(delivery_id=delivery_id, event=event, body=body, next_attempt_at=now)


def webhook_enqueue(*, event: str, data: dict[str, Any], now: datetime | None = None) -> WebhookDelivery | None:
    """Store one event for delivery (inside the caller's transaction); nothing unless `wanted`."""
    if not wanted(event):
        return None
    row = _row(event, data, now or timezone.now())
    batch = _batch.get()
    if batch is not None:
        batch.append(row)
        return row
    row.save(force_insert=True)
    return row


def webhooks_enqueue_many(*, event: str, datas: list[dict[str, Any]], now: datetime | None = None) -> None:
    """Store several events of one kind at once (one INSERT); nothing unless `wanted`."""
    if not datas or not wanted(event):
        return
    now = now or timezone.now()
    rows = [_row(event, data, now) for data in datas]
    batch = _batch.get()
    if batch is not None:
        batch.extend(rows)
    else:
        WebhookDelivery.objects.bulk_create(rows)


# --- What each event says -------------------------------------------------------------------------


def session_data(session: ServiceSession, **extra: Any) -> dict[str, Any]:
    """The fields every session.* event starts with (the session's conversation is loaded)."""
    return {"session_id": session.pk, "shop_id": session.shop_id, "chat_id": session.conversation.chat_id,
            "consumer_uid": session.consumer_id, "agent_uid": session.agent_id or 0, "state": session.state,
            **extra}


def session_changed(event: str, session: ServiceSession, **extra: Any) -> None:
    """session.queued / assigned / transferred / closed, in the transaction that made the change."""
    if wanted(event):
        webhook_enqueue(event=event, data=session_data(session, **extra))


def session_created(session: ServiceSession, *, consumer_nickname: str, now: datetime) -> None:
    """Written once the session is routed (its state and agent then), inside `batched` with the
    routing's own events, which it goes before."""
    if wanted(Event.SESSION_CREATED):
        webhook_enqueue(event=Event.SESSION_CREATED, now=now, data=session_data(
            session, consumer_nickname=consumer_nickname, createtime=int(now.timestamp())))


def message_unattended(session: ServiceSession, message: dict[str, Any]) -> None:
    """A consumer's message while the session waits in the queue (no agent to answer it)."""
    if session.state == ServiceSession.State.QUEUED and wanted(Event.MESSAGE_UNATTENDED):
        webhook_enqueue(event=Event.MESSAGE_UNATTENDED, data={
            "session_id": session.pk, "shop_id": session.shop_id, "chat_id": message["chat_id"],
            "consumer_uid": session.consumer_id, "msg_id": message["msg_id"], "seq": message["seq"],
            "msg_type": message["msg_type"], "msg": message["msg"], "nickname": message["nickname"],
            "createtime": message["createtime"],
        })


def message_data(draft: "Draft", stored: "Stored", session_id: int) -> dict[str, Any]:
    """message.created's data: the stored message, which side wrote it, and its session."""
    agent_side = draft.sent_as == SentAs.SERVICE
    author = draft.author
    return {
        "msg_id": stored.msg_id, "seq": stored.seq, "chat_id": draft.chat_id, "session_id": session_id,
        "shop_id": draft.shop_id or 0, "side": "agent" if agent_side else "consumer",
        "from_uid": draft.sender_id or 0, "to_uid": draft.to_uid,
        "consumer_uid": draft.to_uid if agent_side else (draft.sender_id or 0),
        "nickname": author.service_nickname or author.nickname, "msg_type": draft.msg_type,
        "msg": draft.msg,
        "createtime": stored.createtime, "card": draft.card.shown if draft.card is not None else None,
    }


def messages_created(messages: "list[tuple[Draft, Stored, int]]") -> None:
    """message.created for (draft, stored, session id) of a batch: one INSERT; nothing unless wanted."""
    if messages and wanted(MESSAGE_CREATED):
        webhooks_enqueue_many(event=MESSAGE_CREATED,
                              datas=[message_data(draft, stored, session_id) for draft, stored, session_id in messages])


def backoff_seconds(attempts: int) -> int:
    """Wait after the n-th failed attempt: IM_WEBHOOK_RETRY_SECONDS, doubling, at most an hour."""
    return min(settings.IM_WEBHOOK_RETRY_SECONDS * 2 ** max(attempts - 1, 0), MAX_BACKOFF_SECONDS)


def _claim(now: datetime, limit: int) -> list[WebhookDelivery]:
    """Due rows, leased to this worker long enough to try them all."""
    lease = timedelta(seconds=limit * settings.IM_WEBHOOK_TIMEOUT * 2 + 30)
    with transaction.atomic():
        rows = list(
            WebhookDelivery.objects.select_for_update(skip_locked=True)
            .filter(state=State.PENDING, next_attempt_at__lte=now)
            .order_by("next_attempt_at", "pk")[:limit]
        )
        if rows:
            WebhookDelivery.objects.filter(pk__in=[row.pk for row in rows]).update(next_attempt_at=now + lease)
    return rows


def _attempt(client: httpx.Client, row: WebhookDelivery, now: datetime) -> tuple[int | None, str]:
    """POST one event signed at `now`: (HTTP status or None, error text; empty on success)."""
    body = row.body.encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Imchat-Event": row.event,
        "X-Imchat-Delivery": row.delivery_id,
        "X-Imchat-Attempt": str(row.attempts + 1),
        SIGNATURE_HEADER: sign(body, timestamp=int(now.timestamp())),
    }
    try:
        response = client.post(settings.IM_WEBHOOK_URL, content=body, headers=headers)
    except httpx.HTTPError as error:
        return None, f"{type(error).__name__}: {error}"[:500]
    if 200 <= response.status_code < 300:
        return response.status_code, ""
    return response.status_code, f"HTTP {response.status_code}: {response.text[:200]}"


@dataclass
class Report:
    delivered: int = 0
    retrying: int = 0
    gave_up: int = 0

    def __str__(self) -> str:
        return f"delivered {self.delivered}, will retry {self.retrying}, gave up {self.gave_up}"


def webhooks_deliver(*, limit: int = 100, now: datetime | None = None, client: httpx.Client | None = None) -> Report:
    """Try every due event once (at most `limit`); record each outcome and when to retry."""
    report = Report()
    if not enabled():
        return report
    own_client = client is None
    if own_client:
        timeout = settings.IM_WEBHOOK_TIMEOUT
        client = httpx.Client(timeout=httpx.Timeout(timeout, connect=min(3.0, timeout)), follow_redirects=False)
    try:
        tried = 0
        while tried < limit:
            started = now or timezone.now()
            rows = _claim(started, min(BATCH, limit - tried))
            if not rows:
                break
            for row in rows:
                attempted_at = now or timezone.now()
                started_clock = time.monotonic()
                status, error = _attempt(client, row, attempted_at)
                duration_ms = int((time.monotonic() - started_clock) * 1000)
                _record(row, status, error, now or timezone.now(), report, attempted_at, duration_ms)
            tried += len(rows)
    finally:
        if own_client:
            client.close()
    return report


@transaction.atomic
def _record(row: WebhookDelivery, status: int | None, error: str, now: datetime, report: Report,
            attempted_at: datetime, duration_ms: int) -> None:
    attempts = row.attempts + 1
    WebhookAttempt.objects.create(delivery_id=row.pk, number=attempts, at=attempted_at, status=status,
                                  error=error, duration_ms=duration_ms)
    if not error:
        WebhookDelivery.objects.filter(pk=row.pk).update(
            state=State.DELIVERED, attempts=attempts, last_status=status, last_error="", delivered_at=now)
        report.delivered += 1
        metrics.WEBHOOK_ATTEMPTS.labels("delivered").inc()
        return
    gave_up = attempts >= settings.IM_WEBHOOK_MAX_ATTEMPTS
    WebhookDelivery.objects.filter(pk=row.pk).update(
        state=State.FAILED if gave_up else State.PENDING, attempts=attempts, last_status=status, last_error=error,
        next_attempt_at=now + timedelta(seconds=backoff_seconds(attempts)),
    )
    metrics.WEBHOOK_ATTEMPTS.labels("gave_up" if gave_up else "failed").inc()
    if gave_up:
        report.gave_up += 1
        logger.error("webhook %s %s given up after %d attempts: %s", row.event, row.delivery_id, attempts, error)
    else:
        report.retrying += 1
        logger.warning("webhook %s %s attempt %d failed: %s", row.event, row.delivery_id, attempts, error)


def deliveries_retry_now(*, delivery_ids: list[int], now: datetime | None = None) -> int:
    """The admin's "retry now": pending or given-up deliveries are due at once. Their attempt count
    is kept (the history stays true, X-Imchat-Attempt goes on counting), so one given up gets one
    more attempt and is given up again if that fails; a pending one keeps its schedule after it.
    Delivered ones are left alone. Returns how many were made due."""
    return WebhookDelivery.objects.filter(pk__in=delivery_ids, state__in=[State.PENDING, State.FAILED]).update(
        state=State.PENDING, next_attempt_at=now or timezone.now())


def deliveries_prune(*, days: int, now: datetime | None = None) -> int:
    """Delete delivered events older than `days` (their attempts with them); given-up and pending
    ones stay. Returns how many events went."""
    cutoff = (now or timezone.now()) - timedelta(days=days)
    old = WebhookDelivery.objects.filter(state=State.DELIVERED, created_at__lt=cutoff)
    deleted = 0
    while batch := list(old.values_list("pk", flat=True)[:5000]):
        WebhookAttempt.objects.filter(delivery_id__in=batch).delete()
        WebhookDelivery.objects.filter(pk__in=batch).delete()
        deleted += len(batch)
    return deleted


# --- In the server process ------------------------------------------------------------------------

_worker: threading.Thread | None = None
_worker_lock = threading.Lock()


def deliver_in_background() -> None:
    """Periodic job: when events are due, deliver them in a thread of their own (HTTP waits there)."""
    global _worker
    if not enabled():
        return
    if not WebhookDelivery.objects.filter(state=State.PENDING, next_attempt_at__lte=timezone.now()).exists():
        return
    with _worker_lock:
        if _worker is not None and _worker.is_alive():
            return
        _worker = threading.Thread(target=_deliver_then_close, name="imchat-webhooks", daemon=True)
        _worker.start()


def _deliver_then_close() -> None:
    close_old_connections()
    try:
        report = webhooks_deliver()
        if report.delivered or report.retrying or report.gave_up:
            logger.info("webhooks: %s", report)
    except Exception as error:
        outages.report(logger, error, "webhook delivery failed", requests=0)
    finally:
        connections.close_all()


def deliver_forever(*, interval: float, limit: int = 1000) -> None:
    """`manage.py deliverwebhooks --loop`: a delivery pass every `interval` seconds."""
    while True:
        report = webhooks_deliver(limit=limit)
        if report.delivered or report.retrying or report.gave_up:
            logger.info("webhooks: %s", report)
        close_old_connections()
        time.sleep(interval)
