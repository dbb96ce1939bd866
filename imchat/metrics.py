"""Prometheus metrics: what this process counts, and `/metrics` for the scraper that may read them.

Each daphne process serves its own metrics (prometheus-client's default registry, in memory) and is
scraped on its own address as its own `instance`; Prometheus sums across instances (docs: README,
Operations). Updates cost a lock and an add: counted per batch where a batch exists, label values
bounded (protocol codes, handler keys, message kinds; shops only in the queue gauges, the longest
`QUEUE_SHOPS` queues). Queue lengths and the webhook backlog are read from the database when scraped
(two indexed queries), the same in every process: aggregate them with `max`, not `sum`.

`/metrics` is answered by a middleware before the Host check and sessions (a scraper asks by address),
to a bearer token (`IM_METRICS_TOKEN`) or to a direct connection from `IM_METRICS_NETWORKS`
(loopback by default); anything relayed by a proxy needs the token.
"""

import hmac
import ipaddress
import time
from collections.abc import Iterable
from datetime import timezone as dt_timezone

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils.dateparse import parse_datetime
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

METRICS_PATH = "/metrics"
QUEUE_SHOPS = 50  # shops with the longest queues that get a series of their own
# Headers a proxy adds: a request bearing one was relayed, so its address says nothing about the client.
FORWARDING_HEADERS = ("HTTP_X_FORWARDED_FOR", "HTTP_FORWARDED", "HTTP_X_REAL_IP")

SOCKETS_OPEN = Gauge("imchat_sockets_open", "WebSockets this process holds open")
SOCKETS_OPENED = Counter("imchat_sockets_opened", "WebSockets accepted")
SOCKETS_REFUSED = Counter("imchat_sockets_refused", "WebSocket handshakes refused, by reason", ["reason"])
FRAMES = Counter("imchat_frames", "Frames received, by kind (class.action of a known command, ping, "
                 "invalid, too_large, rate_limited, unknown)", ["kind"])
MESSAGES = Counter("imchat_messages", "Messages stored, by kind", ["kind"])
SEND_BATCH_SIZE = Histogram("imchat_send_batch_size", "chat.sendMsg requests stored per batch",
                            buckets=(1, 2, 4, 8, 16, 32, 64, 128))
BATCH_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
SEND_BATCH_SECONDS = Histogram("imchat_send_batch_seconds", "Database-thread time of one batch of chat.sendMsg",
                               buckets=BATCH_BUCKETS)
SEND_BATCH_HOPS_SECONDS = Histogram(
    "imchat_send_batch_hops_seconds", "Time one batch of chat.sendMsg waited on its way to the database thread and "
    "back to the event loop (high: the process's event loop or its GIL is busy)", buckets=BATCH_BUCKETS)
STORE_SECONDS = Histogram("imchat_store_seconds", "Time of the statement that stores messages together (PostgreSQL: "
                          "once a batch, once more for first messages; high: the database)", buckets=BATCH_BUCKETS)
PUSHES = Counter("imchat_pushes", "Pushes (group sends) handed to the channel layer")
PUSHES_FAILED = Counter("imchat_pushes_failed", "Pushes that may not have reached other processes (clients sync)")
PUSH_SECONDS = Histogram("imchat_push_seconds", "From a batch of pushes leaving the database thread until this "
                         "process's sockets and the other processes have them",
                         buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5))
ERRORS = Counter("imchat_errors", "Error replies, by protocol code (sockets and REST)", ["code"])
WEBHOOK_ATTEMPTS = Counter("imchat_webhook_attempts", "Webhook delivery attempts, by outcome", ["outcome"])
DEPENDENCY_UP = Gauge("imchat_dependency_up", "1 while this process reaches the dependency, 0 during an outage",
                      ["dependency"])
DEPENDENCY_OUTAGES = Counter("imchat_dependency_outages", "Outages of a dependency this process saw", ["dependency"])
DEPENDENCY_FAILURES = Counter("imchat_dependency_failures", "Requests that failed because a dependency was "
                              "unreachable", ["dependency"])

# Children bound once (a labels() lookup costs more than the add itself).
_MESSAGES_BY_TYPE = {chat_type: MESSAGES.labels(kind)
                     for chat_type, kind in {1: "private", 2: "group", 3: "notice", 4: "service"}.items()}
_frames: dict[str, object] = {}
_errors: dict[int, object] = {}


def frame(kind: str) -> None:
    """One frame received; `kind` from a bounded set (the caller maps anything else to "unknown")."""
    counter = _frames.get(kind)
    if counter is None:
        counter = _frames[kind] = FRAMES.labels(kind)
    counter.inc()


