"""Run by test_store_postgres.py in a process of its own whose DATABASE_URL is a scratch PostgreSQL
database (already migrated): opens N private conversations, analyzes, and prints as JSON how
PostgreSQL would run the store statement for a batch of 64 messages into them.

    DATABASE_URL=postgres://.../scratch python -m tests.chat.postgres_store_probe 3000
"""

import json
import os
import sys


def main(conversations: int) -> dict:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "imchat.settings")
    import django

    django.setup()
    from django.db import connection
    from django.utils import timezone

    from accounts.models import User
    from chat.messages import _STORE_SQL, store_params
    from chat.protocol import Caller
    from chat.services import private_conversations_open, private_draft
    from imchat.sql import prepared

    users = User.objects.bulk_create([User(username=f"probe-{index}", password="!")
                                      for index in range(2 * conversations)])
    drafts = [private_draft(caller=Caller(user=users[2 * index], base_url=""), to_uid=users[2 * index + 1].pk,
                            chat_id=None, msg_type=1, msg="hello", client_msg_id=f"probe-{index}")
              for index in range(conversations)]
    private_conversations_open(dict(enumerate(drafts)))
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    rows = prepared("EXPLAIN " + _STORE_SQL, store_params(drafts[:64], timezone.now()))  # as the store runs it
    return {"plan": "\n".join(row[0] for row in rows)}


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]))))
