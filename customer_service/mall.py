"""The mall's shops, created or updated in bulk (its shop 2 is our shop 2)."""

from typing import Any

from django.db import connection, transaction

from accounts.models import User
from customer_service import services
from customer_service.models import Shop
from imchat.errors import bad_request, not_found


def _sync_id_sequence() -> None:
    """After explicit ids, move PostgreSQL's sequence past them so generated ids never collide."""
    if connection.vendor != "postgresql":
        return
    table = Shop._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), GREATEST((SELECT MAX(id) FROM {table}), 1))"
        )


def _changes(shop: Shop, row: dict[str, Any], owners: dict[int, User]) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    if row.get("name") and row["name"] != shop.name:
        changes["name"] = row["name"]
    if "logo" in row and (row["logo"] or "") != shop.logo:
        changes["logo"] = row["logo"] or ""
    if row.get("owner_id") is not None and row["owner_id"] != shop.owner_id:
        changes["owner"] = owners[row["owner_id"]]
    return changes


@transaction.atomic
def shops_upsert(*, shops: list[dict[str, Any]]) -> dict[str, list[int]]:
    """Create shops by id, or update name/logo/owner (only the fields given) through shop_update, so
    every conversation list shows a new name and logo at once.

    Idempotent; rows for the same id are merged in order.
    """
    rows: dict[int, dict[str, Any]] = {}
    for row in shops:
        rows.setdefault(row["id"], {}).update(row)
    owner_ids = {row["owner_id"] for row in rows.values() if row.get("owner_id") is not None}
    owners = {user.pk: user for user in User.objects.filter(pk__in=owner_ids)}
    existing = {shop.pk: shop for shop in Shop.objects.select_for_update().filter(pk__in=list(rows))}
    for shop_id, row in rows.items():
        if row.get("owner_id") is not None and row["owner_id"] not in owners:
            raise not_found(f"shops: shop {shop_id}: owner_id: no such user {row['owner_id']} (send the users first)")
        if shop_id not in existing:
            for field in ("name", "owner_id"):
                if not row.get(field):
                    raise bad_request(f"shops: shop {shop_id}: {field}: required for a new shop")
    created, updated, unchanged = [], [], []
    for shop_id, row in rows.items():
        shop = existing.get(shop_id)
        if shop is None:
            services.shop_create(shop_id=shop_id, name=row["name"], owner=owners[row["owner_id"]],
                                 logo=row.get("logo") or "")
            created.append(shop_id)
        elif changes := _changes(shop, row, owners):
            services.shop_update(shop=shop, **changes)
            updated.append(shop_id)
        else:
            unchanged.append(shop_id)
    if created:
        _sync_id_sequence()
    return {"created": created, "updated": updated, "unchanged": unchanged}
