"""Customer-service messages in a batch (chat/sending.py + services.service_plan): a message whose
session is open with an agent who keeps it is stored with the batch, with no shop lock and one read
for all the batch's sessions (on SQLite every batch reads; PostgreSQL keeps what it read:
tests/e2e/test_batching_postgres.py); anything that changed goes through routing, one by one."""

from collections.abc import Callable

import pytest

from chat import handlers
from chat.presence import presence
from chat.models import Message
from chat.protocol import Envelope
from customer_service import selectors, services
from customer_service.models import Assignment, ServiceAgent, ServiceSession
from imchat.errors import Code
from tests import factories
from tests.customer_service.conftest import consumer_frame


def user(account) -> str:
    return f"user.{account.pk}"


@pytest.fixture
def batch(pushes) -> Callable:
    """Send many chat.sendMsg at once, as the batcher does: [(user, content)] -> (frames, pushes)."""

    def send(*requests):
        with pushes() as sent:
            frames, _ = handlers.run_batch([
                (factories.caller_of(account), Envelope(cls="chat", action="sendMsg", content=content))
                for account, content in requests
            ])
        return frames, sent

    return send


@pytest.fixture
def counted(monkeypatch) -> dict[str, int]:
    """How often the batch locked a shop and read live sessions."""
    calls = {"lock_shop": 0, "live_sessions_of": 0}
    for module, name in ((services, "lock_shop"), (selectors, "live_sessions_of")):
        real = getattr(module, name)

        def counting(*args, _real=real, _name=name, **kwargs):
            calls[_name] += 1
            return _real(*args, **kwargs)

        monkeypatch.setattr(module, name, counting)
    return calls


@pytest.fixture
def three_open_sessions(shop, amy, ben, consumer, consumer2, consumer3, make_agent, connect, say):
    """amy and ben online and connected; three consumers each with an open session."""
    make_agent(shop, amy)
    make_agent(shop, ben)
    connect(amy)
    connect(ben)
    for someone in (consumer, consumer2, consumer3):
        assert say(someone, shop, "first").code == 1
    return {session.consumer_id: session.agent_id for session in ServiceSession.objects.filter(shop=shop)}


def test_messages_in_sticky_sessions_are_stored_together_with_no_shop_lock_and_one_read(
    shop, consumer, consumer2, consumer3, three_open_sessions, batch, counted
):
    frames, sent = batch(*((someone, consumer_frame(shop.pk, f"again from {someone.username}"))
                           for someone in (consumer, consumer2, consumer3)))

    assert [frame["code"] for frame in frames] == [1, 1, 1]
    assert counted == {"lock_shop": 0, "live_sessions_of": 1}
    for someone in (consumer, consumer2, consumer3):
        agent_id = three_open_sessions[someone.pk]
        to_agent = [s.result for s in sent if s.group == f"user.{agent_id}" and s.code == Code.MESSAGE
                    and s.result["from_uid"] == someone.pk]
        assert [(m["msg"], m["to_uid"]) for m in to_agent] == [(f"again from {someone.username}", agent_id)]
    assert Assignment.objects.count() == 3  # nobody was assigned again


def test_an_agents_answer_in_their_own_session_is_stored_together_and_marks_the_first_response(
    shop, consumer, three_open_sessions, batch, counted
):
    agent = ServiceAgent.objects.get(shop=shop, user_id=three_open_sessions[consumer.pk]).user
    session = ServiceSession.objects.get(consumer=consumer)
    assert session.first_response_at is None

    frames, sent = batch((agent, {"to_uid": consumer.pk, "chat_type": 4, "msg_type": 1, "msg": "how can I help?",
                                  "chat_id": f"{shop.pk}____{consumer.pk}", "shop_id": shop.pk, "role_type": 1}))

    assert frames[0]["code"] == 1
    assert counted["lock_shop"] == 0
    pushed = [s.result for s in sent if s.group == user(consumer) and s.code == Code.MESSAGE]
    assert [(m["nickname"], m["service_nickname"], m["from_uid"]) for m in pushed] == [
        (shop.name, agent.display_name, agent.pk)]
    session.refresh_from_db()
    assert session.first_response_at is not None


def test_an_agent_set_offline_by_another_process_is_seen_by_the_next_batch(
    shop, amy, ben, consumer, three_open_sessions, batch
):
    # given the database says the consumer's agent went offline (as another process would write it)
    agent_id = three_open_sessions[consumer.pk]
    other = ben if agent_id == amy.pk else amy
    ServiceAgent.objects.filter(shop=shop, user_id=agent_id).update(status=ServiceAgent.Status.OFFLINE)

    # when the consumer writes again
    frames, sent = batch((consumer, consumer_frame(shop.pk, "still there?")))

    # then routing moved the session to the colleague, with the backlog
    assert frames[0]["code"] == 1
    assert ServiceSession.objects.get(consumer=consumer, state="open").agent_id == other.pk
    assert Message.objects.get(msg="still there?").to_uid == other.pk
    assert [s.result["event"] for s in sent if s.group == user(other) and s.code == Code.SESSION_EVENT] == ["assigned"]


def test_an_agent_whose_last_socket_closed_is_not_taken_for_connected(
    shop, consumer, three_open_sessions, batch, counted
):
    # given the consumer's agent has just closed their last socket (within the grace period)
    agent_id = three_open_sessions[consumer.pk]
    for channel in list(presence()._sockets[agent_id]):
        presence().disconnected(agent_id, channel)

    # when
    frames, _ = batch((consumer, consumer_frame(shop.pk, "hello?")))

    # then the message went through routing: kept through the grace, recorded as sticky
    assert frames[0]["code"] == 1
    assert counted["lock_shop"] == 0  # sticky needs no lock either
    assert Message.objects.get(msg="hello?").to_uid == agent_id
    assert Assignment.objects.filter(session__consumer=consumer, reason=Assignment.Reason.STICKY).count() == 1


def test_a_session_closed_after_the_batch_looked_goes_through_routing_not_to_the_closed_session(
    shop, consumer, three_open_sessions, batch, monkeypatch
):
    # given the session closes (an agent's close, another process) right after the batch read it
    real = selectors.live_sessions_of

    def read_then_close(chat_ids):
        found = real(chat_ids)
        ServiceSession.objects.filter(consumer=consumer).update(state=ServiceSession.State.CLOSED)
        return found

    monkeypatch.setattr(selectors, "live_sessions_of", read_then_close)

    # when
    frames, _ = batch((consumer, consumer_frame(shop.pk, "after the close")))

    # then a new session carries the message, not the closed one
    assert frames[0]["code"] == 1
    message = Message.objects.get(msg="after the close")
    live = ServiceSession.objects.get(consumer=consumer, state="open")
    assert live.first_seq == message.seq


def test_a_session_gone_idle_is_left_out_of_the_batch_and_routing_closes_it(
    shop, consumer, three_open_sessions, batch, settings
):
    # given the consumer's session has seen nothing for longer than the idle limit
    from datetime import timedelta

    from django.utils import timezone

    old = timezone.now() - timedelta(seconds=settings.IM_SESSION_IDLE_SECONDS + 60)
    ServiceSession.objects.filter(consumer=consumer).update(last_activity_at=old)

    # when
    frames, _ = batch((consumer, consumer_frame(shop.pk, "back after a while")))

    # then the idle session was closed and the message opens a new one
    assert frames[0]["code"] == 1
    message = Message.objects.get(msg="back after a while")
    states = list(ServiceSession.objects.filter(consumer=consumer).order_by("pk").values_list("state", "first_seq"))
    assert states == [("closed", 1), ("open", message.seq)]
