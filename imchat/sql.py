"""Hot-path statements PostgreSQL prepares once per connection.

Django's cursor binds parameters on the client (every value quoted into the text, the plan made
anew each time); these go through a plain psycopg cursor with server-side parameters and
`prepare=True`, so a statement is planned once per connection and arrays travel as arrays. Write
their placeholders `%(name)b`: psycopg dumps a list in binary 3-9x faster than as array text
(where it quotes every element: ~0.4 ms a batch of 64 messages), and every Python int goes as a
bigint, so a statement keeps one set of parameter types (one preparation, whatever the values).
Each is sent compacted: psycopg caches its reading of a statement's text (placeholders to `$n`)
only up to 4,096 bytes and reads a longer one anew on every execution (~160 µs for the store).
Each thread keeps one such cursor for as long as its connection lives: making a cursor and its
adapters anew was ~50 µs of a ~130 µs statement call. `bounded` runs heavy reads (searches,
reports) under a time limit.
"""

import re
import threading
from collections.abc import Callable
from functools import lru_cache
from typing import TypeVar

import psycopg
from psycopg.types.numeric import Int8BinaryDumper
from django.db import DatabaseError, connection, transaction

T = TypeVar("T")


def prepared(sql: str, params: dict) -> list[tuple]:
    """Run one statement on PostgreSQL, prepared; its rows (empty when it returns none)."""
    connection.ensure_connection()
    with connection.wrap_database_errors:
        cursor = _cursor()
        cursor.execute(compact(sql), params, prepare=True, binary=True)
        return cursor.fetchall() if cursor.description else []


_thread = threading.local()


def _cursor() -> psycopg.Cursor:
    """This thread's cursor for prepared statements, made again when Django reconnects."""
    cursor = getattr(_thread, "cursor", None)
    if cursor is None or cursor.connection is not connection.connection:
        cursor = _thread.cursor = psycopg.Cursor(connection.connection)
        cursor.adapters.register_dumper(int, Int8BinaryDumper)
    return cursor


@lru_cache(maxsize=64)
def compact(sql: str) -> str:
    """The statement without its `--` comments, each run of whitespace one space (no statement of
    ours has either inside a string literal)."""
    return " ".join(re.sub(r"--[^\n]*", "", sql).split())


def in_list(values) -> tuple[str, list]:
    """`IN (%s, ...)` placeholders and their values, for the same statement elsewhere (SQLite)."""
    values = list(values)
    return ", ".join(["%s"] * len(values)) or "NULL", values


def bounded(work: Callable[[], T], *, timeout_ms: int, refusal: Callable[[], Exception]) -> T:
    """`work()` under `SET LOCAL statement_timeout` on PostgreSQL (a transaction of its own); past
    it, `refusal()` is raised instead (a request too broad to answer in time, never a 500)."""
    if connection.vendor != "postgresql":
        return work()
    try:
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL statement_timeout = %s", [int(timeout_ms)])
            return work()
    except DatabaseError as error:
        if getattr(error.__cause__, "sqlstate", None) == "57014":  # query_canceled
            raise refusal() from None
        raise

