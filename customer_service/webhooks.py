"""Webhooks to the mall: new customer-service sessions, consumers' messages while no agent is online,
and messages the contact guard flagged.

An event is a row written in the same transaction as what it reports (so a restart loses none), and
delivered later by `webhooks_deliver`: POST IM_WEBHOOK_URL with the JSON body, signed
`X-Imchat-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>" with IM_WEBHOOK_SECRET>`
(Stripe's scheme: each attempt signs its own time, so the mall can refuse a captured delivery
replayed later; README shows the check), retried with exponential backoff until a 2xx (or
IM_WEBHOOK_MAX_ATTEMPTS). Delivery runs in each server process (a periodic job, in a thread of its
own so HTTP never holds the database thread) and in `manage.py deliverwebhooks`; rows are leased, so
processes never send one event at the same time.
"""

import hashlib
import hmac
import logging
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from django.conf import settings
from django.db import close_old_connections, connections, transaction
from django.utils import timezone

from chat.protocol import dumps
from customer_service.models import ServiceSession, WebhookDelivery
from imchat import metrics, outages

logger = logging.getLogger(__name__)

Event = WebhookDelivery.Event
State = WebhookDelivery.State

SIGNATURE_HEADER = "X-Imchat-Signature"
BATCH = 10
MAX_BACKOFF_SECONDS = 3600
USER_AGENT = "imchat-webhooks/1"


def enabled() -> bool:
    return bool(settings.IM_WEBHOOK_URL)


def sign(body: bytes, *, timestamp: int, secret: str | None = None) -> str:
    """The X-Imchat-Signature value of a body sent at `timestamp`: `t=<unix>,v1=<hex>`."""
    key = (settings.IM_WEBHOOK_SECRET if secret is None else secret).encode()
    return f"t={timestamp},v1=" + hmac.new(key, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def webhook_enqueue(*, event: str, data: dict[str, Any], now: datetime | None = None) -> WebhookDelivery | None:
    """Store one event for delivery (inside the caller's transaction); nothing while IM_WEBHOOK_URL is unset."""
    if not enabled():
        return None
    now = now or timezone.now()
    delivery_id = secrets.token_hex(16)
    body = dumps({"id": delivery_id, "event": event, "created": int(now.timestamp()), "data": data})
    return WebhookDelivery.objects.create(delivery_id=delivery_id, event=event, body=body, next_attempt_at=now)


def webhooks_enqueue_many(*, event: str, datas: list[dict[str, Any]], now: datetime | None = None) -> None:
    """Store several events of one kind at once (one INSERT); nothing while IM_WEBHOOK_URL is unset."""
    if not enabled() or not datas:
        return
    now = now or timezone.now()
    rows = []
    for data in datas:
        delivery_id = secrets.token_hex(16)
        body = dumps({"id": delivery_id, "event": event, "created": int(now.timestamp()), "data": data})
        rows.append(WebhookDelivery(delivery_id=delivery_id, event=event, body=body, next_attempt_at=now))
    WebhookDelivery.objects.bulk_create(rows)


def consumer_message_events(*, session: ServiceSession, new_session: bool, message: dict[str, Any]) -> None:
    """What a consumer's message to a shop tells the mall: a new session, and a message nobody can answer."""
    if not enabled():
        return
    common = {"session_id": session.pk, "shop_id": session.shop_id, "chat_id": message["chat_id"],
              "consumer_uid": session.consumer_id}
    if new_session:
        webhook_enqueue(event=Event.SESSION_CREATED, data={
            **common, "state": session.state, "agent_uid": session.agent_id or 0,
            "consumer_nickname": message["nickname"], "createtime": message["createtime"],
        })
    if session.state == ServiceSession.State.QUEUED:
        webhook_enqueue(event=Event.MESSAGE_UNATTENDED, data={
            **common, "msg_id": message["msg_id"], "seq": message["seq"], "msg_type": message["msg_type"],
            "msg": message["msg"], "nickname": message["nickname"], "createtime": message["createtime"],
        })


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
                status, error = _attempt(client, row, now or timezone.now())
                _record(row, status, error, now or timezone.now(), report)
            tried += len(rows)
    finally:
        if own_client:
            client.close()
    return report


def _record(row: WebhookDelivery, status: int | None, error: str, now: datetime, report: Report) -> None:
    attempts = row.attempts + 1
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
