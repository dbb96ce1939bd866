"""HTTP rate limits: DRF throttles counted in Django's cache (Redis with REDIS_URL, so a limit holds
across processes).

The REST API throttles per user when logged in and per client address otherwise
(DEFAULT_THROTTLE_CLASSES); sends and uploads have per-user scopes of their own, logins and
registrations per-address ones. The compat endpoints and the web login run the same throttles through
`check`. Rates live in REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"] (the IM_*_RATE settings). The
client's address is DRF's: REMOTE_ADDR, or behind IM_TRUSTED_PROXIES proxies (NUM_PROXIES) the
address the outermost one saw.
"""

import logging

from redis.exceptions import RedisError
from rest_framework import throttling
from rest_framework.settings import api_settings

from imchat import outages
from imchat.errors import rate_limited

logger = logging.getLogger(__name__)


class _Throttle(throttling.SimpleRateThrottle):
    """Rates read when a throttle is made (DRF's class attribute freezes them at import), and a
    cache that cannot be reached lets requests through: an outage of Redis should not stop the API."""

    def get_rate(self):
        return api_settings.DEFAULT_THROTTLE_RATES[self.scope]

    def allow_request(self, request, view) -> bool:
        try:
            return super().allow_request(request, view)
        except RedisError as error:
            outages.report(logger, error, "rate limit %s not applied: the cache cannot be reached", self.scope,
                           requests=0, level=logging.WARNING)
            return True


class PerUser(_Throttle):
    """Counted per logged-in user; per address for anyone else."""

    def get_cache_key(self, request, view):
        user = request.user
        ident = user.pk if user is not None and user.is_authenticated else self.get_ident(request)
        return self.cache_format % {"scope": self.scope, "ident": ident}


class PerAddress(_Throttle):
    """Counted per client address, logged in or not; only POSTs (the page that shows a form is free)."""

    def get_cache_key(self, request, view):
        if request.method != "POST":
            return None
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class UserThrottle(PerUser):
    scope = "user"


class AnonThrottle(_Throttle):
    """Anyone not logged in, per address."""

    scope = "anon"

    def get_cache_key(self, request, view):
        if request.user is not None and request.user.is_authenticated:
            return None
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class SendThrottle(PerUser):
    scope = "send"


class UploadThrottle(PerUser):
    scope = "upload"


class LoginThrottle(PerAddress):
    scope = "login"


class RegisterThrottle(PerAddress):
    scope = "register"


def check(request, *throttle_classes: type[_Throttle]) -> None:
    """Run throttles on a plain Django view (compat endpoints, the web login) as DRF runs them on its
    own: every throttle counts the request; AppError -429 with the longest wait when one refuses."""
    waits = []
    for throttle_class in throttle_classes:
        throttle = throttle_class()
        if not throttle.allow_request(request, None):
            waits.append(throttle.wait() or 1)
    if waits:
        raise rate_limited(max(waits))

