"""The store statement (chat/messages.py) on the real PostgreSQL: a batch finds its rows through
the indexes however many conversations there are.

The probe runs in a process of its own pointed at a scratch database (this process's Django uses
SQLite), as tests/customer_service/test_search_postgres.py does.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.search import create_database, drop_database, migrate
from tests.services import require_postgres

pytestmark = pytest.mark.postgres
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def scratch_database():
    require_postgres()
    name, url = create_database()
    try:
        migrate(url)
        yield url
    finally:
        drop_database(name)


def test_a_batch_reads_no_table_whole_among_thousands_of_conversations(scratch_database):
    # given 3,000 private conversations, analyzed
    env = {**os.environ, "DATABASE_URL": scratch_database, "DJANGO_DEBUG": "1", "LOG_LEVEL": "WARNING"}
    done = subprocess.run([sys.executable, "-m", "tests.chat.postgres_store_probe", "3000"], check=False, cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]

    # when PostgreSQL plans the store of 64 messages into them
    plan = json.loads(done.stdout.strip().splitlines()[-1])["plan"]

    # then each table is reached through an index (a whole-table read grew with every conversation:
    # ~1.7 ms of the database's CPU a batch at 3,000)
    for table in ("chat_conversation", "chat_participant", "chat_message"):
        assert f"Seq Scan on {table}" not in plan, plan
    assert "Index Scan using chat_conversation_chat_id_key on chat_conversation" in plan, plan
