"""JWTs exactly as the original service minted them (HS256, iss/iat/exp, data.id)."""

import time
from typing import Any

import jwt
from django.conf import settings

ALGORITHM = "HS256"


class InvalidToken(Exception):
    """The token cannot be trusted; the message says why (sent to the client)."""


def token_mint(*, user_id: int, ttl: int | None = None, extra: dict[str, Any] | None = None) -> str:
    now = int(time.time())
    claims = {
        "iss": settings.IM_JWT_ISSUER,
        "iat": now,
        "exp": now + (ttl if ttl is not None else settings.IM_JWT_TTL),
        "data": {"id": user_id},
        **(extra or {}),
    }
    return jwt.encode(claims, settings.IM_JWT_SECRET, algorithm=ALGORITHM)


def token_claims(token: str) -> dict[str, Any]:
    """Verified claims; only HS256 with our secret and issuer, and an expiry, is accepted."""
    try:
        return jwt.decode(
            token,
            settings.IM_JWT_SECRET,
            algorithms=[ALGORITHM],
            issuer=settings.IM_JWT_ISSUER,
            # `sub` may be a number (the mall mints it so); token_user_id validates it.
            options={"require": ["exp", "iss"], "verify_sub": False},
        )
    except jwt.ExpiredSignatureError as error:
        raise InvalidToken("token expired") from error
    except jwt.InvalidIssuerError as error:
        raise InvalidToken("token issuer refused") from error
    except jwt.InvalidTokenError as error:
        raise InvalidToken("invalid token") from error


def token_user_id(claims: dict[str, Any]) -> int:
    """The user id from `data.id`, or from `sub` as the mall may mint it."""
    data = claims.get("data")
    raw = data.get("id") if isinstance(data, dict) else None
    if raw is None:
        raw = claims.get("sub")
    if isinstance(raw, bool):
        raw = None
    try:
        user_id = int(raw)
    except (TypeError, ValueError):
        raise InvalidToken("token has no user id") from None
    if user_id <= 0:
        raise InvalidToken("token has no user id")
    return user_id


def token_from_header(value: str) -> str:
    """`bear <jwt>`, `Bearer <jwt>` or a bare token (the compat client sends `bear`)."""
    parts = value.strip().split(None, 1)
    if len(parts) == 2 and parts[0].lower() in {"bear", "bearer"}:
        return parts[1].strip()
    return value.strip()
