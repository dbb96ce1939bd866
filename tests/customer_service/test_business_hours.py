"""Business hours and the greeting (issue 15, item 2) through the socket's handler table.

Outside the hours a consumer's message is queued even with an agent online, and the shop answers
once per session with its out-of-hours message; a session started in hours gets the greeting once.
The queue moves when the shop opens (the periodic job) or when its hours change.
"""

from datetime import UTC, datetime, time, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from chat.models import Message, SentAs
from customer_service import services
from customer_service.hours import Interval
from customer_service.models import Assignment, ServiceSession, Shop, ShopClosedDay, ShopHours
from imchat.errors import AppError, Code
from tests.factories import BASE_URL

GREETING = "Welcome to the Tea House! How can we help?"
WHOLE_DAY = [Interval(day, time(0), time(0)) for day in range(7)]


def utc_today():
    return datetime.now(UTC).date()


def close_around_now(shop) -> datetime:
    """Hours that are closed today (UTC, a day either side); returns the next opening."""
    days = [utc_today() + timedelta(days=n) for n in (-1, 0, 1)]
    services.shop_hours_set(shop=shop, timezone_name="UTC", intervals=WHOLE_DAY,
                            closed_days=[(day, "stocktaking") for day in days])
    return datetime.combine(utc_today() + timedelta(days=2), time(0), tzinfo=UTC)


def open_all_week(shop) -> None:
    services.shop_hours_set(shop=shop, timezone_name="Europe/Berlin", intervals=WHOLE_DAY, closed_days=[])


@pytest.fixture
def greeting_shop(shop):
    return services.shop_update(shop=shop, greeting=GREETING)


def shop_messages(shop, consumer) -> list[Message]:
    return list(Message.objects.filter(conversation__chat_id=f"{shop.pk}____{consumer.pk}").order_by("seq"))


def texts(outcome, group: str) -> list[str]:
    return [m["msg"] for m in outcome.to(group, Code.MESSAGE)]


# --- Outside the hours -----------------------------------------------------------------------------


def test_outside_hours_a_message_is_queued_even_with_an_agent_online(shop, amy, consumer, make_agent, connect,
                                                                      say):
    # given an online, connected agent, and a shop closed now
    make_agent(shop, amy)
    connect(amy)
    opens = close_around_now(shop)

    # when
    sent = say(consumer, shop, "do you ship on Sundays?")

    # then the session waits in the queue, and the consumer hears why
    assert sent.code == Code.OK
    session = ServiceSession.objects.get(shop=shop, consumer=consumer)
    assert session.state == ServiceSession.State.QUEUED and session.agent_id is None
    assert session.out_of_hours_at is not None
    assert sent.to(f"user.{consumer.pk}", Code.SESSION_EVENT) == [{
        "chat_id": f"{shop.pk}____{consumer.pk}", "shop_id": shop.pk, "event": "queued", "agent_uid": 0,
        "queue_position": 1, "eta_seconds": None, "reason": "out_of_hours"}]
    assert not sent.to(f"user.{amy.pk}")
    stored = shop_messages(shop, consumer)
    assert [m.sent_as for m in stored] == [SentAs.USER, SentAs.SYSTEM]
    assert f"{opens.day} {opens:%b} 00:00 (UTC)" in stored[1].msg  # the next opening, in the shop's time
    assert stored[1].msg.startswith("We are closed right now and open again")
    pushed = sent.to(f"user.{consumer.pk}", Code.MESSAGE)
    assert [(m["from_uid"], m["nickname"], m["seq"]) for m in pushed] == [(0, "Tea House", 2)]


def test_the_out_of_hours_message_goes_once_per_session_and_no_offline_notice_with_it(shop, consumer, say):
    # given a closed shop with no agent at all (the offline notice would be due)
    close_around_now(shop)

    # when the consumer writes three times
    outcomes = [say(consumer, shop, f"hello {n}") for n in range(3)]

    # then one out-of-hours message, after the first, and never the offline notice
    stored = shop_messages(shop, consumer)
    assert [m.sent_as for m in stored] == [SentAs.USER, SentAs.SYSTEM, SentAs.USER, SentAs.USER]
    assert all(m.msg != shop.offline_notice for m in stored)
    assert [len(o.to(f"user.{consumer.pk}", Code.MESSAGE)) for o in outcomes] == [1, 0, 0]


def test_outside_hours_there_is_no_greeting(greeting_shop, consumer, say):
    close_around_now(greeting_shop)
    say(consumer, greeting_shop)
    assert GREETING not in [m.msg for m in shop_messages(greeting_shop, consumer)]


