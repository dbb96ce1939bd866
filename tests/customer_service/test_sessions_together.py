"""First messages to a shop in one batch (services.sessions_open_together): the sessions are opened
and assigned together, as routing would assign them one after the other, in statements that do not
grow with the batch; whatever routing must decide alone (a queue, closed hours, no capacity) still
goes through it one by one. A burst of new consumers used to cost ~30 ms of the database thread
each, in a row, with every other message of the process waiting behind them."""

from collections.abc import Callable

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from chat import handlers
from chat.models import Message
from chat.protocol import Envelope
from customer_service import services
from customer_service.models import Assignment, ServiceAgent, ServiceSession, ShopHours, WebhookDelivery
from imchat.errors import Code
from tests import factories
from tests.customer_service.conftest import agent_frame, consumer_frame


@pytest.fixture
def batch(pushes) -> Callable:
    """Many chat.sendMsg at once, as the batcher sends them: [(user, content)] -> (frames, pushes)."""

    def send(*requests):
        with pushes() as sent:
            frames, _ = handlers.run_batch([
                (factories.caller_of(account), Envelope(cls="chat", action="sendMsg", content=content))
                for account, content in requests
            ])
        return frames, sent

    return send


@pytest.fixture
def consumers(db) -> list:
    return [factories.make_user(username=f"buyer{n}", nickname=f"Buyer {n}") for n in range(6)]


@pytest.fixture
def two_agents(shop, amy, ben, make_agent, connect):
    make_agent(shop, amy)
    make_agent(shop, ben)
    connect(amy)
    connect(ben)


def firsts(shop, people, text: str = "hi") -> list:
    return [(person, consumer_frame(shop.pk, f"{text} from {person.username}")) for person in people]


def test_first_messages_open_their_sessions_together_shared_out_as_routing_would(
    shop, amy, ben, consumers, two_agents, batch
):
    frames, sent = batch(*firsts(shop, consumers[:3]))

    assert [frame["code"] for frame in frames] == [1, 1, 1]
    sessions = list(ServiceSession.objects.filter(shop=shop).order_by("consumer_id"))
    # least busy, the longest waiting first on a tie: amy, ben, then amy again
    assert [(s.consumer_id, s.agent_id, s.state, s.first_seq) for s in sessions] == [
        (consumers[0].pk, amy.pk, "open", 1), (consumers[1].pk, ben.pk, "open", 1), (consumers[2].pk, amy.pk, "open", 1)]
    assert list(Assignment.objects.order_by("pk").values_list("session__consumer_id", "reason", "detail")) == [
        (person.pk, "strategy", shop.strategy) for person in consumers[:3]]
    for person, session in zip(consumers[:3], sessions):
        message = Message.objects.get(msg=f"hi from {person.username}")
        assert (message.seq, message.to_uid) == (1, session.agent_id)
        # the agent hears of the session, then gets the message; the consumer hears who serves them
        to_agent = [(s.code, s.result.get("event") or s.result["msg"]) for s in sent
                    if s.group == f"user.{session.agent_id}" and s.result["chat_id"] == message.conversation.chat_id]
        assert to_agent == [(Code.SESSION_EVENT, "assigned"), (Code.MESSAGE, f"hi from {person.username}")]
        assert [(s.result["event"], s.result["agent_uid"]) for s in sent
                if s.group == f"user.{person.pk}" and s.code == Code.SESSION_EVENT] == [("assigned", session.agent_id)]


def test_opening_takes_the_same_statements_for_two_sessions_as_for_four(shop, consumers, two_agents, batch,
                                                                        monkeypatch):
    counts = []
    real = services.sessions_open_together

    def counted(*args, **kwargs):
        with CaptureQueriesContext(connection) as queries:
            opened = real(*args, **kwargs)
        counts.append((len(opened), len(queries.captured_queries)))
        return opened

    monkeypatch.setattr(services, "sessions_open_together", counted)

    batch(*firsts(shop, consumers[:2]))
    batch(*firsts(shop, consumers[2:6]))

    assert ServiceSession.objects.filter(shop=shop, state="open").count() == 6
    (two, for_two), (four, for_four) = counts
    assert (two, four) == (2, 4)
    assert for_four == for_two <= 14


def test_a_consumer_goes_back_to_the_agent_who_served_them_last(shop, amy, ben, consumers, two_agents, batch):
    # given ben served the first consumer before, in a session since closed
    batch(*firsts(shop, consumers[:2]))  # consumers[0] -> amy, consumers[1] -> ben
    ServiceSession.objects.update(state="closed", closed_at=timezone.now())

    # when both write again, with a newcomer first in the batch
    batch(*firsts(shop, [consumers[2], consumers[1], consumers[0]], "back"))

    # then each returns to their agent; the newcomer got the strategy's pick
    live = dict(ServiceSession.objects.filter(state="open").values_list("consumer_id", "agent_id"))
    assert live[consumers[0].pk] == amy.pk and live[consumers[1].pk] == ben.pk
    reasons = dict(Assignment.objects.filter(session__state="open").values_list("session__consumer_id", "reason"))
    assert reasons == {consumers[0].pk: "last_agent", consumers[1].pk: "last_agent", consumers[2].pk: "strategy"}
    assert ServiceSession.objects.get(consumer=consumers[1], state="open").first_seq == 2


