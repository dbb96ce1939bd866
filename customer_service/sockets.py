"""What an agent's socket opening means: join the shops' agent groups, take queued sessions."""

from django.db import transaction

from chat import realtime
from chat.sockets import Items
from customer_service import services
from customer_service.models import ServiceAgent, Shop

# The shops a user answers for, as an agent or the owner, as items of the statement a socket opens
# with (chat/sockets.py); state 1 where they are an online agent.
ITEMS = (
    f"""SELECT 'shop' AS kind, a.shop_id AS ref, CASE WHEN a.status = '{ServiceAgent.Status.ONLINE}' THEN 1 ELSE 0 END
    AS state FROM {ServiceAgent._meta.db_table} a WHERE a.user_id = %(user_id)s""",
    f"""SELECT 'shop' AS kind, s.id AS ref, 0 AS state FROM {Shop._meta.db_table} s WHERE s.owner_id = %(user_id)s""",
)


def agent_groups(items: Items) -> list[str]:
    shop_ids = sorted({shop_id for shop_id, _ in items.get("shop", ())})
    return [realtime.shop_agents_group(shop_id) for shop_id in shop_ids]


def online_shop_ids(items: Items) -> list[int]:
    return sorted({shop_id for shop_id, online in items.get("shop", ()) if online})


def agent_connected(shop_ids: list[int], base_url: str) -> None:
    """A new live socket may make the agent available: drain the queues of their online shops."""
    for shop_id in shop_ids:
        with transaction.atomic():
            services.queue_drain(shop_id=shop_id, base_url=base_url)
