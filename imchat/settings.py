"""One settings module: embedded defaults for a laptop, environment variables for production.

Nothing is production-only: PostgreSQL switches on with DATABASE_URL, Redis with REDIS_URL. With
DEBUG off the server refuses to start on a development secret.
"""

import ipaddress
import json
import os
import re
import secrets
import warnings
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from imchat import redis_client

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("IM_VAR_DIR", BASE_DIR / "var"))


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else default


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


RATE_FORMAT = re.compile(r"^[1-9][0-9]*/(s|sec|second|m|min|minute|h|hour|d|day)$")


def env_rate(name: str, default: str) -> str:
    """A DRF rate, `<count>/<second|minute|hour|day>`; a typo fails at startup, not at the first request."""
    value = os.environ.get(name) or default
    if not RATE_FORMAT.fullmatch(value):
        raise ImproperlyConfigured(f"{name} must look like 10/minute (count/second|minute|hour|day), not {value!r}")
    return value


# Production is the default: DEBUG (tracebacks, the demo hint, a generated development secret)
# only with DJANGO_DEBUG=1, which `make run` sets.
DEBUG = env_bool("DJANGO_DEBUG", False)

# Secrets that were once written in this repository (or its docs) are public: never accepted.
PUBLISHED_SECRETS = frozenset({
    "dev-only-django-secret-key-do-not-use-in-production",
    "dev-only-jwt-secret-do-not-use-in-production",
    "example-mall-key-do-not-use",  # the signed-card example in docs/PROTOCOL-EXT.md
})
# Django's own deploy check asks 50 characters of its key; HS256 wants 256 bits (32 bytes).
SECRET_MIN_CHARS = {"DJANGO_SECRET_KEY": 50, "IM_JWT_SECRET": 32}


DEVELOPMENT_SECRETS = ("DJANGO_SECRET_KEY", "IM_JWT_SECRET", "IM_MALL_API_KEY")


def _development_secrets(path: Path) -> dict[str, str]:
    """Random secrets for a development server, made once per checkout (var/), so that `make run`
    and the `manage.py` commands beside it (mintoken, signcard) share them. Never used without DEBUG."""
    try:
        known = json.loads(path.read_text())
    except (OSError, ValueError):
        known = None
    if known is not None and all(name in known for name in DEVELOPMENT_SECRETS):
        return known
    made = {name: secrets.token_urlsafe(48) for name in DEVELOPMENT_SECRETS} | (known or {})
    path.parent.mkdir(parents=True, exist_ok=True)
    if known is None:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as file:
            json.dump(made, file)
        return made
    # A file from before a secret was added: completed, replaced whole, still private.
    partial = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        json.dump(made, file)
    os.replace(partial, path)
    return made


def secret_setting(name: str) -> str:
    """A secret from the environment; without one the server refuses to start unless DEBUG is on."""
    value = os.environ.get(name, "")
    if value:
        if value in PUBLISHED_SECRETS or len(value) < SECRET_MIN_CHARS[name] or len(set(value)) < 5:
            raise ImproperlyConfigured(f"{name} must be a random value of {SECRET_MIN_CHARS[name]}+ characters "
                                       "(e.g. `openssl rand -hex 32`), not a published or short one")
        return value
    if not DEBUG:
        raise ImproperlyConfigured(
            f"{name} is not set. In production set DJANGO_SECRET_KEY and IM_JWT_SECRET (random values of 50 and "
            "32+ characters, e.g. `openssl rand -hex 32`; IM_JWT_SECRET is the one the mall mints tokens with). "
            "For a development server set DJANGO_DEBUG=1 (`make run` does)."
        )
    return _development_secrets(VAR_DIR / "dev-secrets.json")[name]


SECRET_KEY = secret_setting("DJANGO_SECRET_KEY")
IM_JWT_SECRET = secret_setting("IM_JWT_SECRET")

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CORS_ALLOWED_ORIGINS = env_list("CORS_ALLOWED_ORIGINS")

# --- HTTPS, behind a TLS-terminating proxy (the production default) ----------------------------
# nginx terminates TLS and sets X-Forwarded-Proto (it must overwrite any the client sent); Django
# then redirects plain HTTP to HTTPS, marks its cookies Secure and sends HSTS. IM_HTTPS=0 serves
# plain HTTP: development, or a deployment whose original H5 client still talks http://.
IM_HTTPS = env_bool("IM_HTTPS", not DEBUG)
if IM_HTTPS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = IM_HTTPS
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = IM_HTTPS
SECURE_HSTS_SECONDS = env_int("IM_HSTS_SECONDS", 365 * 24 * 3600) if IM_HTTPS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "corsheaders",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "accounts",
    "chat",
    "customer_service",
]

