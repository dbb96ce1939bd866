"""Reading REST input at the edge: a JSON object body, serializers that name the first bad field."""

from collections.abc import Mapping
from typing import Any

from rest_framework import serializers

from imchat.errors import bad_request


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
