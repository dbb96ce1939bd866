"""Hot-path statements PostgreSQL prepares once per connection.

Django's cursor binds parameters on the client (every value quoted into the text, the plan made
anew each time); these go through a plain psycopg cursor with server-side parameters and
`prepare=True`, so a statement is planned once per connection and arrays travel as arrays.
"""

import psycopg
from django.db import connection


def prepared(sql: str, params: dict) -> list[tuple]:
    """Run one statement on PostgreSQL, prepared; its rows (empty when it returns none)."""
    connection.ensure_connection()
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(sql, params, prepare=True)
        return cursor.fetchall() if cursor.description else []


def in_list(values) -> tuple[str, list]:
    """`IN (%s, ...)` placeholders and their values, for the same statement elsewhere (SQLite)."""
    values = list(values)
    return ", ".join(["%s"] * len(values)) or "NULL", values
