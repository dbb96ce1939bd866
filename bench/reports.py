"""The reports over a date range on a year of a big shop: plans and timings (docs/PERFORMANCE.md).

    python -m bench.reports                          # 1,000,000 sessions of one shop in a year, 4 messages each
    python -m bench.reports --sessions 200000 --plans   # smaller, with each query's whole EXPLAIN ANALYZE
    python -m bench.reports --keep                   # keep the scratch database (its name is printed)
    python -m bench.reports --database postgres://.../imchat_search_x   # time again on a kept one

Makes a scratch database (bench/search.py's helpers), migrates it, fills it with SQL generate_series:
shop 1 (Asia/Shanghai, 40 agents) with `--sessions` sessions spread over the 365 days up to today (5% never answered,
30% rated), `--messages` messages per session (customer and agent in turn), and 9 small shops with
a tenth as many sessions between them; then VACUUM ANALYZE (index-only scans need the visibility
map, which autovacuum keeps in production). Then it times customer_service.periods.period_report
(all of it: the queries, the merge, the names) for the whole year: first the report that keeps the
year's settled days and sums its whole months (ReportFigures, ReportMonthFigures; once in the shop's
zone, once in UTC for every shop), then per
day, per agent, per agent and day of shop 1, and per shop over every shop; median of three runs,
and each SQL statement's EXPLAIN ANALYZE access path.
"""

import argparse
import os
import statistics
import time

from bench.search import access_path, create_database, drop_database, migrate

AGENTS = 40
SMALL_SHOPS = 9
CUSTOMERS = 50_000
DAYS = 365


def year() -> tuple[str, str]:
    """The 365 days up to today in the shop's zone (the last IM_REPORT_SETTLED_SECONDS of them live)."""
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo

    today = datetime.now(ZoneInfo(ZONE)).date()
    return (today - timedelta(days=DAYS - 1)).isoformat(), today.isoformat()
ZONE = "Asia/Shanghai"


def seed(cursor, *, sessions: int, messages: int) -> None:
    """Shop 1 with `sessions` sessions over the year and shops 2..10 with a tenth as many in all."""
    small = sessions // 10
    total = sessions + small
    shops = SMALL_SHOPS + 1
    user_columns = ("password, is_superuser, first_name, last_name, email, is_staff, is_active, date_joined, "
                    "avatar, sign, id, username, nickname")
    cursor.execute(f"""
        SET session_replication_role = replica;  -- no foreign-key triggers while seeding (superuser)
        CREATE FUNCTION pg_temp.h(i bigint, salt int) RETURNS bigint LANGUAGE sql IMMUTABLE
            AS 'SELECT abs(hashint8(i * 16 + salt)::bigint)';
        INSERT INTO accounts_user ({user_columns})
        SELECT '!', false, '', '', '', false, true, now(), '', '', i, 'user' || i, 'User ' || i
        FROM generate_series(1, {shops + shops * AGENTS + CUSTOMERS}) i;
        INSERT INTO customer_service_shop (id, owner_id, name, logo, strategy, offline_notice, timezone, greeting,
                                           out_of_hours_message, contact_guard, offline_notify_minutes, created_at)
        SELECT i, i, 'Shop ' || i, '', 'least_busy', '', CASE WHEN i = 1 THEN '{ZONE}' ELSE 'UTC' END, '', '',
               'flag', 10, now()
        FROM generate_series(1, {shops}) i;
        INSERT INTO customer_service_serviceagent (shop_id, user_id, status, max_sessions, status_changed_at,
                                                   created_at)
        SELECT (a - 1) / {AGENTS} + 1, {shops} + a, 'offline', 10, now(), now()
        FROM generate_series(1, {shops * AGENTS}) a;
        -- One conversation per (shop, customer) that writes; session i belongs to shop 1 when i <= sessions.
        CREATE TEMP TABLE plan AS
        SELECT i,
               CASE WHEN i <= {sessions} THEN 1 ELSE 2 + i % {SMALL_SHOPS} END AS shop,
               timestamptz '{year()[0]} 00:00:00+08' + ((i::bigint * 7919) % {total}) * (interval '{DAYS} days' / {total})
                   AS created
        FROM generate_series(1, {total}) i;
        INSERT INTO chat_conversation (id, chat_id, chat_type, title, avatar, shop_id, last_seq, last_msg,
                                       last_msg_type, last_uid, last_time, created_at)
        SELECT c, s || '____' || ({shops + shops * AGENTS} + c), 4, '', '', s, 0, '', 1, 0, now(), now()
        FROM (SELECT DISTINCT shop AS s, CASE WHEN shop = 1 THEN i % {CUSTOMERS} + 1
                                               ELSE {CUSTOMERS} + shop END AS c FROM plan) conversations;
        INSERT INTO customer_service_servicesession
            (id, shop_id, consumer_id, conversation_id, agent_id, state, first_seq, created_at, queued_at,
             assigned_at, first_assigned_at, first_response_at, closed_at, last_activity_at, rating,
             rating_comment, rated_at)
        SELECT i, shop, {shops + shops * AGENTS} + conv, conv, agent, 'closed', 1, created, created,
               created + wait, created + wait,
               CASE WHEN pg_temp.h(i, 1) % 20 = 0 THEN NULL
                    ELSE created + wait + (pg_temp.h(i, 2) % 600) * interval '1 second' END,
               created + (300 + pg_temp.h(i, 3) % 3300) * interval '1 second', created,
               CASE WHEN pg_temp.h(i, 4) % 10 < 3 THEN 1 + pg_temp.h(i, 5) % 5 END, '',
               CASE WHEN pg_temp.h(i, 4) % 10 < 3 THEN created + interval '2 hours' END
        FROM (SELECT i, shop, created,
                     CASE WHEN shop = 1 THEN i % {CUSTOMERS} + 1 ELSE {CUSTOMERS} + shop END AS conv,
                     {shops} + (shop - 1) * {AGENTS} + 1 + pg_temp.h(i, 0) % {AGENTS} AS agent,
                     (pg_temp.h(i, 6) % 120) * interval '1 second' AS wait
              FROM plan) p;
        INSERT INTO chat_message (conversation_id, seq, sender_id, sent_as, chat_type, msg_type, msg, to_uid,
                                  shop_id, created_at)
        SELECT s.conversation_id, s.id * {messages} + k, CASE WHEN k % 2 = 0 THEN s.consumer_id ELSE s.agent_id END,
               k % 2, 4, 1, 'hello', 0, s.shop_id, s.created_at + k * interval '40 seconds'
        FROM customer_service_servicesession s, generate_series(0, {messages} - 1) k;
        SET session_replication_role = DEFAULT;
    """)