MIDDLEWARE = [
    "imchat.health.HealthMiddleware",  # probes first: no Host check, no session (imchat/health.py)
    "imchat.metrics.MetricsMiddleware",  # /metrics, to its token or networks only (imchat/metrics.py)
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "imchat.urls"
ASGI_APPLICATION = "imchat.asgi.application"
AUTH_USER_MODEL = "accounts.User"
# The compat client posts to paths without a trailing slash; a redirect would break its CORS preflight.
APPEND_SLASH = False

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "customer_service.views.navigation",
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------------------------
# SQLite file by default; DATABASE_URL (postgres://...) in production. Connections are kept: opening
# one per message costs more than the message itself. Health checks stay off: Django would ping
# before every socket frame; a connection that died fails one request (-500, nothing stored, the
# client resends) and is replaced.
DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'imchat.sqlite3'}",
        conn_max_age=env_int("DB_CONN_MAX_AGE", 600),
        conn_health_checks=False,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES["default"]["CONN_MAX_AGE"] = 0 if DATABASES["default"]["NAME"] == ":memory:" else 600
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            # IMMEDIATE takes the write lock up front, so a server and a manage.py command writing
            # at once wait for each other instead of failing with "database is locked".
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
    # The reports' covering indexes INCLUDE columns for PostgreSQL's index-only scans; SQLite keeps
    # the key columns (customer_service/periods.py).
    SILENCED_SYSTEM_CHECKS = ["models.W040"]
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and env_bool("DB_PREPARED_STATEMENTS", True):
    # Django turns psycopg's prepared statements off (for poolers that cannot keep them) and binds its
    # own queries client-side, never prepared. Our hot statements (opening a socket, storing a batch
    # of messages) bind server-side and are prepared once per connection: planning the socket's costs
    # PostgreSQL three times what running it does.
    DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = 5
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Channel layer ------------------------------------------------------------------------------
# One Redis (redis://host:port/db) or the Sentinels of one (redis+sentinel://host:port,host:port/<master>/<db>):
# imchat/redis_client.py makes every connection.
REDIS_URL = os.environ.get("REDIS_URL", "")
try:
    redis_client.sentinel_target(REDIS_URL)
except ValueError as error:
    raise ImproperlyConfigured(f"REDIS_URL: {error}") from None
IM_REDIS_PREFIX = os.environ.get("IM_REDIS_PREFIX", "imchat")
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            # Ours (imchat/layers.py): local sockets get pushes directly, other processes through
            # Redis, one PUBLISH per process per event-loop tick. channels-redis' core layer drops
            # pushes once its per-process capacity fills, its pub/sub layer sends every push through
            # Redis (see PITFALLS.md). Pushes are never the only way a message arrives: chat.sync
            # fills any gap by seq.
            "BACKEND": "imchat.layers.RoutedChannelLayer",
            "CONFIG": {
                "hosts": [
                    {
                        "address": REDIS_URL,
                        # redis-py's 5 s default equals the layer's blocking read and closes idle
                        # sockets; keepalive and health checks find dead connections instead.
                        "socket_timeout": None,
                        "socket_keepalive": True,
                        "health_check_interval": 30,
                        "retry_on_timeout": True,
                    }
                ],
                "prefix": IM_REDIS_PREFIX,
            },
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "imchat.layers.RoutedChannelLayer"}}  # no hosts: this process only
    if not DEBUG:
        warnings.warn(
            "REDIS_URL is not set: the in-memory channel layer and rate-limit counters do not reach "
            "other processes",
            RuntimeWarning,
            stacklevel=1,
        )

# --- Cache (rate-limit counters) ---------------------------------------------------------------
# With REDIS_URL the counters of imchat/throttling.py and accounts/throttling.py are shared by every
# process, so a limit holds however many processes serve; without it each process counts alone.
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": [REDIS_URL],  # a list: a string is split at commas, which a Sentinel URL has
            "KEY_PREFIX": f"{IM_REDIS_PREFIX}:cache",
            # A Redis that does not answer fails a request in a second, not after the OS's timeout
            # (the throttles then let the request through: see imchat/throttling.py).
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1,
                        "pool_class": "imchat.redis_client.CachePool"},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "imchat"}}

