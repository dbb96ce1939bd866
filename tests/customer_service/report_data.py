"""Hand-made sessions and messages for the reports' tests (customer_service/periods.py), the same on
SQLite (test_periods.py) and on PostgreSQL (postgres_periods_probe.py), so both paths can be compared.

The shop is in Europe/Berlin; 2026-03-29 is its DST day (23 hours). Local times, per session:
  s1 03-27 10:00 amy: assigned at once, first reply +30 s, closed +600 s, rated 5 that day
  s2 03-27 23:50 ben: assigned +120 s, first reply +200 s, closed 03-28 00:20 (spans midnight), rated 3 on 03-28
  s3 03-28 12:00 amy: assigned +60 s, never answered, closed +1800 s (closed without a first reply)
  s4 03-29 00:30 (03-28 23:30 UTC): queued, never assigned, still waiting
  s5 03-29 23:30 amy: assigned at once, first reply +10 s, still open
  (03-30: nothing)
  s6 03-31 09:00 ben: assigned +5 s, first reply +40 s, closed +100 s
plus a session of another shop on 03-27 that no report of this shop may count.
"""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from accounts.models import User
from chat.models import ChatType, Conversation, Message, SentAs
from customer_service.models import ServiceSession, Shop

BERLIN = ZoneInfo("Europe/Berlin")


def local(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=BERLIN)


def _user(username: str) -> User:
    return User.objects.create(username=username, nickname=username.title())


def build() -> dict[str, int]:
    """The data above in an empty database; returns the ids a test needs."""
    merchant, amy, ben = _user("rep-merchant"), _user("rep-amy"), _user("rep-ben")
    shop = Shop.objects.create(name="Report Tea", owner=merchant, timezone="Europe/Berlin")
    other = Shop.objects.create(name="Other Tea", owner=_user("rep-other"), timezone="Europe/Berlin")
    sessions = [
        # (shop, agent, created, assigned after, first reply after, closed after, rated (score, at))
        (shop, amy, "2026-03-27T10:00", 0, 30, 600, (5, "2026-03-27T10:20")),
        (shop, ben, "2026-03-27T23:50", 120, 200, 1800, (3, "2026-03-28T09:00")),
        (shop, amy, "2026-03-28T12:00", 60, None, 1800, None),
        (shop, None, "2026-03-29T00:30", None, None, None, None),
        (shop, amy, "2026-03-29T23:30", 0, 10, None, None),
        (shop, ben, "2026-03-31T09:00", 5, 40, 100, None),
        (other, None, "2026-03-27T11:00", 0, 1, 2, (1, "2026-03-27T11:30")),
    ]
    seq = 0
    for index, (owner, agent, created, assigned, first, closed, rated) in enumerate(sessions, start=1):
        consumer = _user(f"rep-customer{index}")
        conversation = Conversation.objects.create(chat_id=f"{owner.pk}____{consumer.pk}", chat_type=ChatType.SERVICE,
                                                   shop_id=owner.pk)
        start = local(created)

        def after(seconds):
            return None if seconds is None else start + timedelta(seconds=seconds)

        session = ServiceSession.objects.create(
            shop=owner, consumer=consumer, conversation=conversation, agent=agent,
            state="closed" if closed is not None else ("open" if agent else "queued"), queued_at=start,
            assigned_at=after(assigned), first_assigned_at=after(assigned), first_response_at=after(first),
            closed_at=after(closed), last_activity_at=start,
            rating=rated[0] if rated else None, rated_at=local(rated[1]) if rated else None)
        ServiceSession.objects.filter(pk=session.pk).update(created_at=start)  # auto_now_add overrode it
        # The customer writes at the start, the agent at the first reply, a shop notice (not counted) too.
        writes = [(consumer, SentAs.USER, start), (None, SentAs.SYSTEM, start)]
        if first is not None:
            writes.append((agent, SentAs.SERVICE, after(first)))
        for sender, sent_as, moment in writes:
            seq += 1
            Message.objects.create(conversation=conversation, seq=seq, sender=sender, sent_as=sent_as,
                                   chat_type=ChatType.SERVICE, msg_type=1, msg="hello", shop_id=owner.pk,
                                   created_at=moment)
    # A private message that day: never a shop's.
    Message.objects.create(conversation=Conversation.objects.create(chat_id=f"{amy.pk}_{ben.pk}", chat_type=1),
                           seq=1, sender=amy, chat_type=ChatType.PRIVATE, msg_type=1, msg="hi",
                           created_at=local("2026-03-27T12:00"))
    return {"shop": shop.pk, "other": other.pk, "amy": amy.pk, "ben": ben.pk, "merchant": merchant.pk}
