"""WebSocket handshake: the origin rule and socket credentials -> scope["user"] (PROTOCOL.md 1)."""

from urllib.parse import parse_qs, urlparse

from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from channels.security.websocket import OriginValidator, WebsocketDenier
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.http.request import split_domain_port, validate_host

from accounts import services
from accounts.tokens import InvalidToken, token_from_header


class NativeClientOriginValidator(OriginValidator):
    """Channels' validator, except that a handshake without Origin (mini-programs, apps) is accepted."""

    def __init__(self, application):
        super().__init__(application, [*settings.ALLOWED_HOSTS, *settings.CORS_ALLOWED_ORIGINS])

    async def __call__(self, scope, receive, send):
        origins = [value for name, value in scope.get("headers", []) if name == b"origin"]
        if not origins:
            return await self.application(scope, receive, send)
        try:
            parsed = urlparse(origins[0].decode("latin1"))
        except ValueError:
            parsed = None
        if parsed is not None and self.validate_origin(parsed):
            return await self.application(scope, receive, send)
        return await WebsocketDenier()(scope, receive, send)


class AllowedHostsValidator:
    """The handshake's Host checked against ALLOWED_HOSTS, as Django checks every HTTP request's: the
    host flows into the absolute URLs other users receive (avatars, images) when IM_PUBLIC_URL is unset."""

    def __init__(self, application):
        self.application = application

    async def __call__(self, scope, receive, send):
        hosts = [value for name, value in scope.get("headers", []) if name == b"host"]
        if hosts:
            domain, _ = split_domain_port(hosts[0].decode("latin1"))
            if not domain or not validate_host(domain, settings.ALLOWED_HOSTS):
                return await WebsocketDenier()(scope, receive, send)
        return await self.application(scope, receive, send)


def socket_token(scope) -> str | None:
    """First credential present: ?token=, `authorizations`, `Authorization`; None means use the session."""
    query = parse_qs(scope.get("query_string", b"").decode("latin1"))
    if query.get("token") and query["token"][0]:
        return query["token"][0]
    headers = dict(scope.get("headers", []))
    for name in (b"authorizations", b"authorization"):
        if headers.get(name):
            return token_from_header(headers[name].decode("latin1"))
    return None


class SocketAuthMiddleware:
    """Puts the authenticated user (or AnonymousUser and the reason) into the scope."""

    def __init__(self, application):
        self.application = application

    async def __call__(self, scope, receive, send):
        scope = dict(scope)
        token = socket_token(scope)
        if token is not None:
            try:
                scope["user"] = await database_sync_to_async(services.user_from_token)(token)
            except InvalidToken as error:
                scope["user"] = AnonymousUser()
                scope["auth_error"] = str(error)
        elif not scope["user"].is_authenticated:
            scope["auth_error"] = "not logged in"
        return await self.application(scope, receive, send)


def SocketAuthStack(application):
    """Host and origin rules, session cookie, then tokens (a token wins over the session)."""
    return AllowedHostsValidator(NativeClientOriginValidator(AuthMiddlewareStack(SocketAuthMiddleware(application))))
