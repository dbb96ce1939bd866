"""The desk search on a realistically sized PostgreSQL table: plans and timings (docs/PERFORMANCE.md).

    python -m bench.search --messages 300000            # a scratch database, dropped afterwards
    python -m bench.search --messages 300000 --keep     # keep it (its name is printed)
    python -m bench.search --insert-cost                # + what the indexes add to each insert

Makes a scratch database (as tests/e2e/harness.py does), migrates it, fills it with SQL
generate_series (`seed`: 10 shops, one conversation per customer, service messages in English and
Chinese with order cards every 100th, plus private messages the search must never read), then runs
each query of QUERIES through customer_service.search.message_page with EXPLAIN ANALYZE and prints the
plan's access path and the median time of five runs. tests/customer_service/test_search_postgres.py
uses the same `seed`.
"""

import argparse
import os
import secrets
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ADMIN_URL = os.environ.get("IM_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")

SHOPS = 10
EN_WORDS = ("hello order refund parcel delivery tea green black teapot cup price discount please thanks when "
            "where broken size colour invoice address change cancel payment card shipping tracking number gift "
            "wrap sample stock available tomorrow today week store return exchange quality").split()
ZH_WORDS = "你好 请问 退款 发货 快递 什么时候 谢谢 订单 地址 修改 取消 付款 优惠 价格 质量 退货 换货 包装 颜色 尺寸".split()
# (label, query): a common English word, a rare one, Chinese of 2 and 4 characters, an order id.
QUERIES = [
    ("common word (3+ chars)", "teapot"),
    ("rare word", "xylophone"),
    ("two words", "broken cup"),
    ("Chinese, 4 chars", "什么时候"),
    ("Chinese, 2 chars (no trigram)", "退款"),
    ("1 char", "x"),
    ("2 chars, no match: whole window", "qz"),
    ("order:<id>", "order:2024-00420"),
    ("no match", "zzqqzz"),
]


def _array(words) -> str:
    return "ARRAY[" + ",".join(f"'{word}'" for word in words) + "]"