def error(code: int) -> None:
    counter = _errors.get(code)
    if counter is None:
        counter = _errors[code] = ERRORS.labels(str(int(code)))
    counter.inc()


def messages_stored(counts: dict[int, int]) -> None:
    """A batch's stored messages, counted by chat_type."""
    for chat_type, count in counts.items():
        _MESSAGES_BY_TYPE[chat_type].inc(count)


class Backlog:
    """Scrape-time gauges read from the database: queued sessions per shop, pending webhooks."""

    def describe(self) -> Iterable[GaugeMetricFamily]:
        return self._families()

    def collect(self) -> Iterable[GaugeMetricFamily]:
        from imchat import outages

        families = self._families()
        try:
            self._fill(*families)
        except Exception as failure:  # noqa: BLE001 - a scrape never fails on the database
            outages.report(outages.logger, failure, "reading queue lengths for /metrics", requests=0)
            return []
        return families

    @staticmethod
    def _families() -> list[GaugeMetricFamily]:
        return [
            GaugeMetricFamily("imchat_queue_length", f"Queued customer-service sessions of the {QUEUE_SHOPS} "
                              "shops with the longest queues (the same in every process: use max)",
                              labels=["shop_id"]),
            GaugeMetricFamily("imchat_queue_oldest_seconds", "Age of the oldest queued session, per shop",
                              labels=["shop_id"]),
            GaugeMetricFamily("imchat_queue_length_all", "Queued customer-service sessions of all shops"),
            GaugeMetricFamily("imchat_webhook_backlog", "Webhook deliveries not yet delivered nor given up"),
            GaugeMetricFamily("imchat_webhook_oldest_due_seconds", "How late the most overdue pending webhook is"),
        ]

    @staticmethod
    def _fill(queue, oldest, queue_all, backlog, overdue) -> None:
        from django.db import connection
        from django.db.models import Count, Min

        from customer_service.models import ServiceSession, WebhookDelivery

        sessions = ServiceSession._meta.db_table
        with connection.cursor() as cursor:
            # one statement: the longest queues and, over all shops, the total (the partial index
            # session_queued holds queued sessions only)
            cursor.execute(
                f"SELECT shop_id, count(*), min(queued_at), sum(count(*)) OVER () FROM {sessions} "
                "WHERE state = %s GROUP BY shop_id ORDER BY count(*) DESC, shop_id LIMIT %s",
                [ServiceSession.State.QUEUED, QUEUE_SHOPS])
            rows = cursor.fetchall()
        now = time.time()
        for shop_id, count, since, _ in rows:
            queue.add_metric([str(shop_id)], count)
            if since is not None:
                oldest.add_metric([str(shop_id)], max(0.0, now - _timestamp(since)))
        queue_all.add_metric([], int(rows[0][3]) if rows else 0)
        pending = WebhookDelivery.objects.filter(state=WebhookDelivery.State.PENDING).aggregate(
            count=Count("id"), due=Min("next_attempt_at"))
        backlog.add_metric([], pending["count"])
        overdue.add_metric([], max(0.0, now - pending["due"].timestamp()) if pending["due"] else 0.0)


def _timestamp(value) -> float:
    """A datetime column's value as unix time (SQLite's raw cursor gives text, in UTC)."""
    if isinstance(value, str):
        value = parse_datetime(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt_timezone.utc)
    return value.timestamp()


REGISTRY.register(Backlog())


def allowed(request: HttpRequest) -> bool:
    """The scraper's bearer token, or a direct connection from a network of IM_METRICS_NETWORKS."""
    token = settings.IM_METRICS_TOKEN
    given = request.headers.get("Authorization", "")
    if token and given.startswith("Bearer ") and hmac.compare_digest(given[7:].strip().encode(), token.encode()):
        return True
    if any(header in request.META for header in FORWARDING_HEADERS):
        return False
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(address in network for network in settings.IM_METRICS_NETWORKS)


class MetricsMiddleware:
    """Answers `/metrics` before the Host check and sessions; everything else passes through."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest):
        if request.path != METRICS_PATH or not settings.IM_METRICS:
            return self.get_response(request)
        if not allowed(request):
            response = HttpResponse("forbidden: /metrics needs IM_METRICS_TOKEN or an address of "
                                    "IM_METRICS_NETWORKS\n", status=403, content_type="text/plain")
        else:
            response = HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)
        response["Cache-Control"] = "no-store"
        return response