def test_an_agent_coming_online_outside_hours_takes_nothing_but_may_claim_by_answering(
        shop, amy, consumer, make_agent, connect, say, answer, ask):
    # given a consumer waiting out of hours
    close_around_now(shop)
    say(consumer, shop, "anyone there?")
    make_agent(shop, amy, status="offline")
    connect(amy)

    # when the agent goes online: the queue does not move
    ask(amy, "service", "setStatus", {"status": "online"})
    assert ServiceSession.objects.get(shop=shop, consumer=consumer).state == ServiceSession.State.QUEUED

    # when the agent answers deliberately: the session is theirs, as ever
    reply = answer(amy, shop, consumer, "we are closed, but here is the answer")
    assert reply.code == Code.OK
    session = ServiceSession.objects.get(shop=shop, consumer=consumer)
    assert (session.state, session.agent_id) == (ServiceSession.State.OPEN, amy.pk)
    assert session.assignments.last().reason == Assignment.Reason.CLAIM


# --- The opening -----------------------------------------------------------------------------------


def test_the_queue_waits_through_the_night_and_drains_when_the_shop_opens(shop, amy, consumer, make_agent,
                                                                          connect, say, pushes):
    # given a consumer queued out of hours, and an agent online
    make_agent(shop, amy)
    connect(amy)
    opens = close_around_now(shop)
    say(consumer, shop, "please call me back")

    # when the periodic job runs late at night (hours after the message): not idle-closed, not assigned
    with pushes():
        services.sessions_close_idle(base_url=BASE_URL, now=opens - timedelta(minutes=1))
    assert ServiceSession.objects.get(shop=shop, consumer=consumer).state == ServiceSession.State.QUEUED

    # when it runs just after the opening
    with pushes() as sent:
        services.sessions_close_idle(base_url=BASE_URL, now=opens + timedelta(seconds=30))

    # then amy has the session and its backlog (the out-of-hours message included)
    session = ServiceSession.objects.get(shop=shop, consumer=consumer)
    assert (session.state, session.agent_id) == (ServiceSession.State.OPEN, amy.pk)
    backlog = [m["msg"] for s in sent if s.group == f"user.{amy.pk}" and s.code == Code.MESSAGE for m in [s.result]]
    assert backlog[0] == "please call me back" and backlog[1].startswith("We are closed")


def test_opening_the_shop_by_changing_its_hours_drains_the_queue(shop, amy, consumer, make_agent, connect, say,
                                                                 pushes):
    make_agent(shop, amy)
    connect(amy)
    close_around_now(shop)
    say(consumer, shop)
    with pushes() as sent:
        open_all_week(shop)
    assert ServiceSession.objects.get(shop=shop, consumer=consumer).agent_id == amy.pk
    assert sorted((s.group, s.result["event"]) for s in sent if s.code == Code.SESSION_EVENT) == sorted(
        [(f"user.{amy.pk}", "assigned"), (f"user.{consumer.pk}", "assigned")])


def test_a_queued_305_keeps_its_reason_while_the_queue_moves_out_of_hours(shop, amy, consumer, consumer2,
                                                                          make_agent, connect, say, answer):
    make_agent(shop, amy)
    close_around_now(shop)
    say(consumer, shop)
    say(consumer2, shop)
    # when amy claims the first: the second moves up, still out of hours
    moved = answer(amy, shop, consumer)
    assert moved.to(f"user.{consumer2.pk}", Code.SESSION_EVENT)[-1] == {
        "chat_id": f"{shop.pk}____{consumer2.pk}", "shop_id": shop.pk, "event": "queued", "agent_uid": 0,
        "queue_position": 1, "eta_seconds": None, "reason": "out_of_hours"}


# --- The greeting ----------------------------------------------------------------------------------


def test_the_greeting_goes_once_when_a_session_starts_in_hours(greeting_shop, amy, consumer, make_agent, connect,
                                                               say):
    # given a shop open now with an agent
    open_all_week(greeting_shop)
    make_agent(greeting_shop, amy)
    connect(amy)

    # when the consumer writes twice
    first = say(consumer, greeting_shop, "hi")
    second = say(consumer, greeting_shop, "anyone?")

    # then the greeting follows the first message only, and the agent sees it too, in seq order
    stored = shop_messages(greeting_shop, consumer)
    assert [(m.seq, m.msg, m.sent_as) for m in stored] == [
        (1, "hi", SentAs.USER), (2, GREETING, SentAs.SYSTEM), (3, "anyone?", SentAs.USER)]
    assert texts(first, f"user.{consumer.pk}") == [GREETING]
    assert texts(first, f"user.{amy.pk}") == ["hi", GREETING]
    assert texts(second, f"user.{consumer.pk}") == []