def seed(cursor, *, messages: int, customers: int = 5000, private: int | None = None) -> None:
    """Fill an empty migrated database: SHOPS shops (owners 1..SHOPS), `customers` conversations,
    `messages` service messages, `private` (default messages // 3) private ones."""
    private = messages // 3 if private is None else private
    en, zh, n_en, n_zh = _array(EN_WORDS), _array(ZH_WORDS), len(EN_WORDS), len(ZH_WORDS)
    user_columns = ("password, is_superuser, first_name, last_name, email, is_staff, is_active, date_joined, "
                    "avatar, sign, id, username, nickname")
    cursor.execute(f"""
        CREATE FUNCTION pg_temp.h(i int, salt int) RETURNS int LANGUAGE sql IMMUTABLE
            AS 'SELECT abs(hashint8(i::bigint * 16 + salt))';
        INSERT INTO accounts_user ({user_columns})
        SELECT '!', false, '', '', '', false, true, now(), '', '', i, 'owner' || i, 'Owner ' || i
        FROM generate_series(1, {SHOPS}) i;
        INSERT INTO accounts_user ({user_columns})
        SELECT '!', false, '', '', '', false, true, now(), '', '', 1000 + i, 'customer' || i,
               CASE WHEN i % 4 = 0 THEN '王' || i ELSE 'Customer ' || i END
        FROM generate_series(1, {customers}) i;
        INSERT INTO customer_service_shop (id, owner_id, name, logo, strategy, offline_notice, timezone, greeting,
                                           out_of_hours_message, contact_guard, offline_notify_minutes, created_at)
        SELECT i, i, 'Shop ' || i, '', 'least_busy', '', 'UTC', '', '', 'flag', 10, now() FROM generate_series(1, {SHOPS}) i;
        INSERT INTO chat_conversation (id, chat_id, chat_type, title, avatar, shop_id, last_seq, last_msg,
                                       last_msg_type, last_uid, last_time, created_at)
        SELECT k, ((k - 1) % {SHOPS} + 1) || '____' || (1000 + k), 4, '', '', (k - 1) % {SHOPS} + 1, 0, '', 1, 0,
               now(), now()
        FROM generate_series(1, {customers}) k;
        INSERT INTO chat_participant (conversation_id, user_id, shop_id, peer_user_id, role, last_read_seq,
                                      joined_seq, hidden, muted, kicked, created_at)
        SELECT k, NULL, (k - 1) % {SHOPS} + 1, 1000 + k, 'member', 0, 0, false, false, false, now()
        FROM generate_series(1, {customers}) k;
        INSERT INTO chat_conversation (id, chat_id, chat_type, title, avatar, last_seq, last_msg, last_msg_type,
                                       last_uid, created_at)
        VALUES ({customers} + 1, '1_2', 1, '', '', 0, '', 1, 0, now());
        INSERT INTO chat_message (conversation_id, seq, sender_id, sent_as, chat_type, msg_type, msg, to_uid,
                                  shop_id, created_at)
        SELECT (i - 1) % {customers} + 1, (i - 1) / {customers} + 1,
               CASE WHEN i % 2 = 0 THEN 1000 + (i - 1) % {customers} + 1 ELSE (i - 1) % {SHOPS} + 1 END,
               CASE WHEN i % 2 = 0 THEN 0 ELSE 1 END, 4, CASE WHEN i % 50 = 7 THEN 2 ELSE 1 END,
               CASE
                 WHEN i % 50 = 7 THEN 'https://cdn.example.com/photo' || i || '.png'
                 WHEN i % 100 = 0 THEN '[Order 2024-' || lpad((i / 100)::text, 5, '0') || '] Green tea x2, 36.00'
                 WHEN i % 50000 = 1 THEN 'my xylophone arrived broken'
                 WHEN pg_temp.h(i, 0) % 5 = 0 THEN ({zh})[1 + pg_temp.h(i, 1) % {n_zh}] || ({zh})[1 + pg_temp.h(i, 2) % {n_zh}] || '，'
                                     || ({zh})[1 + pg_temp.h(i, 3) % {n_zh}] || ({zh})[1 + pg_temp.h(i, 4) % {n_zh}]
                 ELSE ({en})[1 + pg_temp.h(i, 1) % {n_en}] || ' ' || ({en})[1 + pg_temp.h(i, 2) % {n_en}] || ' '
                      || ({en})[1 + pg_temp.h(i, 3) % {n_en}] || ' ' || ({en})[1 + pg_temp.h(i, 4) % {n_en}] || ' '
                      || ({en})[1 + pg_temp.h(i, 5) % {n_en}]
               END,
               0, (i - 1) % {customers} % {SHOPS} + 1, now() - ({messages} - i) * interval '1 second'
        FROM generate_series(1, {messages}) i;
        INSERT INTO chat_message (conversation_id, seq, sender_id, sent_as, chat_type, msg_type, msg, to_uid,
                                  created_at)
        SELECT {customers} + 1, i, 1, 0, 1, 1, 'private: refund the teapot xylophone 退款', 2, now()
        FROM generate_series(1, {private}) i;
        SELECT setval(pg_get_serial_sequence('accounts_user', 'id'), 1000000);
        SELECT setval(pg_get_serial_sequence('chat_conversation', 'id'), 1000000);
        SELECT setval(pg_get_serial_sequence('customer_service_shop', 'id'), 1000);
    """)
    cursor.execute("ANALYZE")


