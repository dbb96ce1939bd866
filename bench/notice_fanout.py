"""Measure a notice to everyone on a large user base (run by hand: `python bench/notice_fanout.py`).

On a fresh PostgreSQL database: migrate, insert USERS users in one INSERT ... SELECT, then time
`manage.py sendnotice --all` (wall clock, a subprocess as staff would run it) and the first
`user.recentChat` of one of those users (which creates their read marker on the shared box), and a
second one. Then, for the steady state, give every user a read marker on the shared box (as if all
had looked) and time another notice and list, and one more with every marker hidden. Prints the
figures; drops its database at the end.

Environment: IM_TEST_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/postgres, a role that
may create databases), BENCH_USERS (default 100000). The channel layer is the in-memory one (no
REDIS_URL): the push is one group_send whatever the audience, so it is not what is measured.
"""

import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]
ADMIN_URL = os.environ.get("IM_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")
USERS = int(os.environ.get("BENCH_USERS", "100000"))

# Every NOT NULL column of accounts_user, with the value the bulk insert gives it.
USER_COLUMNS = {
    "username": "'u' || n",
    "password": "'!'",  # an unusable password, as user_create sets for users without one
    "is_superuser": "false",
    "is_staff": "false",
    "is_active": "true",
    "first_name": "''",
    "last_name": "''",
    "email": "''",
    "date_joined": "now() - interval '1 day'",
    "nickname": "'User ' || n",
    "avatar": "''",
    "sign": "''",
}


def psycopg_url(url: str) -> str:
    return url.replace("postgres://", "postgresql://", 1)


def manage(env: dict[str, str], *args: str) -> tuple[float, str]:
    """Run manage.py; (wall-clock seconds, stdout)."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, str(ROOT / "manage.py"), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"manage.py {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return elapsed, done.stdout


def insert_users(database_url: str) -> tuple[float, int]:
    with psycopg.connect(psycopg_url(database_url), autocommit=True) as db:
        required = {
            name for name, in db.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'accounts_user' "
                "AND is_nullable = 'NO' AND column_default IS NULL AND is_identity = 'NO'"
            )
        }
        missing = required - set(USER_COLUMNS)
        if missing:
            raise SystemExit(f"accounts_user has NOT NULL columns this script does not fill: {sorted(missing)}")
        columns = ", ".join(USER_COLUMNS)
        values = ", ".join(USER_COLUMNS.values())
        started = time.perf_counter()
        db.execute(f"INSERT INTO accounts_user ({columns}) SELECT {values} FROM generate_series(1, %s) AS n",
                   [USERS])
        db.execute("ANALYZE accounts_user")
        elapsed = time.perf_counter() - started
        count = db.execute("SELECT count(*) FROM accounts_user").fetchone()[0]
    return elapsed, count


def give_everyone_a_read_marker(database_url: str) -> float:
    """Steady state: every user has looked at the shared box and read it (one row each)."""
    with psycopg.connect(psycopg_url(database_url), autocommit=True) as db:
        started = time.perf_counter()
        db.execute(
            "INSERT INTO chat_participant (conversation_id, user_id, role, last_read_seq, joined_seq, hidden, "
            "muted, kicked, created_at) "
            "SELECT c.id, u.id, 'member', c.last_seq, 0, false, false, false, now() "
            "FROM accounts_user u CROSS JOIN chat_conversation c WHERE c.chat_id = 'sys_0' "
            "ON CONFLICT DO NOTHING"
        )
        db.execute("ANALYZE chat_participant")
        return time.perf_counter() - started


def time_recent_chat(username: str) -> list[tuple[float, int, int, int]]:
    """(seconds, queries, sys_0 unread, rows) of two user.recentChat requests, as a socket runs them."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from accounts.models import User
    from chat import handlers
    from chat.protocol import Caller, Envelope

    user = User.objects.get(username=username)
    caller = Caller(user=user, base_url="http://bench.local")
    figures = []
    for _ in range(2):
        with CaptureQueriesContext(connection) as queries:
            started = time.perf_counter()
            frame, _ = handlers.run(caller, Envelope(cls="user", action="recentChat", content={}))
            elapsed = time.perf_counter() - started
        assert frame["code"] == 102, frame
        rows = frame["result"]["rows"]
        box = next((row for row in rows if row["chat_id"] == "sys_0"), None)
        figures.append((elapsed, len(queries), box["unread_count"] if box else -1, len(rows)))
    return figures


