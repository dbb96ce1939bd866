"""The original's HTTP shape: POST, JSON body, `authorizations: bear <jwt>`, always HTTP 200 with
`{code, msg, result}` where any truthy code means success to the compat client."""

import functools
import logging
from collections.abc import Callable
from typing import Any

import orjson
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework.authentication import CSRFCheck

from accounts import services as account_services
from accounts.tokens import InvalidToken, token_from_header
from chat.protocol import Caller
from imchat import throttling
from imchat.errors import AppError
from imchat.links import base_url_from_request

logger = logging.getLogger(__name__)

NOT_LOGGED_IN = {"code": 401, "msg": "请登录", "result": None}


def compat_reply(code: int, result: Any = None, msg: str | None = None) -> JsonResponse:
    return JsonResponse({"code": code, "msg": msg, "result": result}, json_dumps_params={"ensure_ascii": False})


def compat_error(error: AppError) -> JsonResponse:
    """Code 0 whatever the error (the compat client reads any truthy code, -429 too, as success);
    a throttled request also gets Retry-After."""
    return with_retry_after(compat_reply(0, None, error.msg), error)


def with_retry_after(response: HttpResponse, error: AppError) -> HttpResponse:
    if error.retry_after:
        response["Retry-After"] = str(error.retry_after)
    return response


def request_body(request: HttpRequest) -> dict:
    """JSON object, form fields, or {} for an empty body (the client posts Content-Length 0)."""
    if request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        return request.POST.dict()
    if not request.body.strip():
        return {}
    try:
        body = orjson.loads(request.body)
    except orjson.JSONDecodeError:
        raise AppError(0, "body: not valid JSON") from None
    if not isinstance(body, dict):
        raise AppError(0, "body: must be a JSON object")
    return body


def request_user(request: HttpRequest):
    """The user of `authorizations`/`Authorization` (bear/bearer/bare token), else the session's.

    The compat endpoints are csrf-exempt for the original client, which sends a token and no
    cookie; a request that leans on the session cookie (our own pages) must pass Django's CSRF
    check, as DRF's SessionAuthentication asks, or it is not logged in.
    """
    header = request.headers.get("Authorizations") or request.headers.get("Authorization")
    if header:
        try:
            return account_services.user_from_token(token_from_header(header))
        except InvalidToken:
            return None
    if not request.user.is_authenticated:
        return None
    if not _passes_csrf_check(request):
        logger.warning("%s: session cookie without a valid CSRF token (user %s)", request.path, request.user.pk)
        return None
    return request.user


def _passes_csrf_check(request: HttpRequest) -> bool:
    check = CSRFCheck(lambda request: None)
    check.process_request(request)
    return check.process_view(request, None, (), {}) is None


def compat_endpoint(*, login_required: bool = True, throttles: tuple = (throttling.UserThrottle,)) -> Callable:
    """Wrap `view(request, caller_or_None, body) -> result | (msg, result)` in the compat shape,
    behind `throttles` (per user by default, as the REST API)."""

    def decorator(view: Callable) -> Callable:
        @csrf_exempt
        @functools.wraps(view)
        def endpoint(request: HttpRequest) -> HttpResponse:
            if request.method == "OPTIONS":
                return HttpResponse()
            if request.method != "POST":
                return compat_reply(0, None, "POST only")
            user = request_user(request)
            if login_required and user is None:
                return JsonResponse(NOT_LOGGED_IN)
            if user is not None:
                request.user = user  # the token's user, as DRF does: the throttles count per user
            caller = Caller(user=user, base_url=base_url_from_request(request)) if user else None
            try:
                throttling.check(request, *throttles)
                outcome = view(request, caller, request_body(request))
            except AppError as error:
                return compat_error(error)
            except Exception:
                logger.exception("%s failed", request.path)
                return compat_reply(0, None, "server error")
            msg, result = outcome if isinstance(outcome, tuple) else (None, outcome)
            return compat_reply(1, result, msg)

        return endpoint

    return decorator
