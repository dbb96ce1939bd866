"""Account writes and credential checks; the only place users are created."""

import re
import secrets

from django.conf import settings
from django.contrib.auth import authenticate, password_validation
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction

from accounts import throttling
from accounts.models import User
from accounts.tokens import InvalidToken, token_claims, token_mint, token_user_id
from imchat.errors import bad_request, rate_limited
from imchat.inputs import ascii_int

# The original's rule for usernames chosen at registration.
USERNAME_RULE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{4,15}$")


@transaction.atomic
def user_create(
    *,
    username: str,
    user_id: int | None = None,
    nickname: str = "",
    avatar: str = "",
    password: str | None = None,
    is_staff: bool = False,
) -> User:
    user = User(id=user_id, username=username, nickname=nickname, avatar=avatar, is_staff=is_staff)
    if password:
        user.set_password(password)
    else:
        user.set_unusable_password()
    user.save(force_insert=True)
    if user_id is not None:
        _sync_id_sequence()
    return user


def _sync_id_sequence() -> None:
    """After an explicit id, move PostgreSQL's sequence past it so generated ids never collide."""
    if connection.vendor != "postgresql":
        return
    table = User._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
            f"GREATEST((SELECT MAX(id) FROM {table}), 1))"
        )


def user_register(*, username: str, password: str) -> User:
    if not USERNAME_RULE.fullmatch(username or ""):
        raise bad_request("username: 5-16 letters, digits or _, starting with a letter")
    candidate = User(username=username)
    try:
        password_validation.validate_password(password or "", candidate)
    except ValidationError as error:
        raise bad_request("password: " + " ".join(error.messages)) from None
    if User.objects.filter(username__iexact=username).exists():
        raise bad_request("username: already taken")
    try:
        return user_create(username=username, nickname=username, password=password)
    except IntegrityError:
        raise bad_request("username: already taken") from None


def user_authenticate(*, username: str, password: str, request=None) -> User:
    """The user with this password; the same answer and the same work (Django's ModelBackend runs
    the hasher for a name nobody has) for a wrong name or password. Refused with -429, unchecked,
    while the name waits out its backoff (accounts/throttling.py)."""
    wait = throttling.login_wait(username=username)
    if wait:
        raise rate_limited(wait, "too many failed logins for this username")
    user = authenticate(request, username=username or "", password=password or "")
    if user is None:
        throttling.login_failed(username=username)
        raise bad_request("用户名或密码错误")
    throttling.login_succeeded(username=username)
    return user


def user_login(*, username: str, password: str) -> str:
    """A token for the right password (see user_authenticate)."""
    return token_mint(user_id=user_authenticate(username=username, password=password).pk)


def user_from_token(token: str) -> User:
    """The active user a token names (created from its claims when IM_JWT_AUTO_CREATE is on)."""
    claims = token_claims(token)
    user = User.objects.filter(pk=token_user_id(claims), is_active=True).first()
    return user if user is not None else user_create_from_claims(claims)


def user_create_from_claims(claims: dict) -> User:
    """For verified claims naming no active user: the user made from their `nickname`/`avatar` when
    IM_JWT_AUTO_CREATE is on (a concurrent creation is found instead), else InvalidToken."""
    user_id = token_user_id(claims)
    if settings.IM_JWT_AUTO_CREATE:
        profile = {**(claims.get("data") if isinstance(claims.get("data"), dict) else {}), **claims}
        nickname, avatar = profile.get("nickname"), profile.get("avatar")
        if isinstance(nickname, str) and nickname:
            username = f"u{user_id}"
            if User.objects.filter(username=username).exists():
                username = f"u{user_id}_{secrets.token_hex(3)}"
            try:
                return user_create(
                    username=username,
                    user_id=user_id,
                    nickname=nickname[:64],
                    avatar=avatar[:500] if isinstance(avatar, str) else "",
                )
            except IntegrityError:
                user = User.objects.filter(pk=user_id, is_active=True).first()
                if user is not None:
                    return user
    raise InvalidToken("user does not exist")


def user_by_name_or_id(identifier: str) -> User:
    """For commands: `alice` or `7`."""
    query = User.objects.filter(username=identifier)
    user_id = ascii_int(identifier)
    if user_id is not None:
        query = User.objects.filter(pk=user_id) | query
    user = query.first()
    if user is None:
        raise User.DoesNotExist(f"no user {identifier!r}")
    return user