def main() -> None:
    database = f"imchat_bench_{secrets.token_hex(4)}"
    with psycopg.connect(psycopg_url(ADMIN_URL), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{database}"')
    database_url = ADMIN_URL.rsplit("/", 1)[0] + "/" + database
    env = {name: value for name, value in os.environ.items() if name not in ("REDIS_URL", "DATABASE_URL")}
    env.update(DATABASE_URL=database_url, DJANGO_SETTINGS_MODULE="imchat.settings", DJANGO_DEBUG="1",
               LOG_LEVEL="WARNING")
    try:
        print(f"database {database}")
        migrate_s, _ = manage(env, "migrate", "--noinput")
        print(f"migrate: {migrate_s:.2f} s")
        insert_s, count = insert_users(database_url)
        print(f"insert {USERS} users (INSERT ... SELECT generate_series): {insert_s:.2f} s; users now: {count}")

        startup_s, _ = manage(env, "shell", "-c", "pass")
        print(f"manage.py startup alone (shell -c pass): {startup_s:.2f} s")
        notice_s, out = manage(env, "sendnotice", "--all", "Scheduled maintenance tonight at 02:00")
        print(f"manage.py sendnotice --all: {notice_s:.2f} s wall clock (notice id {out.strip().splitlines()[-1]})")

        # In this process, against the same database, for the socket-side figures.
        os.environ.update(DATABASE_URL=database_url, DJANGO_SETTINGS_MODULE="imchat.settings", DJANGO_DEBUG="1")
        os.environ.pop("REDIS_URL", None)
        sys.path.insert(0, str(ROOT))
        import django

        django.setup()
        from django.conf import settings

        settings.DEBUG = False  # CaptureQueriesContext records regardless; DEBUG would keep every query
        username = f"u{USERS // 2}"
        for number, (seconds, queries, unread, rows) in enumerate(time_recent_chat(username), start=1):
            print(f"user.recentChat #{number} for {username}: {seconds * 1000:.1f} ms, {queries} queries, "
                  f"sys_0 unread {unread}, {rows} rows")

        marker_s = give_everyone_a_read_marker(database_url)
        print(f"steady state: a read marker on sys_0 for every user inserted in {marker_s:.2f} s")
        notice2_s, _ = manage(env, "sendnotice", "--all", "Maintenance finished")
        print(f"manage.py sendnotice --all with {count} read markers: {notice2_s:.2f} s wall clock")
        from chat.notices import notice_send

        started = time.perf_counter()
        notice_send(audience="all", text="In-process notice")
        print(f"notice_send(audience=all) in process with {count} read markers: "
              f"{(time.perf_counter() - started) * 1000:.1f} ms")
        for number, (seconds, queries, unread, rows) in enumerate(time_recent_chat(username), start=1):
            print(f"user.recentChat #{number} after: {seconds * 1000:.1f} ms, {queries} queries, "
                  f"sys_0 unread {unread}, {rows} rows")

        # Worst case: every marker hidden (users who joined after the last notice and looked, or
        # deleted the box from their list): a new notice un-hides them, one row each.
        from chat.models import Participant

        hidden = Participant.objects.filter(conversation__chat_id="sys_0").update(hidden=True)
        started = time.perf_counter()
        notice_send(audience="all", text="To hidden boxes")
        print(f"notice_send(audience=all) in process with {hidden} hidden read markers: "
              f"{(time.perf_counter() - started) * 1000:.1f} ms")
        from django.db import connection

        connection.close()
    finally:
        with psycopg.connect(psycopg_url(ADMIN_URL), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        print(f"dropped {database}")


if __name__ == "__main__":
    main()
