"""Reading REST input at the edge: a JSON object body, serializers that name the first bad field."""

from collections.abc import Mapping
from typing import Any

from django.core.exceptions import BadRequest
from rest_framework import serializers

from imchat.errors import bad_request

INT64_DIGITS = 18  # at most this many digits always fit a signed 64-bit integer


def ascii_int(text: str) -> int | None:
    """`text` as a non-negative integer when it is ASCII digits only, else None.

    `str.isdigit()` also holds for "²" or "٣", which `int()` then refuses or reads as 3.
    """
    text = text.strip()
    if text.isascii() and text.isdigit() and len(text) <= INT64_DIGITS:
        return int(text)
    return None


def query_int(request, name: str) -> int | None:
    """An optional number from a page's query string; anything but ASCII digits is a 400."""
    raw = request.GET.get(name, "")
    if raw == "":
        return None
    value = ascii_int(raw)
    if value is None:
        raise BadRequest(f"{name}: must be a number")
    return value


class QueryIntegerField(serializers.IntegerField):
    """An integer from a query string: ASCII digits only, as everywhere else a number is read."""

    def to_internal_value(self, data):
        if isinstance(data, str) and not data.strip().lstrip("-").isascii():
            self.fail("invalid")
        return super().to_internal_value(data)


def body_of(request) -> Mapping[str, Any]:
    """The request body as an object (a JSON array or scalar is refused, not crashed on)."""
    data = request.data
    if not isinstance(data, Mapping):
        raise bad_request("body: must be a JSON object")
    return data


def validated(serializer_class: type[serializers.Serializer], data: Any, **context: Any) -> dict[str, Any]:
    """The serializer's validated data, or AppError(0, "<field>: <why>") for the first bad field."""
    if not isinstance(data, Mapping):
        raise bad_request("body: must be a JSON object")
    serializer = serializer_class(data=data, context=context)
    if not serializer.is_valid():
        raise bad_request(first_error(serializer.errors))
    return dict(serializer.validated_data)


def first_error(errors: Any, path: str = "") -> str:
    """`users[2].nickname: Ensure this field has no more than 64 characters.`"""
    if isinstance(errors, Mapping):
        for key, detail in errors.items():
            if key in ("non_field_errors", "__all__"):
                step = path
            elif isinstance(key, int) or str(key).isdigit():
                step = f"{path}[{key}]"
            else:
                step = f"{path}.{key}" if path else str(key)
            return first_error(detail, step)
    if isinstance(errors, list):
        for index, item in enumerate(errors):
            if isinstance(item, (Mapping, list)):
                if item:
                    return first_error(item, f"{path}[{index}]")
                continue
            return f"{path}: {item}" if path else str(item)
    return f"{path}: {errors}" if path else str(errors)
