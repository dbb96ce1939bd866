"""The queue gauges of /metrics: queued sessions per shop, read from the database when scraped."""

from prometheus_client import REGISTRY

from customer_service.models import ServiceSession


def gauge(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def test_a_queued_session_shows_in_its_shops_queue_gauge_until_an_agent_takes_it(shop, consumer, say):
    assert gauge("imchat_queue_length", shop_id=str(shop.pk)) is None  # a shop with no queue has no series

    say(consumer, shop, "anyone?")

    assert ServiceSession.objects.get(shop=shop).state == "queued"
    assert gauge("imchat_queue_length", shop_id=str(shop.pk)) == 1
    assert gauge("imchat_queue_length_all") == 1
    assert 0 <= gauge("imchat_queue_oldest_seconds", shop_id=str(shop.pk)) < 60

    ServiceSession.objects.filter(shop=shop).update(state="closed")

    assert gauge("imchat_queue_length", shop_id=str(shop.pk)) is None
    assert gauge("imchat_queue_length_all") == 0
