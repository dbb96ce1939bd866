"""What an agent's socket opening means: join the shops' agent groups, take queued sessions."""

from django.db import transaction

from chat import realtime
from customer_service import services
from customer_service.models import ServiceAgent
from customer_service.selectors import served_shop_ids


def agent_groups(user) -> list[str]:
    return [realtime.shop_agents_group(shop_id) for shop_id in served_shop_ids(user)]


def agent_connected(user, base_url: str) -> None:
    """A new live socket may make the agent available: drain the queues of their online shops."""
    online_shops = ServiceAgent.objects.filter(user=user, status=ServiceAgent.Status.ONLINE).values_list(
        "shop_id", flat=True
    )
    for shop_id in online_shops:
        with transaction.atomic():
            services.queue_drain(shop_id=shop_id, base_url=base_url)
