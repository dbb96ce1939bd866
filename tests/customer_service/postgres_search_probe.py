"""Run by test_search_postgres.py in a process of its own whose DATABASE_URL is a scratch PostgreSQL
database (already migrated): seeds it, searches through the socket's table, prints one JSON object.

    DATABASE_URL=postgres://.../scratch python -m tests.customer_service.postgres_search_probe 20000
"""

import json
import os
import sys


def main(seeded_messages: int) -> dict:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "imchat.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.core.cache import cache
    from django.db import connection

    from bench.search import seed
    from chat import handlers
    from chat.protocol import Envelope
    from customer_service import search, services
    from tests import factories
    from tests.customer_service.conftest import consumer_frame

    settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["search"] = "1000/minute"
    cache.clear()
    with connection.cursor() as cursor:
        seed(cursor, messages=seeded_messages, customers=1000)

    def ask(user, cls: str, action: str, content: dict) -> dict:
        frame, _ = handlers.run(factories.caller_of(user), Envelope(cls=cls, action=action, content=content))
        return frame

    merchant = factories.make_user(username="probe-merchant")
    shop = services.shop_create(name="Probe Tea", owner=merchant)
    rival = services.shop_create(name="Rival Tea", owner=factories.make_user(username="probe-rival"))
    amy = factories.make_user(username="probe-amy", nickname="Amy")
    services.agent_add(shop=shop, user=amy, status="online")
    cora = factories.make_user(username="probe-cora", nickname="王小花")
    for text in ("你好，我想申请退款，谢谢", "Where is my parcel?", "discount 50% off", "discount 50 off",
                 "[Order 2024-001] Green tea x2", "[Order 2024-0012] Black tea"):
        assert ask(cora, "chat", "sendMsg", consumer_frame(shop.pk, text))["code"] == 1
    assert ask(cora, "chat", "sendMsg", consumer_frame(rival.pk, "rival parcel 退款"))["code"] == 1

    def found(q: str, **content) -> dict:
        frame = ask(amy, "service", "search", {"q": q, **content})
        result = frame["result"] or {}
        return {"code": frame["code"], "msg": frame["msg"], "snippets": [hit["snippet"] for hit in result.get("hits", [])],
                "marked": [hit["snippet"][hit["marks"][0][0]:hit["marks"][0][1]] if hit["marks"] else None
                           for hit in result.get("hits", [])],
                "customers": [c["name"] for c in result.get("customers", [])],
                "recent_only": result.get("recent_only")}

    def plan(shop_ids: list[int], q: str) -> str:
        query = search.search_query_parse(q)
        return search.message_page(shop_ids, query, offset=0, page_size=20).explain()

    settings.IM_SEARCH_TIMEOUT_MS = 20
    try:
        search._run_bounded(lambda: connection.cursor().execute("SELECT pg_sleep(0.2)"))
        timeout = "not cancelled"
    except Exception as error:  # noqa: BLE001 - reported to the test
        timeout = str(error)
    settings.IM_SEARCH_TIMEOUT_MS = 3000

    return {
        "cjk_trigrams": search._indexes_non_ascii(connection.vendor, connection.alias),
        "two_chinese": found("退款"),
        "four_chinese": found("申请退款"),
        "english": found("PARCEL"),
        "percent": found("50%"),
        "order": found("order:2024-001"),
        "customer": found("小花"),
        "other_shop": found("rival", shop_id=rival.pk),
        "plan_english": plan(list(range(1, 11)), "teapot"),
        "plan_chinese": plan(list(range(1, 11)), "什么时候"),
        "plan_short": plan(list(range(1, 11)), "退款"),
        "timeout": timeout,
    }


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]))))
