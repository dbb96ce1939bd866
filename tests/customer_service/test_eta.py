"""Queue ETA: the `eta_seconds` of the queued 305 (customer_service/eta.py), and its one query per push."""

from datetime import timedelta

import pytest
from django.utils import timezone

from chat.models import Conversation
from customer_service import eta, services
from customer_service.models import ServiceAgent, ServiceSession
from imchat.errors import Code
from tests import factories

OFFLINE = ServiceAgent.Status.OFFLINE


def history(shop, agent, *durations: float, ago: timedelta = timedelta(hours=1), idle_tail: float = 0) -> None:
    """Closed sessions of the shop that `agent` held for these many seconds each (plus `idle_tail`
    seconds of silence before the close)."""
    now = timezone.now()
    for index, seconds in enumerate(durations):
        consumer = factories.make_user()
        conversation = Conversation.objects.create(chat_id=f"{shop.pk}____{consumer.pk}", chat_type=4,
                                                   shop_id=shop.pk)
        assigned = now - ago - timedelta(seconds=seconds + idle_tail + index)
        ended = assigned + timedelta(seconds=seconds)
        ServiceSession.objects.create(shop=shop, consumer=consumer, conversation=conversation, agent=agent,
                                      state="closed", assigned_at=assigned, last_activity_at=ended,
                                      closed_at=ended + timedelta(seconds=idle_tail))


# --- The estimator ------------------------------------------------------------------------------


@pytest.mark.parametrize("mean, slots, position, expected", [
    (600.0, 4, 1, 150),
    (600.0, 4, 3, 450),
    (100.0, 3, 1, 34),  # rounded up
    (0.001, 1, 1, 1),  # at least a second
    (None, 4, 1, None),  # no history
    (600.0, 0, 1, None),  # nobody online: nobody can say when someone comes
])
def test_the_wait_is_the_position_times_the_mean_handling_time_over_the_online_slots(mean, slots, position,
                                                                                     expected):
    assert eta.Pace(mean, slots).eta_seconds(position) == expected


def test_the_silence_before_an_idle_close_is_not_handling_time(settings):
    start = timezone.now()
    idle = settings.IM_SESSION_IDLE_SECONDS

    by_agent = eta.handling_seconds(assigned_at=start, last_activity_at=start + timedelta(seconds=200),
                                    closed_at=start + timedelta(seconds=260))
    idle_closed = eta.handling_seconds(assigned_at=start, last_activity_at=start + timedelta(seconds=200),
                                       closed_at=start + timedelta(seconds=200 + idle + 5))

    assert by_agent == 260
    assert idle_closed == 200


def test_the_shops_pace_comes_from_its_recent_closed_sessions_and_its_online_capacity(
        shop, amy, ben, merchant, make_agent, django_assert_num_queries):
    make_agent(shop, amy, max_sessions=3)
    make_agent(shop, ben, max_sessions=2)
    make_agent(shop, merchant, status=OFFLINE, max_sessions=50)  # offline: no slots
    history(shop, amy, 100, 300)
    history(shop, ben, 200, idle_tail=4000)  # idle-closed: 200 s of work
    history(shop, amy, 99999, ago=timedelta(days=2))  # too old to count
    other = services.shop_create(name="Other", owner=merchant)
    history(other, amy, 5000)  # another shop's

    with django_assert_num_queries(1):
        pace = eta.shop_pace(shop.pk)

    assert pace == eta.Pace(200.0, 5)
    assert pace.eta_seconds(2) == 80


def test_the_sample_is_the_newest_sessions(shop, amy, make_agent, settings):
    make_agent(shop, amy, max_sessions=1)
    settings.IM_ETA_SAMPLE = 2
    history(shop, amy, 10, 20, 30)  # the one of 30 s closed longest ago

    assert eta.shop_pace(shop.pk).mean_handling == 15.0


def test_with_no_history_the_pace_knows_no_wait(shop, amy, make_agent):
    make_agent(shop, amy)

    assert eta.shop_pace(shop.pk) == eta.Pace(None, 0)


# --- In the queued 305 ------------------------------------------------------------------------------


def test_a_consumer_queued_behind_a_full_agent_is_told_the_estimated_wait(
        shop, amy, consumer, consumer2, consumer3, make_agent, connect, say):
    # given: amy (one slot) usually takes 10 minutes; she is busy with cora
    make_agent(shop, amy, max_sessions=1)
    connect(amy)
    history(shop, amy, 600, 600)
    say(consumer, shop, "hi")

    # when two more arrive
    second = say(consumer2, shop, "me too")
    third = say(consumer3, shop, "and me")

    # then: first and second in the queue, 10 and 20 minutes
    [queued2] = second.to(f"user.{consumer2.pk}", Code.SESSION_EVENT)
    [queued3] = third.to(f"user.{consumer3.pk}", Code.SESSION_EVENT)
    assert (queued2["event"], queued2["queue_position"], queued2["eta_seconds"]) == ("queued", 1, 600)
    assert (queued3["event"], queued3["queue_position"], queued3["eta_seconds"]) == ("queued", 2, 1200)


def test_when_the_queue_moves_every_waiting_consumer_gets_a_new_eta_from_one_query(
        shop, amy, consumer, consumer2, consumer3, make_agent, connect, say, pushes, django_assert_num_queries):
    # given: amy full; two wait; amy's history says 5 minutes a session
    make_agent(shop, amy, max_sessions=1)
    connect(amy)
    history(shop, amy, 300)
    for person in (consumer, consumer2, consumer3):
        say(person, shop, "hi")
    ServiceSession.objects.filter(consumer=consumer3).update(state="closed", closed_at=timezone.now())

    # when the queue moves (the second waiting one left): two statements, whatever the queue's length
    with pushes() as sent, django_assert_num_queries(2):
        services.push_queue_positions(shop.pk)

    # then
    [event] = [s.result for s in sent if s.code == Code.SESSION_EVENT]
    assert (event["chat_id"], event["queue_position"], event["eta_seconds"]) == (
        f"{shop.pk}____{consumer2.pk}", 1, 300)


def test_with_nobody_online_the_eta_is_null(shop, amy, consumer, make_agent, say):
    make_agent(shop, amy, status=OFFLINE)
    history(shop, amy, 300)

    queued = say(consumer, shop, "anyone?")

    [event] = queued.to(f"user.{consumer.pk}", Code.SESSION_EVENT)
    assert event["event"] == "queued" and event["eta_seconds"] is None
