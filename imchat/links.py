"""Absolute URLs for avatars, logos and images (the compat client prefixes anything relative)."""

from django.conf import settings

DEFAULT_AVATAR_PATH = "/static/img/avatar.png"


def base_url_from_request(request) -> str:
    return settings.IM_PUBLIC_URL or f"{request.scheme}://{request.get_host()}"


def base_url_from_scope(scope) -> str:
    if settings.IM_PUBLIC_URL:
        return settings.IM_PUBLIC_URL
    headers = dict(scope.get("headers", []))
    host = headers.get(b"host", b"").decode("latin1")
    if not host:
        server = scope.get("server") or ("localhost", settings.IM_PORT)
        host = f"{server[0]}:{server[1]}"
    scheme = "https" if scope.get("scheme") in {"wss", "https"} else "http"
    return f"{scheme}://{host}"


def absolute_url(url: str, base: str, default: str = DEFAULT_AVATAR_PATH) -> str:
    url = url or default
    if url.startswith(("http://", "https://")):
        return url
    if url.startswith("//"):
        return base.split(":", 1)[0] + ":" + url
    return base + (url if url.startswith("/") else "/" + url)


def default_base_url() -> str:
    """For work that has no request (commands, background jobs)."""
    return settings.IM_PUBLIC_URL or f"http://localhost:{settings.IM_PORT}"
