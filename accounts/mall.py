"""The mall's server-to-server access: its API key, and its users created or updated in bulk."""

import hmac
import secrets
from typing import Any

from django.conf import settings
from django.db import transaction
from rest_framework import authentication, exceptions, permissions

from accounts.models import User
from accounts.services import user_create

API_KEY_HEADER = "X-Imchat-Api-Key"


class MallClient:
    """Who a request authenticated by the mall's key is: the mall backend, not a user."""

    is_authenticated = True
    is_active = True
    is_staff = False
    is_superuser = False
    pk = None

    def __str__(self) -> str:
        return "mall backend"


class MallKeyAuthentication(authentication.BaseAuthentication):
    """`X-Imchat-Api-Key: <IM_MALL_API_KEY>`, compared in constant time; all refused while unset."""

    def __init__(self, *, only_when_sent: bool = False):
        # only_when_sent: endpoints users reach with their own login too (the reports) pass a
        # request without the header on to the next authenticator, key configured or not.
        self.only_when_sent = only_when_sent

    def authenticate(self, request):
        if self.only_when_sent and not request.headers.get(API_KEY_HEADER):
            return None
        key = settings.IM_MALL_API_KEY
        if not key:
            raise exceptions.PermissionDenied("the mall API is disabled (IM_MALL_API_KEY is not set)")
        given = request.headers.get(API_KEY_HEADER)
        if not given:
            return None
        if not hmac.compare_digest(given.encode("utf-8", "surrogatepass"), key.encode("utf-8")):
            raise exceptions.AuthenticationFailed("bad API key")
        return MallClient(), None

    def authenticate_header(self, request):
        return "ApiKey"


class MallKeyIfGiven(MallKeyAuthentication):
    """The mall's key on endpoints users call too: only a request carrying the header is the mall's
    (so with IM_MALL_API_KEY unset, users are not refused)."""

    def authenticate(self, request):
        if not request.headers.get(API_KEY_HEADER):
            return None
        return super().authenticate(request)


class IsMall(permissions.BasePermission):
    def has_permission(self, request, view):
        return isinstance(request.user, MallClient)


def _username_for(user_id: int, taken: set[str]) -> str:
    """`u<id>`, as IM_JWT_AUTO_CREATE names users, unless someone already has it."""
    username = f"u{user_id}"
    while username in taken:
        username = f"u{user_id}_{secrets.token_hex(3)}"
    taken.add(username)
    return username


@transaction.atomic
def users_upsert(*, users: list[dict[str, Any]]) -> dict[str, list[int]]:
    """Create the mall's users by id, or update their nickname/avatar (only the fields given).

    Idempotent: the same batch again changes nothing. Rows for the same id are merged in order.
    """
    rows: dict[int, dict[str, Any]] = {}
    for row in users:
        rows.setdefault(row["id"], {}).update(row)
    existing = {user.pk: user for user in User.objects.select_for_update().filter(pk__in=list(rows))}
    wanted_names = [f"u{user_id}" for user_id in rows if user_id not in existing]
    taken = set(User.objects.filter(username__in=wanted_names).values_list("username", flat=True))
    created, updated, unchanged = [], [], []
    for user_id, row in rows.items():
        user = existing.get(user_id)
        if user is None:
            user_create(username=_username_for(user_id, taken), user_id=user_id,
                        nickname=row.get("nickname") or "", avatar=row.get("avatar") or "")
            created.append(user_id)
            continue
        changes = {name: row[name] or "" for name in ("nickname", "avatar")
                   if name in row and (row[name] or "") != getattr(user, name)}
        if changes:
            User.objects.filter(pk=user_id).update(**changes)
            updated.append(user_id)
        else:
            unchanged.append(user_id)
    return {"created": created, "updated": updated, "unchanged": unchanged}
