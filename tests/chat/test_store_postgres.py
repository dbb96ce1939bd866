"""The store statement (chat/messages.py) on the real PostgreSQL: a batch finds its rows through
the indexes however many conversations there are (the probe runs in a process of its own pointed at
a scratch database)."""

import pytest

from tests.services import probe, scratch_postgres

pytestmark = pytest.mark.postgres


def test_a_batch_reads_no_table_whole_among_thousands_of_conversations():
    # given 3,000 private conversations, analyzed
    with scratch_postgres() as url:
        # when PostgreSQL plans the store of 64 messages into them
        plan = probe("tests.chat.postgres_store_probe", url, "3000")["plan"]

    # then each table is reached through an index (a whole-table read grew with every conversation:
    # ~1.7 ms of the database's CPU a batch at 3,000)
    for table in ("chat_conversation", "chat_participant", "chat_message"):
        assert f"Seq Scan on {table}" not in plan, plan
    assert "Index Scan using chat_conversation_chat_id_key on chat_conversation" in plan, plan