def test_beyond_every_agents_capacity_the_rest_queue_through_routing(shop, amy, ben, consumers, make_agent, connect,
                                                                      batch):
    make_agent(shop, amy, max_sessions=1)
    make_agent(shop, ben, max_sessions=1)
    connect(amy)
    connect(ben)

    frames, sent = batch(*firsts(shop, consumers[:4]))

    assert [frame["code"] for frame in frames] == [1, 1, 1, 1]
    states = dict(ServiceSession.objects.values_list("consumer_id", "state"))
    assert [states[person.pk] for person in consumers[:4]] == ["open", "open", "queued", "queued"]
    queued = [(s.group, s.result["queue_position"]) for s in sent
              if s.code == Code.SESSION_EVENT and s.result["event"] == "queued"]
    assert queued[:2] == [(f"user.{consumers[2].pk}", 1), (f"user.{consumers[3].pk}", 2)]
    assert Message.objects.filter(conversation__chat_id=f"{shop.pk}____{consumers[3].pk}", seq=1,
                                  msg=f"hi from {consumers[3].username}").exists()


def test_while_others_wait_in_the_queue_newcomers_join_its_end(shop, amy, consumers, make_agent, connect, batch):
    make_agent(shop, amy, max_sessions=1)
    connect(amy)
    batch(*firsts(shop, consumers[:2]))  # the second one waits
    ServiceAgent.objects.filter(user=amy).update(max_sessions=5)  # room now, but the queue goes first

    batch(*firsts(shop, consumers[2:4]))

    states = dict(ServiceSession.objects.values_list("consumer_id", "state"))
    assert [states[person.pk] for person in consumers[:4]] == ["open", "queued", "queued", "queued"]


def test_out_of_hours_first_messages_go_through_routing_and_wait(shop, consumers, two_agents, batch):
    tomorrow = (timezone.localtime().weekday() + 1) % 7
    ShopHours.objects.create(shop=shop, weekday=tomorrow, opens="09:00", closes="10:00")

    frames, _ = batch(*firsts(shop, consumers[:2]))

    assert [frame["code"] for frame in frames] == [1, 1]
    assert set(ServiceSession.objects.values_list("state", flat=True)) == {"queued"}


def test_the_shops_greeting_follows_each_first_message_once(shop, amy, consumers, two_agents, batch):
    services.shop_update(shop=shop, greeting="Welcome to the Tea House!")
    person = consumers[0]

    frames, sent = batch((person, consumer_frame(shop.pk, "one")), (person, consumer_frame(shop.pk, "two")),
                         *firsts(shop, consumers[1:2]))

    assert [frame["code"] for frame in frames] == [1, 1, 1]
    assert ServiceSession.objects.filter(consumer=person).count() == 1
    chat_id = f"{shop.pk}____{person.pk}"
    assert list(Message.objects.filter(conversation__chat_id=chat_id).order_by("seq").values_list("seq", "msg")) == [
        (1, "one"), (2, "two"), (3, "Welcome to the Tea House!")]
    to_consumer = [s.result["msg"] for s in sent if s.group == f"user.{person.pk}" and s.code == Code.MESSAGE]
    assert to_consumer == ["Welcome to the Tea House!"]
    assert Message.objects.filter(msg="Welcome to the Tea House!").count() == 2


def test_the_mall_hears_each_session_created_then_assigned(shop, consumers, two_agents, batch, settings):
    settings.IM_WEBHOOK_URL, settings.IM_WEBHOOK_SECRET = "https://mall.example.com/hooks", "s" * 32
    settings.IM_WEBHOOK_EVENTS = "default"

    batch(*firsts(shop, consumers[:2]))

    assert list(WebhookDelivery.objects.order_by("pk").values_list("event", flat=True)) == [
        "session.created", "session.created", "session.assigned", "session.assigned"]


def test_a_session_opened_meanwhile_is_not_opened_twice(shop, consumers, two_agents, batch, monkeypatch):
    # given the consumer's session is opened by another process after this batch read the sessions
    person = consumers[0]
    real = services.sessions_open_together

    def opened_elsewhere_first(shop_id, people, *, now):
        services.consumer_message_send(caller=factories.caller_of(person), shop_id=shop_id, msg_type=1,
                                       msg="from another process", client_msg_id=None)
        return real(shop_id, people, now=now)

    monkeypatch.setattr(services, "sessions_open_together", opened_elsewhere_first)

    # when
    frames, _ = batch(*firsts(shop, [person]))

    # then the message joins that session
    assert frames[0]["code"] == 1
    session = ServiceSession.objects.get(consumer=person)
    assert list(Message.objects.filter(conversation=session.conversation).order_by("seq").values_list(
        "msg", "to_uid")) == [("from another process", session.agent_id), (f"hi from {person.username}", session.agent_id)]


def test_a_shop_that_does_not_exist_and_an_agent_with_no_session_get_their_errors(shop, amy, consumers, two_agents,
                                                                                   batch):
    frames, _ = batch((consumers[0], consumer_frame(99999, "anyone?")),
                      (amy, agent_frame(shop.pk, consumers[1].pk, "hello stranger")),
                      (consumers[2], consumer_frame(shop.pk, "hello")))

    assert frames[0]["code"] == Code.NOT_FOUND
    assert frames[1]["code"] < 0  # no session with this consumer: routing's own answer
    assert frames[2]["code"] == 1
    assert not ServiceSession.objects.filter(consumer=consumers[1]).exists()


def test_a_failure_while_opening_sends_the_messages_through_routing(shop, consumers, two_agents, batch, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(services, "sessions_open_together", broken)

    frames, _ = batch(*firsts(shop, consumers[:2]))

    assert [frame["code"] for frame in frames] == [1, 1]
    assert ServiceSession.objects.filter(state="open").count() == 2
