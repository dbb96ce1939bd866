"""`/healthz` and `/readyz` for load balancers and orchestrators: unauthenticated and cheap.

`/healthz`: the process answers (liveness; restart it when this fails). `/readyz`: it can serve
(readiness; send it traffic only while this is 200): the database answers, Redis answers (when the
deployment has one), and the process is not draining for a shutdown. Both are answered by the first
middleware, before the Host check (a balancer probes by address) and before sessions, so a probe
costs no cookie, no session row and no log line of ours; `/readyz` runs `SELECT 1` and a `PING`,
each bounded by a short timeout.
"""

import threading
import time

from django.db import connection
from django.http import HttpRequest, JsonResponse

HEALTH_PATH = "/healthz"
READY_PATH = "/readyz"

_draining = threading.Event()


def mark_draining() -> None:
    """From now on `/readyz` answers 503: the balancer stops sending new sockets here."""
    _draining.set()


def draining() -> bool:
    return _draining.is_set()


def _database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return "ok"


def _redis() -> str:
    from chat.presence import RedisPresence, presence

    store = presence()
    if not isinstance(store, RedisPresence):
        return "none"  # a single process with the in-memory layer: nothing to reach
    store.redis.ping()
    return "ok"


def readiness() -> tuple[bool, dict[str, str]]:
    """Each dependency's state ("ok", "none" when the deployment has none, or the error) and
    whether all of them allow serving."""
    checks: dict[str, str] = {}
    for name, check in (("database", _database), ("redis", _redis)):
        started = time.monotonic()
        try:
            checks[name] = check()
        except Exception as error:  # noqa: BLE001 - any failure means "not ready", said by name
            checks[name] = f"error: {type(error).__name__}"
        checks[f"{name}_ms"] = f"{(time.monotonic() - started) * 1000:.1f}"
    checks["sockets"] = "draining" if draining() else "accepting"
    ready = checks["database"] == "ok" and checks["redis"] in ("ok", "none") and not draining()
    return ready, checks


class HealthMiddleware:
    """First in MIDDLEWARE: answers the two probe paths before anything else runs."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest):
        if request.path == HEALTH_PATH:
            return _no_store(JsonResponse({"status": "ok"}))
        if request.path == READY_PATH:
            ready, checks = readiness()
            return _no_store(JsonResponse({"status": "ready" if ready else "unavailable", **checks},
                                          status=200 if ready else 503))
        return self.get_response(request)


def _no_store(response: JsonResponse) -> JsonResponse:
    response["Cache-Control"] = "no-store"
    return response

