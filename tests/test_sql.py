"""imchat.sql: the hot statements as sent to PostgreSQL."""

import psycopg._queries

from chat.messages import _STORE_SQL
from customer_service.selectors import _LIVE_SESSIONS_POSTGRES
from imchat.sql import compact


def test_compact_drops_comments_and_runs_of_whitespace():
    sql = "SELECT a,  -- the first\n       b\n-- a line of its own\nFROM t WHERE x = 'open'"
    assert compact(sql) == "SELECT a, b FROM t WHERE x = 'open'"


def test_every_prepared_statement_fits_psycopgs_cache_of_statement_readings():
    """Over the limit psycopg reads the statement's placeholders anew on every execution (~160 µs
    a batch for the store, measured): one that grows past it must be made shorter."""
    for statement in (_STORE_SQL, _LIVE_SESSIONS_POSTGRES):
        assert len(compact(statement).encode()) <= psycopg._queries.MAX_CACHED_STATEMENT_LENGTH
