"""Thirty days of past conversations of the demo shop, for the dashboard's report charts (the browser
test and the screenshots): `site.manage("shell", "-c", HISTORY)` after seeddemo.

Each day d (1..30 days ago) has 3 + d % 5 sessions, amy's and ben's in turn; amy answers faster;
every seventh goes unanswered; every third is rated. Their customers are history1, history2, ...
"""

HISTORY_DAYS = 30

HISTORY = """
from datetime import timedelta
from django.utils import timezone
from accounts.services import user_create
from chat.models import Conversation, Message
from customer_service.models import ServiceSession
now = timezone.now().replace(minute=0, second=0, microsecond=0)
amy, ben = 2002, 2003
n = 0
for days_ago in range(1, %(days)d + 1):
    for k in range(3 + days_ago %% 5):
        n += 1
        consumer = user_create(username=f"history{n}", nickname=f"Customer {n}")
        conversation = Conversation.objects.create(chat_id=f"1____{consumer.pk}", chat_type=4, shop_id=1)
        agent = amy if n %% 2 else ben
        start = now - timedelta(days=days_ago, hours=k * 2)
        wait = timedelta(seconds=10 + (n * 7) %% 50)
        answered = n %% 7 != 0
        reply = wait + timedelta(seconds=(30 if agent == amy else 90) + (n * 37) %% 240)
        closed = start + timedelta(minutes=10 + (n * 13) %% 40)
        rated = n %% 3 == 0
        session = ServiceSession.objects.create(
            shop_id=1, consumer=consumer, conversation=conversation, agent_id=agent, state="closed",
            queued_at=start, assigned_at=start + wait, first_assigned_at=start + wait,
            first_response_at=start + reply if answered else None, closed_at=closed, last_activity_at=closed,
            rating=(5 if agent == amy else 4) if rated else None, rated_at=closed if rated else None)
        ServiceSession.objects.filter(pk=session.pk).update(created_at=start)
        writes = [(consumer.pk, 0, start)] + ([(agent, 1, start + reply)] if answered else [])
        for seq, (sender, sent_as, moment) in enumerate(writes, start=1):
            Message.objects.create(conversation=conversation, seq=seq, sender_id=sender, sent_as=sent_as,
                                   chat_type=4, msg_type=1, msg="hello", shop_id=1, created_at=moment)
        Conversation.objects.filter(pk=conversation.pk).update(last_seq=len(writes), last_msg="hello",
                                                               last_time=writes[-1][2])
print(n)
""" % {"days": HISTORY_DAYS}