def test_a_new_session_after_a_close_is_greeted_again(greeting_shop, amy, consumer, make_agent, connect, say, ask):
    make_agent(greeting_shop, amy)
    connect(amy)
    say(consumer, greeting_shop, "one")
    ask(amy, "service", "close", {"chat_id": f"{greeting_shop.pk}____{consumer.pk}"})
    say(consumer, greeting_shop, "two")
    assert [m.msg for m in shop_messages(greeting_shop, consumer)] == ["one", GREETING, "two", GREETING]


def test_in_hours_with_nobody_online_the_greeting_comes_before_the_offline_notice(greeting_shop, consumer, say):
    say(consumer, greeting_shop, "hi")
    assert [m.msg for m in shop_messages(greeting_shop, consumer)] == ["hi", GREETING, greeting_shop.offline_notice]


def test_a_shop_without_hours_or_greeting_behaves_as_before(shop, amy, consumer, make_agent, connect, say):
    make_agent(shop, amy)
    connect(amy)
    sent = say(consumer, shop, "hi")
    assert ServiceSession.objects.get(shop=shop, consumer=consumer).agent_id == amy.pk
    assert [m.msg for m in shop_messages(shop, consumer)] == ["hi"]
    assert "reason" not in sent.to(f"user.{consumer.pk}", Code.SESSION_EVENT)[0]


def test_ordinary_messages_never_read_the_hours(greeting_shop, amy, consumer, make_agent, connect, say):
    open_all_week(greeting_shop)
    make_agent(greeting_shop, amy)
    connect(amy)
    say(consumer, greeting_shop, "first")
    with CaptureQueriesContext(connection) as queries:
        say(consumer, greeting_shop, "second")
    assert not [q for q in queries.captured_queries if ShopHours._meta.db_table in q["sql"]
                or ShopClosedDay._meta.db_table in q["sql"]]


# --- Setting the hours, and reading them over the socket -------------------------------------------


@pytest.mark.parametrize(("change", "complaint"), [
    ({"timezone_name": "Mars/Olympus"}, "timezone"),
    ({"intervals": [Interval(0, time(9), time(12)), Interval(0, time(11), time(13))]}, "overlaps"),
    ({"intervals": [Interval(9, time(9), time(12))]}, "weekday"),
    ({"closed_days": [(datetime(2027, 1, 1).date(), "a"), (datetime(2027, 1, 1).date(), "b")]}, "twice"),
])
def test_bad_hours_are_refused_and_change_nothing(shop, change, complaint):
    open_all_week(shop)
    arguments = {"shop": shop, "timezone_name": "UTC", "intervals": [], "closed_days": [], **change}
    with pytest.raises(AppError, match=complaint) as raised:
        services.shop_hours_set(**arguments)
    assert raised.value.code == Code.BAD_REQUEST
    assert Shop.objects.get(pk=shop.pk).timezone == "Europe/Berlin"
    assert ShopHours.objects.filter(shop=shop).count() == 7


def test_anyone_reads_a_shops_hours_over_the_socket(shop, consumer, ask):
    opens = close_around_now(shop)
    outcome = ask(consumer, "service", "shopInfo", {"shop_id": shop.pk})
    assert outcome.code == Code.OK
    info = outcome.result
    assert info["shop_id"] == shop.pk and info["name"] == "Tea House"
    assert info["logo"] == "http://testserver/media/shops/tea.png"
    assert (info["open_now"], info["always_open"], info["next_opening"]) == (False, False, int(opens.timestamp()))
    assert info["timezone"] == "UTC" and len(info["schedule"]) == 7
    assert info["schedule"][0] == {"weekday": 0, "opens": "00:00", "closes": "00:00"}
    assert info["closed_days"] == [(utc_today() + timedelta(days=n)).isoformat() for n in (0, 1)]


def test_a_shop_without_hours_reads_always_open(shop, consumer, ask):
    info = ask(consumer, "service", "shopInfo", {"shop_id": shop.pk}).result
    assert (info["open_now"], info["always_open"], info["next_opening"], info["schedule"]) == (True, True, None, [])


@pytest.mark.parametrize(("content", "code"), [
    ({"shop_id": 999999}, Code.NOT_FOUND), ({}, Code.BAD_REQUEST), ({"shop_id": "x"}, Code.BAD_REQUEST),
    ({"shop_id": -1}, Code.BAD_REQUEST), ({"shop_id": 10**30}, Code.BAD_REQUEST),
])
def test_shop_info_refuses_bad_ids(shop, consumer, ask, content, code):
    assert ask(consumer, "service", "shopInfo", content).code == code