# --- Auth ---------------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# The web pages' session login (the compat client's JSON login is POST /login).
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/start/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

# --- Static and media ---------------------------------------------------------------------------
STATIC_URL = "/static/"
# `manage.py collectstatic` fills it; without DEBUG the app serves static files from here only.
STATIC_ROOT = Path(os.environ.get("IM_STATIC_ROOT") or VAR_DIR / "static")
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_URL = "/media/"
MEDIA_ROOT = Path(os.environ.get("IM_MEDIA_ROOT", VAR_DIR / "media"))
# Uploaded images go through the default storage: files under MEDIA_ROOT (served by this app at
# MEDIA_URL) unless IM_STORAGE_BACKEND names another, e.g. S3-compatible storage in production:
# IM_STORAGE_BACKEND=storages.backends.s3.S3Storage (pip install django-storages[s3]) with the
# IM_S3_* variables below (keys may also come from the usual AWS_* environment of boto3).
IM_STORAGE_BACKEND = os.environ.get("IM_STORAGE_BACKEND") or "django.core.files.storage.FileSystemStorage"
IM_STORAGE_IS_LOCAL = IM_STORAGE_BACKEND == "django.core.files.storage.FileSystemStorage"
STORAGE_OPTIONS: dict = {}
if "s3" in IM_STORAGE_BACKEND.lower():
    STORAGE_OPTIONS = {
        name: value
        for name, value in (
            ("bucket_name", os.environ.get("IM_S3_BUCKET")),
            ("endpoint_url", os.environ.get("IM_S3_ENDPOINT_URL")),
            ("region_name", os.environ.get("IM_S3_REGION")),
            ("access_key", os.environ.get("IM_S3_ACCESS_KEY")),
            ("secret_key", os.environ.get("IM_S3_SECRET_KEY")),
            # e.g. cdn.mall.example: image URLs then point there instead of the endpoint.
            ("custom_domain", os.environ.get("IM_S3_CUSTOM_DOMAIN")),
        )
        if value
    }
    # Image URLs are stored in messages for good: public objects, no expiring signed URLs.
    STORAGE_OPTIONS.update(querystring_auth=False, file_overwrite=False)
