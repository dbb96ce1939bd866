"""WebSocket handshake: the host and origin rules, socket credentials -> scope["user_id"] (PROTOCOL.md 1)."""

from urllib.parse import parse_qs, urlparse

from channels.auth import AuthMiddlewareStack
from channels.security.websocket import OriginValidator, WebsocketDenier
from django.conf import settings
from django.http.request import split_domain_port, validate_host

from accounts.tokens import InvalidToken, token_claims, token_from_header, token_user_id


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
    """Puts the user id the credentials name (or why there is none) into the scope.

    A token is only verified here: the consumer reads the user, active only, in the one statement
    that reads everything its socket needs (chat/sockets.py). The session cookie (the server's own
    pages) goes through Channels' session middleware, which costs a database call.
    """

    def __init__(self, application):
        self.application = application
        self.by_session = AuthMiddlewareStack(SessionUserId(application))

    async def __call__(self, scope, receive, send):
        token = socket_token(scope)
        if token is None:
            return await self.by_session(scope, receive, send)
        scope = dict(scope)
        try:
            scope["token_claims"] = token_claims(token)
            scope["user_id"] = token_user_id(scope["token_claims"])
        except InvalidToken as error:
            scope["auth_error"] = str(error)
        return await self.application(scope, receive, send)


class SessionUserId:
    """The user id of Django's session, as a token would give it."""

    def __init__(self, application):
        self.application = application

    async def __call__(self, scope, receive, send):
        scope = dict(scope)
        if scope["user"].is_authenticated:
            scope["user_id"] = scope["user"].pk
        else:
            scope["auth_error"] = "not logged in"
        return await self.application(scope, receive, send)


def SocketAuthStack(application):
    """Host and origin rules, then credentials (a token wins over the session)."""
    return AllowedHostsValidator(NativeClientOriginValidator(SocketAuthMiddleware(application)))