def captured(run) -> list[str]:
    """The SQL statements `run()` sends (their parameters inlined by the driver for EXPLAIN)."""
    from django.db import connection

    statements = []

    def wrapper(execute, sql, params, many, context):
        statements.append((sql, params))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(wrapper):
        run()
    with connection.cursor() as cursor:
        return [cursor.mogrify(sql, params) for sql, params in statements
                if sql.lstrip().upper().startswith("SELECT")]


def measure(label: str, run, *, plans: bool, runs: int = 3) -> float:
    from django.db import connection

    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        rows = run()
        timings.append((time.perf_counter() - started) * 1000)
    median = statistics.median(timings)
    each = ", ".join(f"{timing:.0f}" for timing in timings)
    print(f"\n{label}: {len(rows)} rows, {median:.0f} ms (median of {runs}; runs {each})")
    with connection.cursor() as cursor:
        for sql in captured(run):
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql)
            plan = "\n".join(line for (line,) in cursor.fetchall())
            took = plan.strip().splitlines()[-1].strip()
            print(f"  {took:28} {access_path(plan)}")
            if plans:
                print("    " + plan.replace("\n", "\n    "))
    return median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=1_000_000, help="sessions of the big shop in the year")
    parser.add_argument("--messages", type=int, default=4, help="messages per session")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--plans", action="store_true", help="print the whole EXPLAIN ANALYZE of each query")
    parser.add_argument("--database", help="time the reports on a database kept by --keep (no seeding)")
    options = parser.parse_args()
    name, url = (None, options.database) if options.database else create_database()
    try:
        if name:
            migrate(url)
        os.environ.update(DATABASE_URL=url, DJANGO_DEBUG="1", DJANGO_SETTINGS_MODULE="imchat.settings")
        import django

        django.setup()
        from datetime import UTC
        from zoneinfo import ZoneInfo

        from django.db import connection

        from customer_service import periods

        started = time.perf_counter()
        with connection.cursor() as cursor:
            if name:
                seed(cursor, sessions=options.sessions, messages=options.messages)
            seeded = time.perf_counter() - started
            cursor.execute("VACUUM ANALYZE")
            cursor.execute("SELECT (SELECT count(*) FROM customer_service_servicesession), "
                           "(SELECT count(*) FROM chat_message), pg_size_pretty(pg_database_size(current_database()))")
            sessions, messages, size = cursor.fetchone()
        print(f"{sessions} sessions ({options.sessions} of shop 1 in the year), {messages} messages; seeded in "
              f"{seeded:.0f} s, vacuumed in {time.perf_counter() - started - seeded:.0f} s; database {size}")
        year_zone = periods.period_parse(*year(), zone=ZoneInfo(ZONE))
        year_utc = periods.period_parse(*year(), zone=UTC)
        for label, period, shop_ids in (("shop 1's zone", year_zone, [1]), ("UTC, every shop", year_utc, None)):
            kept, live = periods.settled_split(period)
            started = time.perf_counter()
            grouping = "day" if shop_ids else "shop"
            periods.period_report(shop_ids=shop_ids, period=period, grouping=grouping)
            print(f"first report, {label}: {(time.perf_counter() - started):.1f} s, keeping {kept.since}..{kept.until}"
                  f" (live {live.since}..{live.until})")
        period_year = year_zone
        cases = [
            ("shop 1, per day of the year (365 rows)", lambda: periods.period_report(shop_ids=[1], period=period_year,
                                                                                  grouping="day")),
            ("shop 1, per agent", lambda: periods.period_report(shop_ids=[1], period=period_year, grouping="agent")),
            ("shop 1, per agent and day", lambda: periods.period_report(shop_ids=[1], period=period_year,
                                                                        grouping="agent_day")),
            ("shop 1, one agent's days", lambda: periods.period_report(shop_ids=[1], period=period_year,
                                                                       grouping="agent_day", agent_uid=11)),
            ("every shop, per shop (UTC)", lambda: periods.period_report(shop_ids=None, period=year_utc,
                                                                         grouping="shop")),
        ]
        for label, run in cases:
            measure(label, run, plans=options.plans)
    finally:
        if options.keep or not name:
            print(f"kept database {name or url}: {url}")
        else:
            drop_database(name)


if __name__ == "__main__":
    main()