STORAGES = {
    "default": {"BACKEND": IM_STORAGE_BACKEND, "OPTIONS": STORAGE_OPTIONS},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# MEDIA_URL served by this app (fine for one host; put nginx or a CDN in front in production).
IM_SERVE_MEDIA = env_bool("IM_SERVE_MEDIA", IM_STORAGE_IS_LOCAL)
WHITENOISE_USE_FINDERS = DEBUG

# --- i18n ---------------------------------------------------------------------------------------
LANGUAGE_CODE = "en"
# The web pages speak English and Chinese: Accept-Language picks, the language switch overrides.
LANGUAGES = [("en", "English"), ("zh-hans", "简体中文")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = os.environ.get("TIME_ZONE", "Asia/Shanghai")
USE_I18N = True
USE_TZ = True

# --- CORS (compat client sends the `authorizations` header) -------------------------------------
from corsheaders.defaults import default_headers  # noqa: E402

CORS_ALLOW_HEADERS = (*default_headers, "authorizations")

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.JWTAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "EXCEPTION_HANDLER": "imchat.api.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "imchat REST API",
    "DESCRIPTION": "Every reply is `{code, msg, result}` (code 1 = success; errors carry the protocol's "
                   "negative codes: -200 not logged in, -403 forbidden, -404 not found, 0 bad request). "
                   "Authenticate with `Authorization: Bearer <jwt>` (POST /api/v1/auth/token/) or the "
                   "session cookie; the mall endpoints with `X-Imchat-Api-Key`.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- imchat -------------------------------------------------------------------------------------
IM_PORT = env_int("IM_PORT", 9504)
IM_PUBLIC_URL = os.environ.get("IM_PUBLIC_URL", "").rstrip("/")
# The mall's own domains: links to them (and their subdomains) pass the contact guard, as do links
# to IM_PUBLIC_URL's host.
IM_GUARD_ALLOWED_DOMAINS = [domain.lower().strip(".") for domain in env_list("IM_GUARD_ALLOWED_DOMAINS")]
IM_JWT_ISSUER = os.environ.get("IM_JWT_ISSUER", "imchat")
IM_JWT_TTL = env_int("IM_JWT_TTL", 7 * 24 * 3600)
IM_JWT_AUTO_CREATE = env_bool("IM_JWT_AUTO_CREATE", False)
IM_MAX_MSG_CHARS = env_int("IM_MAX_MSG_CHARS", 5000)
IM_MAX_FRAME_BYTES = env_int("IM_MAX_FRAME_BYTES", 65536)
IM_RECALL_SECONDS = env_int("IM_RECALL_SECONDS", 120)
IM_MAX_GROUP_MEMBERS = env_int("IM_MAX_GROUP_MEMBERS", 500)
# Requests per second per socket (with a burst), per user on all processes, and sockets per user.
IM_RATE_LIMIT = env_int("IM_RATE_LIMIT", 20)
IM_RATE_BURST = env_int("IM_RATE_BURST", 40)
IM_USER_RATE_LIMIT = env_int("IM_USER_RATE_LIMIT", 30)
IM_MAX_SOCKETS_PER_USER = env_int("IM_MAX_SOCKETS_PER_USER", 10)
# Each process checks this often whether the users of its open sockets were deactivated or deleted
# (a socket is authenticated at its handshake): theirs close with 4401.
IM_ACCOUNT_CHECK_SECONDS = float(os.environ.get("IM_ACCOUNT_CHECK_SECONDS") or 3)
# HTTP rate limits (imchat/throttling.py, accounts/throttling.py), counted in CACHES: per user when
# logged in, per client address otherwise; sends (what a user's sockets may send, IM_USER_RATE_LIMIT
# a second), uploads, logins and registrations have their own. Past a rate: 429 with Retry-After.
IM_API_RATE = env_rate("IM_API_RATE", "120/minute")
IM_API_ANON_RATE = env_rate("IM_API_ANON_RATE", "60/minute")
IM_API_SEND_RATE = env_rate("IM_API_SEND_RATE", f"{IM_USER_RATE_LIMIT}/second")
IM_UPLOAD_RATE = env_rate("IM_UPLOAD_RATE", "10/minute")
IM_LOGIN_RATE = env_rate("IM_LOGIN_RATE", "20/minute")
IM_REGISTER_RATE = env_rate("IM_REGISTER_RATE", "10/hour")
# Searching the desk's conversations (customer_service/search.py): per user over HTTP and the socket;
# each search may run this long on PostgreSQL; a term with no trigram (1-2 characters) is matched
# within the shops' newest IM_SEARCH_SHORT_WINDOW messages.
IM_SEARCH_RATE = env_rate("IM_SEARCH_RATE", "30/minute")
IM_SEARCH_TIMEOUT_MS = env_int("IM_SEARCH_TIMEOUT_MS", 3000)
IM_SEARCH_SHORT_WINDOW = env_int("IM_SEARCH_SHORT_WINDOW", 100_000)
# Reports over a date range (customer_service/periods.py): per user (the mall's key counts as one), and
# how long one may run on PostgreSQL (a year of a shop with a million sessions takes seconds).
IM_REPORT_RATE = env_rate("IM_REPORT_RATE", "20/minute")
IM_REPORT_TIMEOUT_MS = env_int("IM_REPORT_TIMEOUT_MS", 30_000)
# After this many failed logins for one username, each further attempt waits twice as long as the
# last (1 s, 2 s, 4 s ...) up to IM_LOGIN_BACKOFF_MAX seconds; a success starts over.
IM_LOGIN_FREE_FAILURES = env_int("IM_LOGIN_FREE_FAILURES", 5)
IM_LOGIN_BACKOFF_MAX = env_int("IM_LOGIN_BACKOFF_MAX", 900)
# The client's address is REMOTE_ADDR; behind this many trusted proxies, the address the outermost
# one saw (X-Forwarded-For counted from the right). Any other X-Forwarded-For is ignored: spoofable.
IM_TRUSTED_PROXIES = env_int("IM_TRUSTED_PROXIES", 0)
REST_FRAMEWORK.update(
    DEFAULT_THROTTLE_CLASSES=["imchat.throttling.AnonThrottle", "imchat.throttling.UserThrottle"],
    DEFAULT_THROTTLE_RATES={"anon": IM_API_ANON_RATE, "user": IM_API_RATE, "send": IM_API_SEND_RATE,
                            "upload": IM_UPLOAD_RATE, "login": IM_LOGIN_RATE, "register": IM_REGISTER_RATE,
                            "search": IM_SEARCH_RATE, "report": IM_REPORT_RATE},
    NUM_PROXIES=IM_TRUSTED_PROXIES,
)
# chat.sendmsg requests that wait while the database thread is busy are stored together, this many
# at most per transaction (chat/dispatch.py).
IM_SEND_BATCH_MAX = env_int("IM_SEND_BATCH_MAX", 64)
IM_SYSTEM_NAME = os.environ.get("IM_SYSTEM_NAME", "System notices")
IM_AGENT_GRACE_SECONDS = env_int("IM_AGENT_GRACE_SECONDS", 60)
IM_OFFLINE_NOTICE_SECONDS = env_int("IM_OFFLINE_NOTICE_SECONDS", 300)
# A private message to a user with no live socket: the mall's `notification.offline` webhook at most
# once per this many seconds per conversation and receiver (0: none for private chat). Shops set their
# own (Shop.offline_notify_minutes); customer_service/offline.py.
IM_OFFLINE_NOTIFY_SECONDS = env_int("IM_OFFLINE_NOTIFY_SECONDS", 600)
IM_SESSION_IDLE_SECONDS = env_int("IM_SESSION_IDLE_SECONDS", 1800)
# A closed session may be rated by its consumer (once) for this long (customer_service/ratings.py).
IM_CSAT_WINDOW_SECONDS = env_int("IM_CSAT_WINDOW_SECONDS", 7 * 24 * 3600)
# The queue ETA learns from the shop's sessions closed in the last this many seconds (at most
# IM_ETA_SAMPLE of them); without any, the `queued` 305 says eta_seconds null (customer_service/eta.py).
IM_ETA_HISTORY_SECONDS = env_int("IM_ETA_HISTORY_SECONDS", 24 * 3600)
IM_ETA_SAMPLE = env_int("IM_ETA_SAMPLE", 50)
# A session queued outside a shop's business hours is not closed as idle for this long (a weekend).
IM_OUT_OF_HOURS_HOLD_SECONDS = env_int("IM_OUT_OF_HOURS_HOLD_SECONDS", 7 * 24 * 3600)
# A report's day ended this long ago no longer changes (its sessions got their first reply or closed:
# held out of hours at most IM_OUT_OF_HOURS_HOLD_SECONDS); its figures are then kept, computed once
# (customer_service/periods.py). 0: every day is kept once it has ended.
IM_REPORT_SETTLED_SECONDS = env_int("IM_REPORT_SETTLED_SECONDS",
                                    max(IM_OUT_OF_HOURS_HOLD_SECONDS, IM_SESSION_IDLE_SECONDS) + 24 * 3600)
# A process refreshes its liveness key this often; a dead process's sockets stop counting as
# online after IM_PRESENCE_TTL seconds.
IM_PRESENCE_REFRESH_SECONDS = env_int("IM_PRESENCE_REFRESH_SECONDS", 5)
IM_PRESENCE_TTL = env_int("IM_PRESENCE_TTL", 15)
# On SIGTERM a server process closes its sockets with 4012 and exits within this many seconds
# (imchat/shutdown.py); an orchestrator's grace period before SIGKILL should be longer.
IM_SHUTDOWN_SECONDS = max(1, env_int("IM_SHUTDOWN_SECONDS", 10))
# Image uploads: the largest file; the memory one image may take to check and re-encode,
# IM_MAX_IMAGE_PIXELS x 4 bytes (an RGBA picture of that size: 64 MB, a 16-megapixel photo), formats
# that cost more a pixel getting fewer pixels (imchat/images.py); and how many images one process
# decodes at once (the others wait their turn).
IM_MAX_UPLOAD_BYTES = env_int("IM_MAX_UPLOAD_BYTES", 5 * 1024 * 1024)
IM_MAX_IMAGE_PIXELS = env_int("IM_MAX_IMAGE_PIXELS", 16_000_000)
IM_UPLOAD_CONCURRENCY = max(1, env_int("IM_UPLOAD_CONCURRENCY", 2))
# The mall's server-to-server API (users and shops in bulk) and the key it signs product and order
# cards with (chat/cards.py); both refused entirely while unset. A development server makes its own.
IM_MALL_API_KEY = os.environ.get("IM_MALL_API_KEY", "")
if IM_MALL_API_KEY in PUBLISHED_SECRETS:
    raise ImproperlyConfigured("IM_MALL_API_KEY is the example of the docs: set a random value (openssl rand -hex 32)")
if not IM_MALL_API_KEY and DEBUG:
    IM_MALL_API_KEY = _development_secrets(VAR_DIR / "dev-secrets.json")["IM_MALL_API_KEY"]
# Webhooks to the mall (sessions and messages of customer service; docs/INTEGRATION.md): nothing
# is queued while IM_WEBHOOK_URL is unset. Each attempt is signed with its own time:
# X-Imchat-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>"> (docs/INTEGRATION.md: the check).
IM_WEBHOOK_URL = os.environ.get("IM_WEBHOOK_URL", "")
IM_WEBHOOK_SECRET = os.environ.get("IM_WEBHOOK_SECRET", "")
IM_WEBHOOK_TIMEOUT = float(os.environ.get("IM_WEBHOOK_TIMEOUT") or 5)
IM_WEBHOOK_MAX_ATTEMPTS = env_int("IM_WEBHOOK_MAX_ATTEMPTS", 12)
IM_WEBHOOK_RETRY_SECONDS = env_int("IM_WEBHOOK_RETRY_SECONDS", 10)
IM_WEBHOOK_POLL_SECONDS = env_int("IM_WEBHOOK_POLL_SECONDS", 5)
# The events the mall receives: comma-separated names, `default` (every event but message.created)
# or `all`; unknown names stop the start (customer_service/webhooks.py, docs/INTEGRATION.md).
IM_WEBHOOK_EVENTS = os.environ.get("IM_WEBHOOK_EVENTS", "default")
if IM_WEBHOOK_URL and len(IM_WEBHOOK_SECRET) < 16:
    raise ImproperlyConfigured("IM_WEBHOOK_SECRET (16+ characters) must be set with IM_WEBHOOK_URL")

# --- Operations: logs and metrics ------------------------------------------------------------
# Log lines are readable text by default; LOG_FORMAT=json writes one JSON object per line. Lines
# logged for an HTTP request or a socket carry its id (imchat/logs.py).
LOG_FORMAT = os.environ.get("LOG_FORMAT", "plain").strip().lower()
if LOG_FORMAT not in ("plain", "json"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be plain or json, not {LOG_FORMAT!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        # a traceback of Redis or PostgreSQL being away, from Django or daphne: counted, not written
        "outages": {"()": "imchat.outages.OutageFilter"},
        "context": {"()": "imchat.logs.ContextFilter"},  # the request's or socket's id
    },
    "formatters": {
        "plain": {"()": "imchat.logs.PlainFormatter", "format": "%(asctime)s %(levelname)s %(name)s%(ids)s: %(message)s"},
        "json": {"()": "imchat.logs.JsonFormatter"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["outages", "context"]}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"django.channels.server": {"level": "WARNING"}},
}
# While Redis or PostgreSQL is unreachable, one line when it goes, one when it is back, and a
# reminder at most this often in between (imchat/outages.py).
IM_OUTAGE_REMINDER_SECONDS = float(os.environ.get("IM_OUTAGE_REMINDER_SECONDS") or 30)
# GET /metrics (Prometheus' text format) of this process: to `Authorization: Bearer IM_METRICS_TOKEN`,
# or to a direct connection (no proxy's forwarding header) from IM_METRICS_NETWORKS, loopback by
# default. IM_METRICS=0 turns it off (404 from the app).
IM_METRICS = env_bool("IM_METRICS", True)
IM_METRICS_TOKEN = os.environ.get("IM_METRICS_TOKEN", "")
if IM_METRICS_TOKEN and (len(IM_METRICS_TOKEN) < 16 or IM_METRICS_TOKEN in PUBLISHED_SECRETS):
    raise ImproperlyConfigured("IM_METRICS_TOKEN must be a random value of 16+ characters (openssl rand -hex 24)")
try:
    IM_METRICS_NETWORKS = [ipaddress.ip_network(network, strict=False)
                           for network in env_list("IM_METRICS_NETWORKS", "127.0.0.0/8,::1/128")]
except ValueError as error:
    raise ImproperlyConfigured(f"IM_METRICS_NETWORKS: {error}") from None
