"""The store statement (chat/messages.py) on the real PostgreSQL: a batch finds its rows through
the indexes however many conversations and service sessions there are, in the generic plan a
prepared statement settles on (the probe runs in a process of its own pointed at a scratch
database)."""

import pytest

from tests.services import probe, scratch_postgres

pytestmark = pytest.mark.postgres


def test_a_batch_reads_no_table_whole_among_thousands_of_conversations_and_sessions():
    # given 3,000 conversations, each with a customer-service session (300 of them open), analyzed
    with scratch_postgres() as url:
        # when PostgreSQL plans the store of 64 messages into them, half counting on their session
        plan = probe("tests.chat.postgres_store_probe", url, "3000")["plan"]

    # then each table is reached through an index (a whole-table read grew with every conversation:
    # ~1.7 ms of the database's CPU a batch at 3,000), the sessions by their ids (a join with the
    # batch's sessions read every open one)
    for table in ("chat_conversation", "chat_participant", "chat_message", "customer_service_servicesession"):
        assert f"Seq Scan on {table}" not in plan, plan
    assert "Index Scan using chat_conversation_chat_id_key on chat_conversation" in plan, plan
    assert "Index Scan using customer_service_servicesession_pkey on customer_service_servicesession" in plan, plan