def create_database(locale: str | None = None) -> tuple[str, str]:
    """A new empty database on the server of ADMIN_URL (with `locale`: UTF-8 under that collation
    and character type, e.g. "C"): (name, url)."""
    import psycopg

    name = f"imchat_search_{secrets.token_hex(5)}"
    options = f" TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE '{locale}' LC_CTYPE '{locale}'" if locale else ""
    with psycopg.connect(ADMIN_URL.replace("postgres://", "postgresql://", 1), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"{options}')
    return name, ADMIN_URL.rsplit("/", 1)[0] + "/" + name


def drop_database(name: str) -> None:
    import psycopg

    with psycopg.connect(ADMIN_URL.replace("postgres://", "postgresql://", 1), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def migrate(database_url: str) -> None:
    env = {**os.environ, "DATABASE_URL": database_url, "DJANGO_DEBUG": "1", "DJANGO_SETTINGS_MODULE": "imchat.settings"}
    subprocess.run([sys.executable, str(ROOT / "manage.py"), "migrate", "-v0"], cwd=ROOT, env=env, check=True)


def access_path(plan: str) -> str:
    """The plan's lines naming how rows are found (index scans, sequential scans)."""
    keep = ("Scan", "Limit", "Sort")
    return " / ".join(line.strip().split("  (")[0].lstrip("-> ") for line in plan.splitlines()
                      if any(word in line for word in keep))


def measure(shop_ids: list[int], q: str, runs: int = 5) -> dict:
    from customer_service import search

    query = search.search_query_parse(q)
    page = search.message_page(shop_ids, query, offset=0, page_size=search.PAGE_SIZE_DEFAULT)
    plan = page.explain(analyze=True)
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        rows = list(search.message_page(shop_ids, query, offset=0, page_size=search.PAGE_SIZE_DEFAULT))
        timings.append((time.perf_counter() - started) * 1000)
    return {"q": q, "hits": len(rows), "ms": statistics.median(timings), "plan": plan,
            "path": access_path(plan), "trigram": "message_service_text_trgm" in plan,
            "recent_only": not search.indexable(query.text)}


_INSERT_LOOP = """DO $$ BEGIN FOR i IN 1..{n} LOOP
  INSERT INTO chat_message (conversation_id, seq, sender_id, sent_as, chat_type, msg_type, msg, to_uid, shop_id,
                            created_at)
  VALUES (1 + i % 1000, {base} + i, 1001, 0, 4, 1, 'Where is my parcel? 我想申请退款 ' || i, 0, 1 + i % 10, now());
END LOOP; END $$"""
_SEARCH_INDEXES = {
    "message_service_text_trgm": "CREATE INDEX message_service_text_trgm ON chat_message "
                                 "USING gin (UPPER(msg) gin_trgm_ops) WHERE chat_type = 4",
    "message_service_recent": "CREATE INDEX message_service_recent ON chat_message (shop_id, created_at) "
                              "WHERE chat_type = 4",
}


def insert_cost(cursor, rows: int = 20000, rounds: int = 3) -> dict[str, list[float]]:
    """Microseconds per customer-service message inserted (one row per INSERT, in the server) with
    the search's indexes, with each alone, and with neither: what the indexes add to every message."""
    base = 10_000_000
    costs: dict[str, list[float]] = {}

    def timed(label: str) -> None:
        nonlocal base
        started = time.perf_counter()
        cursor.execute(_INSERT_LOOP.format(n=rows, base=base))
        costs.setdefault(label, []).append(round((time.perf_counter() - started) / rows * 1e6, 1))
        base += rows

    for _ in range(rounds):
        timed("both indexes")
        cursor.execute("DROP INDEX message_service_text_trgm")
        timed("(shop_id, created_at) only")
        cursor.execute("DROP INDEX message_service_recent")
        timed("neither")
        cursor.execute(_SEARCH_INDEXES["message_service_text_trgm"])
        timed("trigram only")
        cursor.execute(_SEARCH_INDEXES["message_service_recent"])
    return costs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=300_000)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--plans", action="store_true", help="print the whole EXPLAIN ANALYZE of each query")
    parser.add_argument("--insert-cost", action="store_true",
                        help="also: what the indexes add to inserting a customer-service message")
    options = parser.parse_args()
    name, url = create_database()
    try:
        migrate(url)
        os.environ.update(DATABASE_URL=url, DJANGO_DEBUG="1", DJANGO_SETTINGS_MODULE="imchat.settings")
        import django

        django.setup()
        from django.db import connection

        from customer_service import search

        started = time.perf_counter()
        with connection.cursor() as cursor:
            seed(cursor, messages=options.messages)
            cursor.execute("SELECT count(*), pg_size_pretty(pg_relation_size('message_service_text_trgm')), "
                           "pg_size_pretty(pg_relation_size('chat_message')) FROM chat_message")
            total, index_size, table_size = cursor.fetchone()
        print(f"{total} messages ({options.messages} customer service), seeded in "
              f"{time.perf_counter() - started:.1f} s; table {table_size}, trigram index {index_size}")
        for scope, shop_ids in (("one shop", [1]), ("all 10 shops", list(range(1, SHOPS + 1)))):
            print(f"\n{scope}:")
            for label, q in QUERIES:
                result = measure(shop_ids, q)
                flag = " (recent window)" if result["recent_only"] else ""
                print(f"  {label:32} {q!r:22} {result['hits']:3} hits {result['ms']:8.1f} ms{flag}  {result['path']}")
                if options.plans:
                    print("    " + result["plan"].replace("\n", "\n    "))
        print("\ncustomer names (all 10 shops, 5,000 customers):")
        for q in ("customer 4999", "王12", "王"):
            started = time.perf_counter()
            names = list(search.customer_page(list(range(1, SHOPS + 1)), q))
            print(f"  {q!r:18} {len(names):3} customers {(time.perf_counter() - started) * 1000:6.1f} ms")
        if options.insert_cost:
            with connection.cursor() as cursor:
                costs = insert_cost(cursor)
            print("\nµs per customer-service message inserted (20,000 one-row INSERTs, 3 rounds):")
            for label, values in costs.items():
                print(f"  {label:28} {values}")
    finally:
        if options.keep:
            print(f"kept database {name}: {url}")
        else:
            drop_database(name)


if __name__ == "__main__":
    main()
