"""The REST API's one error rendering: AppError and DRF's own errors as `{code, msg, result}`."""

from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from chat.protocol import Caller
from imchat import metrics
from imchat.errors import AppError, Code, rate_limited
from imchat.links import base_url_from_request

HTTP_STATUS = {
    Code.BAD_REQUEST: status.HTTP_400_BAD_REQUEST,
    Code.NOT_LOGGED_IN: status.HTTP_401_UNAUTHORIZED,
    Code.FORBIDDEN: status.HTTP_403_FORBIDDEN,
    Code.NOT_FOUND: status.HTTP_404_NOT_FOUND,
    Code.RATE_LIMITED: status.HTTP_429_TOO_MANY_REQUESTS,
    Code.SERVER_FAULT: status.HTTP_500_INTERNAL_SERVER_ERROR,
}


def exception_handler(error, context):
    if isinstance(error, exceptions.Throttled):
        error = rate_limited(error.wait or 1)
    if isinstance(error, AppError):
        metrics.error(error.code)
        return Response({"code": int(error.code), "msg": error.msg, "result": error.result},
                        status=HTTP_STATUS.get(error.code, status.HTTP_400_BAD_REQUEST),
                        headers=retry_after_header(error))
    response = drf_exception_handler(error, context)
    if response is not None:
        code = Code.NOT_LOGGED_IN if isinstance(error, exceptions.NotAuthenticated | exceptions.AuthenticationFailed) \
            else Code.FORBIDDEN if isinstance(error, exceptions.PermissionDenied) \
            else Code.NOT_FOUND if isinstance(error, exceptions.NotFound) else Code.BAD_REQUEST
        detail = response.data.get("detail") if isinstance(response.data, dict) else None
        response.data = {"code": int(code), "msg": str(detail or error), "result": None}
        metrics.error(code)
    return response


def retry_after_header(error: AppError) -> dict[str, str]:
    return {"Retry-After": str(error.retry_after)} if error.retry_after else {}


def ok(result, http_status: int = status.HTTP_200_OK) -> Response:
    return Response({"code": int(Code.OK), "msg": None, "result": result}, status=http_status)


def caller_of(request) -> Caller:
    return Caller(user=request.user, base_url=base_url_from_request(request))
