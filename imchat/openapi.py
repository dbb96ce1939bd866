"""The REST API's OpenAPI description: every reply in the `{code, msg, result}` envelope.

`api(...)` documents one operation: its input, the shape of `result`, and the error replies (the
exception handler in imchat/api.py renders them all the same way).
"""

from collections.abc import Sequence
from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers

INT64_MAX = 2**63 - 1


class ErrorSerializer(serializers.Serializer):
    code = serializers.IntegerField(
        help_text="0 bad request (msg names the field), -200 not logged in, -403 forbidden, -404 not found, "
                  "-429 rate limited")
    msg = serializers.CharField()
    result = serializers.JSONField(allow_null=True, help_text="-429: `{retry_after: seconds}` (also the Retry-After "
                                                              "header)")


def envelope(name: str, result: Any = None, *, many: bool = False) -> serializers.Serializer:
    """`{code: 1, msg: null, result}`; `result` a serializer class (or None for a null result)."""
    if result is None:
        result_field = serializers.JSONField(allow_null=True, help_text="null")
    elif isinstance(result, serializers.Field):
        result_field = result
    else:
        result_field = result(many=many)
    return inline_serializer(name=name, fields={
        "code": serializers.IntegerField(help_text="1: success"),
        "msg": serializers.CharField(allow_null=True),
        "result": result_field,
    })


def api(*, name: str, result: Any = None, many: bool = False, status: int = 200, request: Any = None,
        parameters: Sequence | None = None, summary: str | None = None, tags: Sequence[str] | None = None,
        errors: Sequence[int] = (400, 401, 403, 404), auth: Sequence | None = None, throttled: bool = True):
    """extend_schema for one operation whose reply is the envelope around `result` (429 past a rate
    limit, with Retry-After, unless the operation is not `throttled`)."""
    responses = {status: envelope(name + "Reply", result, many=many)}
    responses.update({code: ErrorSerializer for code in (*errors, *((429,) if throttled else ()))})
    return extend_schema(operation_id=name[0].lower() + name[1:], request=request, responses=responses,
                         parameters=list(parameters or []), summary=summary, tags=list(tags or []), auth=auth)


class JWTScheme(OpenApiAuthenticationExtension):
    """accounts.authentication.JWTAuthentication: `Authorization: Bearer <jwt>` (or `authorizations: bear`)."""

    target_class = "accounts.authentication.JWTAuthentication"
    name = "jwtAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}


class MallKeyScheme(OpenApiAuthenticationExtension):
    """accounts.mall.MallKeyAuthentication: the mall's server-to-server key."""

    target_class = "accounts.mall.MallKeyAuthentication"
    name = "mallApiKey"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "header", "name": "X-Imchat-Api-Key"}


class MallKeyIfGivenScheme(MallKeyScheme):
    """accounts.mall.MallKeyIfGiven: the same key, on endpoints users may call too."""

    target_class = "accounts.mall.MallKeyIfGiven"
    name = "mallApiKeyOrUser"
