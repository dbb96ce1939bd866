"""Run by test_store_postgres.py in a process of its own whose DATABASE_URL is a scratch PostgreSQL
database (already migrated): opens N conversations, each with a customer-service session (one in ten
open, the rest closed), analyzes, and prints as JSON how PostgreSQL would run the store statement
for a batch of 64 messages into them, half of them counting on an open session: its generic plan,
the one a prepared statement settles on after five runs.

    DATABASE_URL=postgres://.../scratch python -m tests.chat.postgres_store_probe 3000
"""

import json
import os
import sys
from dataclasses import replace


def main(conversations: int) -> dict:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "imchat.settings")
    import django

    django.setup()
    from django.db import connection
    from django.utils import timezone

    from accounts.models import User
    from chat.messages import _STORE_SQL, Served, store_params
    from chat.models import Conversation
    from chat.protocol import Caller
    from chat.services import private_conversations_open, private_draft
    from customer_service.models import ServiceSession, Shop
    from imchat.sql import prepared

    users = User.objects.bulk_create([User(username=f"probe-{index}", password="!")
                                      for index in range(2 * conversations)])
    drafts = [private_draft(caller=Caller(user=users[2 * index], base_url=""), to_uid=users[2 * index + 1].pk,
                            chat_id=None, msg_type=1, msg="hello", client_msg_id=f"probe-{index}")
              for index in range(conversations)]
    private_conversations_open(dict(enumerate(drafts)))
    shop = Shop.objects.create(owner=users[0], name="probe shop")
    conversations = Conversation.objects.in_bulk([draft.chat_id for draft in drafts], field_name="chat_id")
    now = timezone.now()
    sessions = ServiceSession.objects.bulk_create([
        ServiceSession(shop=shop, consumer_id=draft.sender_id, conversation=conversations[draft.chat_id], agent=users[1],
                       state=ServiceSession.State.OPEN if index % 10 == 0 else ServiceSession.State.CLOSED,
                       last_activity_at=now)
        for index, draft in enumerate(drafts)])
    batch = []
    for position, index in enumerate(range(0, 640, 10)):  # 64 conversations whose sessions are open
        draft = drafts[index]
        if position % 2 == 0:  # half count on their session: an agent's answer or a consumer's message
            draft = replace(draft, served=Served(session_id=sessions[index].pk, agent_id=users[1].pk,
                                                 answered=position % 4 == 0, stamp="probe"))
        batch.append(draft)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
        cursor.execute("SET plan_cache_mode = force_generic_plan")
    rows = prepared("EXPLAIN " + _STORE_SQL, store_params(batch, now))  # as the store runs it
    return {"plan": "\n".join(row[0] for row in rows)}


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]))))
