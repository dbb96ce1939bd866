"""The demo's product and order cards (development servers only): signed with the development
IM_MALL_API_KEY, as the mall would sign them, so `make run` shows cards end to end."""

import time
from urllib.parse import urlencode

from django.conf import settings
from django.templatetags.static import static
from django.urls import reverse

from chat.cards import card_link_value, card_sign

DEMO_SHOP_ID = 1
DEMO_CARD_SECONDS = 24 * 3600


def demo_product(base_url: str) -> dict:
    return {"kind": "product", "id": "42", "title": "Blue shirt", "price": "129.00",
            "image": base_url + static("img/demo-shirt.svg"), "link": "https://mall.example/p/42"}


def demo_order() -> dict:
    return {"kind": "order", "id": "2024-001", "status": "shipped", "total": "258.00",
            "items": [{"title": "Blue shirt", "quantity": 2, "price": "129.00"}],
            "link": "https://mall.example/o/2024-001"}


def demo_card_links(base_url: str) -> dict[str, str] | None:
    """Page links that hand over a freshly signed card, or None outside a development server."""
    if not (settings.DEBUG and settings.IM_MALL_API_KEY):
        return None
    key, expires = settings.IM_MALL_API_KEY, int(time.time()) + DEMO_CARD_SECONDS

    def value(card: dict) -> str:
        return card_link_value(card_sign(card, key=key, expires=expires))

    return {
        "product": base_url + reverse("chat") + "?" + urlencode({"shop": DEMO_SHOP_ID,
                                                               "card": value(demo_product(base_url))}),
        "order": base_url + reverse("workspace") + "?" + urlencode({"card": value(demo_order())}),
    }
