"""Customer-service routing (PROTOCOL.md sections 4 and 5) through the socket's handler table.

Agents are "connected" by recording presence the way a socket does; pushes are what the committed
writes hand the consumer for sending.
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.services import user_create
from chat import handlers
from chat.models import Conversation, Message, SentAs
from customer_service import services
from customer_service.models import Assignment, ServiceAgent, ServiceSession
from imchat.errors import Code
from tests import factories
from tests.customer_service.conftest import agent_frame, consumer_frame
from tests.factories import BASE_URL

ONLINE, BUSY, OFFLINE = ServiceAgent.Status.ONLINE, ServiceAgent.Status.BUSY, ServiceAgent.Status.OFFLINE


def user(u) -> str:
    return f"user.{u.pk}"


def agents_of(shop) -> str:
    return f"shop.{shop.pk}.agents"


def chat_id(shop, consumer) -> str:
    return f"{shop.pk}____{consumer.pk}"


def live_session(shop, consumer) -> ServiceSession:
    return ServiceSession.objects.exclude(state="closed").get(shop=shop, consumer=consumer)


def event(outcome, group: str) -> list[dict]:
    return outcome.to(group, Code.SESSION_EVENT)


def messages_to(outcome, group: str) -> list[dict]:
    return outcome.to(group, Code.MESSAGE)


# --- The first message, and stickiness -----------------------------------------------------------


def test_a_consumers_first_message_goes_to_an_available_agent(shop, amy, consumer, make_agent, connect, say):
    # given
    make_agent(shop, amy)
    connect(amy)

    # when
    sent = say(consumer, shop, "is the oolong in stock?", channel="cora.phone")

    # then
    assert sent.code == Code.OK
    assert sent.result["chat_id"] == chat_id(shop, consumer)
    assert sent.result["seq"] == 1
    assigned = {"chat_id": chat_id(shop, consumer), "shop_id": shop.pk, "event": "assigned",
                "agent_uid": amy.pk, "queue_position": 0}
    assert event(sent, user(amy)) == [assigned]
    assert event(sent, user(consumer)) == [assigned]
    message_pushes = sent.with_code(Code.MESSAGE)
    assert [push.group for push in message_pushes] == [user(amy)]
    pushed = message_pushes[0].result
    assert pushed["to_uid"] == amy.pk
    assert pushed["from_uid"] == consumer.pk
    assert pushed["id"] == consumer.pk
    assert pushed["nickname"] == "Cora"
    assert pushed["avatar"] == f"{BASE_URL}/media/cora.png"
    assert pushed["chat_type"] == 4
    assert pushed["shop_id"] == shop.pk
    assert pushed["msg"] == "is the oolong in stock?"
    # The sender's other sockets get 307, never the sending one.
    own = sent.with_code(Code.OWN_MESSAGE)
    assert [(push.group, push.exclude) for push in own] == [(user(consumer), "cora.phone")]
    session = live_session(shop, consumer)
    assert (session.state, session.agent_id) == ("open", amy.pk)
    assert list(session.assignments.values_list("reason", flat=True)) == ["strategy"]


def test_the_next_message_sticks_to_the_same_agent(shop, amy, ben, consumer, make_agent, connect, say):
    # given: amy has the session, so least_busy alone would now pick ben
    make_agent(shop, amy)
    make_agent(shop, ben)
    connect(amy)
    connect(ben)
    first = say(consumer, shop, "one")
    assert event(first, user(amy))

    # when
    second = say(consumer, shop, "two")

    # then
    assert [push.group for push in second.with_code(Code.MESSAGE)] == [user(amy)]
    assert messages_to(second, user(amy))[0]["to_uid"] == amy.pk
    assert second.with_code(Code.SESSION_EVENT) == []
    assert ServiceSession.objects.filter(consumer=consumer).count() == 1
    assert Assignment.objects.filter(session__consumer=consumer).count() == 1


def test_an_agent_who_dropped_less_than_the_grace_ago_keeps_the_session(
        shop, amy, ben, consumer, make_agent, connect, disconnect, say):
    # given
    make_agent(shop, amy)
    make_agent(shop, ben)
    amy_socket = connect(amy)
    connect(ben)
    say(consumer, shop, "one")
    disconnect(amy, amy_socket)

    # when
    sent = say(consumer, shop, "are you there?")

    # then
    assert [push.group for push in sent.with_code(Code.MESSAGE)] == [user(amy)]
    assert messages_to(sent, user(amy))[0]["to_uid"] == amy.pk
    assert sent.with_code(Code.SESSION_EVENT) == []
    session = live_session(shop, consumer)
    assert session.agent_id == amy.pk
    reasons = list(session.assignments.values_list("reason", "agent_id"))
    assert reasons == [("strategy", amy.pk), ("sticky", amy.pk)]


def test_an_agent_gone_longer_than_the_grace_loses_the_session_to_another(
        settings, shop, amy, ben, consumer, make_agent, connect, disconnect, say):
    # given
    settings.IM_AGENT_GRACE_SECONDS = 0
    make_agent(shop, amy)
    make_agent(shop, ben)
    amy_socket = connect(amy)
    connect(ben)
    say(consumer, shop, "one")
    disconnect(amy, amy_socket)

    # when
    sent = say(consumer, shop, "hello?")

    # then
    assigned = {"chat_id": chat_id(shop, consumer), "shop_id": shop.pk, "event": "assigned",
                "agent_uid": ben.pk, "queue_position": 0}
    assert event(sent, user(ben)) == [assigned]
    assert event(sent, user(consumer)) == [assigned]
    # ben gets the session's earlier message (stored for amy) and then the new one, in seq order
    assert [push.group for push in sent.with_code(Code.MESSAGE)] == [user(ben), user(ben)]
    delivered = messages_to(sent, user(ben))
    assert [m["msg"] for m in delivered] == ["one", "hello?"]
    assert [m["to_uid"] for m in delivered] == [amy.pk, ben.pk]
    session = live_session(shop, consumer)
    assert session.agent_id == ben.pk
    assert session.assignments.last().reason == "strategy"


# --- Agent status --------------------------------------------------------------------------------


def test_a_busy_agent_keeps_their_sessions_but_gets_no_new_ones(
        shop, amy, ben, consumer, consumer2, make_agent, connect, ask, say):
    # given
    make_agent(shop, amy)
    make_agent(shop, ben, status=OFFLINE)
    amy_socket = connect(amy)
    connect(ben)
    say(consumer, shop, "one")
    status = ask(amy, "service", "setStatus", {"status": "busy"}, channel=amy_socket)
    assert status.code == Code.OK
    assert status.result == {"status": "busy", "shop_ids": [shop.pk]}

    # when: the existing customer writes again, and a new one arrives with nobody else online
    kept = say(consumer, shop, "two")
    new = say(consumer2, shop, "hi")

    # then
    assert messages_to(kept, user(amy))[0]["to_uid"] == amy.pk
    assert event(new, user(consumer2)) == [{"chat_id": chat_id(shop, consumer2), "shop_id": shop.pk,
                                            "event": "queued", "agent_uid": 0, "queue_position": 1, "eta_seconds": None}]
    assert messages_to(new, user(amy)) == []
    assert live_session(shop, consumer2).state == "queued"

    # and when another agent comes online, the new customer goes to them, not to busy amy
    ask(ben, "service", "setStatus", {"status": "online"})
    assert live_session(shop, consumer2).agent_id == ben.pk
    assert live_session(shop, consumer).agent_id == amy.pk


def test_set_status_tells_the_agents_other_sockets_with_304(shop, amy, make_agent, connect, ask):
    make_agent(shop, amy)
    phone = connect(amy)

    sent = ask(amy, "service", "setStatus", {"status": "busy"}, channel=phone)

    assert [(push.group, push.code, push.result, push.exclude) for push in sent.sent] == [
        (user(amy), Code.AGENT_STATUS, {"shop_id": shop.pk, "uid": amy.pk, "status": "busy"}, phone)
    ]
    assert ServiceAgent.objects.get(shop=shop, user=amy).status == BUSY


def test_going_offline_hands_the_sessions_at_once_to_another_available_agent(
        shop, amy, ben, consumer, make_agent, connect, ask, say):
    # given
    make_agent(shop, amy)
    make_agent(shop, ben)
    amy_socket = connect(amy)
    connect(ben)
    say(consumer, shop, "one")
    assert live_session(shop, consumer).agent_id == amy.pk

    # when
    sent = ask(amy, "service", "setStatus", {"status": "offline"}, channel=amy_socket)

    # then
    assert sent.code == Code.OK
    assigned = {"chat_id": chat_id(shop, consumer), "shop_id": shop.pk, "event": "assigned",
                "agent_uid": ben.pk, "queue_position": 0}
    assert event(sent, user(ben)) == [assigned]
    assert event(sent, user(consumer)) == [assigned]
    assert live_session(shop, consumer).agent_id == ben.pk

    # and the customer's next message goes to ben
    nxt = say(consumer, shop, "two")
    assert [push.group for push in nxt.with_code(Code.MESSAGE)] == [user(ben)]


def test_going_offline_with_nobody_else_available_puts_the_sessions_back_in_the_queue(
        shop, amy, consumer, make_agent, connect, ask, say):
    make_agent(shop, amy)
    amy_socket = connect(amy)
    say(consumer, shop, "one")

    sent = ask(amy, "service", "setStatus", {"status": "offline"}, channel=amy_socket)

    assert event(sent, user(consumer)) == [{"chat_id": chat_id(shop, consumer), "shop_id": shop.pk,
                                            "event": "queued", "agent_uid": 0, "queue_position": 1, "eta_seconds": None}]
    session = live_session(shop, consumer)
    assert (session.state, session.agent_id) == ("queued", None)
    nxt = say(consumer, shop, "anyone?")
    assert nxt.with_code(Code.OWN_MESSAGE)[0].result["to_uid"] == 0
    # No agent hears it; the consumer gets the shop's offline notice.
    assert [push.group for push in nxt.with_code(Code.MESSAGE)] == [user(consumer)]
    assert messages_to(nxt, user(consumer))[0]["from_uid"] == 0


def test_after_a_closed_session_the_next_message_goes_to_the_agent_who_served_them_last(
        shop, amy, ben, consumer, make_agent, connect, ask, say):
    # given: amy served the customer and closed; least_busy alone would now pick never-assigned ben
    make_agent(shop, amy)
    make_agent(shop, ben)
    connect(amy)
    connect(ben)
    say(consumer, shop, "one")
    assert ask(amy, "service", "close", {"chat_id": chat_id(shop, consumer)}).code == Code.OK

    # when
    sent = say(consumer, shop, "me again")

    # then
    assert event(sent, user(amy))[0]["event"] == "assigned"
    assert [push.group for push in sent.with_code(Code.MESSAGE)] == [user(amy)]
    session = live_session(shop, consumer)
    assert session.agent_id == amy.pk
    assert list(session.assignments.values_list("reason", flat=True)) == ["last_agent"]


# --- Nobody available: the queue and the offline notice ------------------------------------------


def test_with_no_agent_available_the_session_is_queued_and_the_offline_notice_is_stored_and_pushed(
        shop, amy, consumer, make_agent, say):
    # given: amy is online in the admin but has no live socket
    make_agent(shop, amy)

    # when
    sent = say(consumer, shop, "hello?", channel="cora.phone")

    # then
    assert sent.code == Code.OK
    assert sent.result["seq"] == 1
    assert event(sent, user(consumer)) == [{"chat_id": chat_id(shop, consumer), "shop_id": shop.pk,
                                            "event": "queued", "agent_uid": 0, "queue_position": 1, "eta_seconds": None}]
    notices = messages_to(sent, user(consumer))
    assert len(notices) == 1
    notice = notices[0]
    assert "id" not in notice
    assert notice["from_uid"] == 0
    assert notice["to_uid"] == consumer.pk
    assert notice["nickname"] == "Tea House"
    assert notice["avatar"] == f"{BASE_URL}/media/shops/tea.png"
    assert notice["msg"] == "We are away; leave a message."
    assert (notice["chat_id"], notice["chat_type"], notice["shop_id"], notice["seq"]) == (
        chat_id(shop, consumer), 4, shop.pk, 2)
    assert "service_nickname" not in notice
    # Nobody else hears the consumer's message; it is stored for whoever takes the session.
    assert [push.group for push in sent.with_code(Code.MESSAGE)] == [user(consumer)]
    stored = list(Message.objects.filter(conversation__chat_id=chat_id(shop, consumer)).order_by("seq")
                  .values_list("seq", "sender_id", "sent_as", "to_uid", "chat_type", "msg"))
    assert stored == [
        (1, consumer.pk, SentAs.USER, 0, 4, "hello?"),
        (2, None, SentAs.SYSTEM, consumer.pk, 4, "We are away; leave a message."),
    ]


def test_the_offline_notice_is_sent_at_most_once_per_period(settings, shop, consumer, say):
    first = say(consumer, shop, "one")
    second = say(consumer, shop, "two")

    assert len(messages_to(first, user(consumer))) == 1
    assert messages_to(second, user(consumer)) == []
    assert second.with_code(Code.SESSION_EVENT) == []
    assert Message.objects.filter(sent_as=SentAs.SYSTEM).count() == 1

    settings.IM_OFFLINE_NOTICE_SECONDS = 0
    third = say(consumer, shop, "three")
    assert len(messages_to(third, user(consumer))) == 1
    assert Message.objects.filter(sent_as=SentAs.SYSTEM).count() == 2


def test_a_connecting_agent_takes_the_queue_and_gets_a_305_and_the_backlog_in_seq_order(
        shop, amy, consumer, make_agent, say, socket_joins):
    # given: two messages and the offline notice wait in the queue
    make_agent(shop, amy)
    say(consumer, shop, "first")
    say(consumer, shop, "second")

    # when
    joined = socket_joins(amy)

    # then
    assigned = {"chat_id": chat_id(shop, consumer), "shop_id": shop.pk, "event": "assigned",
                "agent_uid": amy.pk, "queue_position": 0}
    assert event(joined, user(amy)) == [assigned]
    assert event(joined, user(consumer)) == [assigned]
    backlog = messages_to(joined, user(amy))
    assert [(m["seq"], m["msg"], m["from_uid"], m["to_uid"]) for m in backlog] == [
        (1, "first", consumer.pk, 0),
        (2, "We are away; leave a message.", 0, consumer.pk),
        (3, "second", consumer.pk, 0),
    ]
    assert "id" not in backlog[1] and backlog[1]["nickname"] == "Tea House"
    assert backlog[0]["id"] == consumer.pk and backlog[0]["nickname"] == "Cora"
    session = live_session(shop, consumer)
    assert (session.state, session.agent_id) == ("open", amy.pk)
    assert list(session.assignments.values_list("reason", flat=True)) == ["queue"]


def test_an_agent_set_online_takes_the_queue(shop, amy, consumer, make_agent, connect, say, pushes):
    make_agent(shop, amy, status=OFFLINE)
    connect(amy)
    say(consumer, shop, "first")

    with pushes() as sent:
        services.agent_set_status(user=amy, status=ONLINE, shop_id=shop.pk, base_url=BASE_URL)

    assert [s.result["event"] for s in sent if s.code == Code.SESSION_EVENT and s.group == user(amy)] == ["assigned"]
    assert [s.result["seq"] for s in sent if s.code == Code.MESSAGE and s.group == user(amy)] == [1, 2]
    assert live_session(shop, consumer).agent_id == amy.pk


def test_queued_consumers_learn_their_positions_and_move_up_when_the_first_is_assigned(
        shop, amy, consumer, consumer2, consumer3, make_agent, say, socket_joins):
    # given
    make_agent(shop, amy, max_sessions=1)
    positions = []
    for person in (consumer, consumer2, consumer3):
        sent = say(person, shop, "hi")
        positions.append([e["queue_position"] for e in event(sent, user(person)) if e["event"] == "queued"])
    assert positions == [[1], [2], [3]]

    # when: amy connects with room for one
    joined = socket_joins(amy)

    # then
    assert [e["event"] for e in event(joined, user(consumer))] == ["assigned"]
    assert event(joined, user(consumer2)) == [{"chat_id": chat_id(shop, consumer2), "shop_id": shop.pk,
                                               "event": "queued", "agent_uid": 0, "queue_position": 1, "eta_seconds": None}]
    assert event(joined, user(consumer3)) == [{"chat_id": chat_id(shop, consumer3), "shop_id": shop.pk,
                                               "event": "queued", "agent_uid": 0, "queue_position": 2, "eta_seconds": None}]
    assert live_session(shop, consumer).agent_id == amy.pk
    assert live_session(shop, consumer2).state == live_session(shop, consumer3).state == "queued"


def test_capacity_sends_the_second_consumer_to_another_agent(
        shop, amy, ben, consumer, consumer2, make_agent, connect, say):
    make_agent(shop, amy, max_sessions=1)
    make_agent(shop, ben, max_sessions=1)
    connect(amy)
    connect(ben)

    first = say(consumer, shop, "hi")
    second = say(consumer2, shop, "hi")

    assert event(first, user(consumer))[0]["agent_uid"] == amy.pk
    assert event(second, user(consumer2))[0]["agent_uid"] == ben.pk
    assert [push.group for push in second.with_code(Code.MESSAGE)] == [user(ben)]


def test_capacity_sends_the_second_consumer_to_the_queue_when_nobody_else_has_room(
        shop, amy, consumer, consumer2, make_agent, connect, say):
    make_agent(shop, amy, max_sessions=1)
    connect(amy)

    say(consumer, shop, "hi")
    second = say(consumer2, shop, "hi")

    assert event(second, user(consumer2))[0]["event"] == "queued"
    assert messages_to(second, user(amy)) == []
    assert live_session(shop, consumer2).state == "queued"


# --- Who may speak for the shop ------------------------------------------------------------------


@pytest.mark.parametrize("role_type", ["service", 1, "1"])
def test_an_impostor_speaking_for_a_shop_they_do_not_serve_is_refused(
        role_type, shop, consumer, ask, say):
    mallory = factories.make_user(username="mallory")
    say(consumer, shop, "hi")

    sent = ask(mallory, "chat", "sendMsg", agent_frame(shop.pk, consumer.pk, "pay here", role_type=role_type))

    assert sent.code == Code.FORBIDDEN
    assert sent.sent == []
    assert not Message.objects.filter(msg="pay here").exists()


def test_an_agent_of_another_shop_cannot_speak_for_this_one(merchant, shop, amy, consumer, make_agent, ask):
    other = services.shop_create(name="Other", owner=factories.make_user(username="otherowner"))
    make_agent(other, amy)

    sent = ask(amy, "chat", "sendMsg", agent_frame(shop.pk, consumer.pk, "pay here", role_type=1))

    assert sent.code == Code.FORBIDDEN


def test_the_shop_side_never_writes_first_to_a_user_who_has_not_written_to_the_shop(
        merchant, shop, amy, consumer, consumer2, make_agent, ask, say, answer):
    # given: consumer2 wrote only to another shop; nobody wrote to this one
    make_agent(shop, amy)
    other = services.shop_create(name="Other", owner=factories.make_user(username="otherowner"))
    say(consumer2, other, "a question for the other shop")
    stored = Message.objects.count()

    # when amy (and the owner) write first as the shop: to that user, to a user of no shop, to no user
    replies = [
        answer(amy, shop, consumer2, "hello from us"),
        answer(amy, shop, consumer, "have you seen our sale?"),
        ask(amy, "chat", "sendMsg", agent_frame(shop.pk, 987654321, "anyone?")),
        ask(amy, "chat", "sendMsg", {**agent_frame(shop.pk, consumer.pk, "by to_uid alone"), "chat_id": ""}),
        answer(merchant, shop, consumer2, "the owner writing first"),
    ]

    # then: one answer for all of them (no probing which ids are users), nothing stored, nothing pushed
    assert [(r.code, r.frame["msg"]) for r in replies] == [(Code.NOT_FOUND, "to_uid: not a customer of this shop")] * 5
    assert all(r.sent == [] for r in replies)
    assert Message.objects.count() == stored
    assert not Conversation.objects.filter(shop_id=shop.pk).exists()
    assert not ServiceSession.objects.filter(shop=shop).exists()

    # and once the consumer has written, the shop answers
    say(consumer, shop, "hi")
    assert answer(amy, shop, consumer, "welcome").code == Code.OK


def test_an_agent_cannot_reach_another_shops_customer_through_its_chat_id(shop, amy, consumer, make_agent, ask, say):
    # given: amy serves this shop; the consumer wrote only to another shop
    make_agent(shop, amy)
    other = services.shop_create(name="Other", owner=factories.make_user(username="otherowner"))
    say(consumer, other, "for the other shop")
    theirs = chat_id(other, consumer)

    # when amy uses the other shop's chat_id: alone, with her shop's id, with her shop's id in to_uid's place
    alone = ask(amy, "chat", "sendMsg", {**agent_frame(other.pk, consumer.pk, "mine now"), "shop_id": 0})
    mixed = ask(amy, "chat", "sendMsg", {**agent_frame(shop.pk, consumer.pk, "mine now"), "chat_id": theirs})
    typing = ask(amy, "chat", "typing", {"chat_id": theirs, "role_type": "service"})
    history = ask(amy, "user", "chatRecord", {"chat_id": theirs, "role_type": "service"})

    # then
    assert alone.code == Code.FORBIDDEN
    assert mixed.code == Code.BAD_REQUEST and "chat_id" in mixed.frame["msg"]
    assert typing.code == history.code == Code.FORBIDDEN
    assert not Message.objects.filter(msg="mine now").exists()
    assert alone.sent == mixed.sent == typing.sent == []


def test_the_shop_owner_may_reply_as_the_service(merchant, shop, consumer, say, answer):
    say(consumer, shop, "hi")

    sent = answer(merchant, shop, consumer, "the owner here")

    assert sent.code == Code.OK
    pushed = messages_to(sent, user(consumer))
    assert len(pushed) == 1
    assert pushed[0]["from_uid"] == merchant.pk
    assert pushed[0]["service_nickname"] == "Mia the merchant"
    assert "id" not in pushed[0]


def test_an_agents_reply_reaches_the_consumer_in_the_shops_name(
        shop, amy, consumer, make_agent, connect, say, answer):
    # given
    make_agent(shop, amy)
    amy_socket = connect(amy)
    say(consumer, shop, "hi")

    # when
    sent = answer(amy, shop, consumer, "welcome!", channel=amy_socket)

    # then
    assert sent.code == Code.OK
    assert sent.result["chat_id"] == chat_id(shop, consumer)
    assert [push.group for push in sent.with_code(Code.MESSAGE)] == [user(consumer)]
    pushed = messages_to(sent, user(consumer))[0]
    assert "id" not in pushed
    assert pushed["nickname"] == "Tea House"
    assert pushed["avatar"] == f"{BASE_URL}/media/shops/tea.png"
    assert pushed["service_nickname"] == "Amy"
    assert pushed["service_avatar"] == f"{BASE_URL}/media/amy.png"
    assert pushed["from_uid"] == amy.pk
    assert pushed["to_uid"] == consumer.pk
    assert (pushed["chat_type"], pushed["shop_id"], pushed["msg"], pushed["seq"]) == (4, shop.pk, "welcome!", 2)
    assert [(p.group, p.exclude) for p in sent.with_code(Code.OWN_MESSAGE)] == [(user(amy), amy_socket)]
    assert live_session(shop, consumer).first_response_at is not None


def test_an_agent_replying_to_a_queued_session_claims_it(
        shop, amy, consumer, consumer2, make_agent, say, answer):
    # given: nobody connected, two customers queued
    make_agent(shop, amy)
    say(consumer, shop, "hi")
    say(consumer2, shop, "hi")

    # when
    sent = answer(amy, shop, consumer, "I've got this")

    # then
    assert sent.code == Code.OK
    assigned = {"chat_id": chat_id(shop, consumer), "shop_id": shop.pk, "event": "assigned",
                "agent_uid": amy.pk, "queue_position": 0}
    assert event(sent, user(amy)) == [assigned]
    assert event(sent, user(consumer)) == [assigned]
    assert event(sent, user(consumer2))[0]["queue_position"] == 1
    session = live_session(shop, consumer)
    assert (session.state, session.agent_id) == ("open", amy.pk)
    assert list(session.assignments.values_list("reason", flat=True)) == ["claim"]


# --- service.transfer and service.close ----------------------------------------------------------


def test_transfer_to_an_online_agent_of_the_shop_tells_both_agents(
        shop, amy, ben, consumer, make_agent, connect, say, ask):
    make_agent(shop, amy)
    make_agent(shop, ben)
    connect(amy)
    connect(ben)
    say(consumer, shop, "hi")

    sent = ask(amy, "service", "transfer", {"chat_id": chat_id(shop, consumer), "to_uid": ben.pk})

    assert sent.code == Code.OK
    assert sent.result == {"chat_id": chat_id(shop, consumer), "agent_uid": ben.pk}
    transferred = {"chat_id": chat_id(shop, consumer), "shop_id": shop.pk, "event": "transferred",
                   "agent_uid": ben.pk, "queue_position": 0}
    assert event(sent, user(amy)) == [transferred]
    assert event(sent, user(ben)) == [transferred]
    assert live_session(shop, consumer).agent_id == ben.pk
    assert live_session(shop, consumer).assignments.last().reason == "transfer"
    nxt = say(consumer, shop, "still there?")
    assert [push.group for push in nxt.with_code(Code.MESSAGE)] == [user(ben)]


def test_transfer_to_an_offline_agent_is_a_bad_request(shop, amy, ben, consumer, make_agent, connect, say, ask):
    make_agent(shop, amy)
    make_agent(shop, ben, status=OFFLINE)
    connect(amy)
    connect(ben)
    say(consumer, shop, "hi")

    sent = ask(amy, "service", "transfer", {"chat_id": chat_id(shop, consumer), "to_uid": ben.pk})

    assert sent.code == Code.BAD_REQUEST
    assert "to_uid" in sent.frame["msg"]
    assert live_session(shop, consumer).agent_id == amy.pk


def test_transfer_to_an_agent_of_another_shop_is_a_bad_request(
        shop, amy, ben, consumer, make_agent, connect, say, ask):
    other = services.shop_create(name="Other", owner=factories.make_user(username="otherowner"))
    make_agent(shop, amy)
    make_agent(other, ben)
    connect(amy)
    connect(ben)
    say(consumer, shop, "hi")

    sent = ask(amy, "service", "transfer", {"chat_id": chat_id(shop, consumer), "to_uid": ben.pk})

    assert sent.code == Code.BAD_REQUEST
    assert live_session(shop, consumer).agent_id == amy.pk


def test_close_tells_the_shops_agents_and_the_consumer_and_the_next_message_routes_again(
        shop, amy, ben, consumer, make_agent, connect, say, ask):
    # given
    make_agent(shop, amy)
    make_agent(shop, ben)
    connect(amy)
    connect(ben)
    say(consumer, shop, "hi")

    # when
    sent = ask(amy, "service", "close", {"chat_id": chat_id(shop, consumer)})

    # then
    assert sent.code == Code.OK
    session = ServiceSession.objects.get(consumer=consumer)
    closed = {"chat_id": chat_id(shop, consumer), "shop_id": shop.pk, "event": "closed",
              "agent_uid": amy.pk, "queue_position": 0,
              "session_id": session.pk, "rate_until": int(session.closed_at.timestamp()) + 7 * 24 * 3600}
    assert event(sent, agents_of(shop)) == [closed]
    assert event(sent, user(consumer)) == [closed]
    assert ServiceSession.objects.get(consumer=consumer).state == "closed"

    # and the consumer's next message opens a new session that is routed again
    again = say(consumer, shop, "one more thing")
    assert event(again, user(consumer))[0]["event"] == "assigned"
    assert ServiceSession.objects.filter(consumer=consumer).count() == 2
    assert live_session(shop, consumer).first_seq == 2


def test_close_by_someone_who_does_not_serve_the_shop_is_refused(shop, amy, consumer, make_agent, connect, say, ask):
    make_agent(shop, amy)
    connect(amy)
    say(consumer, shop, "hi")

    sent = ask(consumer, "service", "close", {"chat_id": chat_id(shop, consumer)})

    assert sent.code == Code.FORBIDDEN
    assert live_session(shop, consumer).state == "open"


def test_sessions_idle_longer_than_the_limit_are_closed(settings, shop, amy, consumer, consumer2, make_agent,
                                                        connect, say, pushes):
    # given
    make_agent(shop, amy)
    connect(amy)
    say(consumer, shop, "hi")
    say(consumer2, shop, "hi")
    later = timezone.now() + timedelta(seconds=settings.IM_SESSION_IDLE_SECONDS + 1)

    # when: first at the limit's edge nothing happens, after it both close
    with pushes() as early:
        assert services.sessions_close_idle(base_url=BASE_URL) == 0
    with pushes() as sent:
        closed = services.sessions_close_idle(base_url=BASE_URL, now=later)

    # then
    assert early == []
    assert closed == 2
    assert set(ServiceSession.objects.values_list("state", flat=True)) == {"closed"}
    events = [(s.group, s.result["event"], s.result["chat_id"]) for s in sent if s.code == Code.SESSION_EVENT]
    assert (user(consumer), "closed", chat_id(shop, consumer)) in events
    assert (agents_of(shop), "closed", chat_id(shop, consumer2)) in events


def test_the_background_job_closing_idle_sessions_is_registered():
    assert (30.0, handlers.close_idle_sessions) in handlers.BACKGROUND_JOBS


# --- The shop side's conversation list -----------------------------------------------------------


def test_recent_chat_with_is_service_lists_the_shops_conversations_for_every_agent(
        merchant, shop, amy, ben, consumer, consumer2, make_agent, connect, say, ask):
    # given
    make_agent(shop, amy)
    make_agent(shop, ben)
    connect(amy)
    say(consumer, shop, "first customer")
    say(consumer2, shop, "second customer")

    for viewer in (amy, ben, merchant):
        # when
        listed = ask(viewer, "user", "recentChat", {"is_service": True})

        # then
        assert listed.code == Code.RECENT_CHATS
        rows = listed.result["rows"]
        assert [row["chat_id"] for row in rows] == [chat_id(shop, consumer2), chat_id(shop, consumer)]
        first = rows[1]
        assert first["friend_uid"] == consumer.pk
        assert first["friend_name"] == "Cora"
        assert first["friend_avatar"] == f"{BASE_URL}/media/cora.png"
        assert (first["shop_id"], first["chat_type"], first["last_msg"], first["uid"]) == (
            shop.pk, 4, "first customer", viewer.pk)


def test_recent_chat_as_a_consumer_shows_the_shop(shop, amy, consumer, make_agent, connect, say, ask):
    make_agent(shop, amy)
    connect(amy)
    say(consumer, shop, "hi")

    rows = ask(consumer, "user", "recentChat", {"is_service": False}).result["rows"]

    assert [(r["chat_id"], r["friend_uid"], r["friend_name"]) for r in rows] == [
        (chat_id(shop, consumer), shop.pk, "Tea House")]
    assert rows[0]["friend_avatar"] == f"{BASE_URL}/media/shops/tea.png"


def test_recent_chat_with_is_service_is_refused_to_a_non_agent(shop, consumer, say, ask):
    say(consumer, shop, "hi")

    listed = ask(consumer, "user", "recentChat", {"is_service": True})

    assert listed.code == Code.FORBIDDEN


# --- What the compat client really sends ---------------------------------------------------------


def test_the_compat_clients_frames_with_and_without_chat_id_reach_the_same_conversation(
        shop, amy, consumer, make_agent, connect, ask):
    make_agent(shop, amy)
    connect(amy)

    deep_link = ask(consumer, "chat", "sendMsg", {
        "to_uid": shop.pk, "chat_type": 4, "msg_type": 1, "msg": "from a deep link", "chat_id": "",
        "shop_id": 0, "role_type": 0})
    from_list = ask(consumer, "chat", "sendMsg", {
        "to_uid": shop.pk, "chat_type": 4, "msg_type": 1, "msg": "from the list",
        "chat_id": f"{shop.pk}____{consumer.pk}", "shop_id": 0, "role_type": 0})

    assert deep_link.code == from_list.code == Code.OK
    assert deep_link.result["chat_id"] == from_list.result["chat_id"] == f"{shop.pk}____{consumer.pk}"
    assert (deep_link.result["seq"], from_list.result["seq"]) == (1, 2)
    assert [m["msg"] for m in messages_to(from_list, user(amy))] == ["from the list"]
    assert Conversation.objects.count() == 1


def test_service_chat_ids_put_the_shop_first_and_are_not_sorted(db, ask):
    owner = user_create(username="owner", user_id=100)
    user2 = user_create(username="user2", user_id=2, nickname="Two")
    user5 = user_create(username="user5", user_id=5, nickname="Five")
    shop5 = services.shop_create(name="Shop Five", owner=owner, shop_id=5)
    shop2 = services.shop_create(name="Shop Two", owner=owner, shop_id=2)

    to_shop5 = ask(user2, "chat", "sendMsg", consumer_frame(shop5.pk, "user 2 to shop 5"))
    to_shop2 = ask(user5, "chat", "sendMsg", consumer_frame(shop2.pk, "user 5 to shop 2"))
    again = ask(user2, "chat", "sendMsg", consumer_frame(5, "again", chat_id="5____2"))

    assert to_shop5.result["chat_id"] == "5____2"
    assert to_shop2.result["chat_id"] == "2____5"
    assert again.result["chat_id"] == "5____2"
    # Nobody serves these shops: seq 2 of "5____2" is shop 5's offline notice.
    assert (to_shop5.result["seq"], to_shop2.result["seq"], again.result["seq"]) == (1, 1, 3)
    assert set(Conversation.objects.values_list("chat_id", "shop_id")) == {("5____2", 5), ("2____5", 2)}


def test_a_consumer_cannot_write_into_another_consumers_conversation(shop, consumer, consumer2, ask):
    sent = ask(consumer2, "chat", "sendMsg", consumer_frame(shop.pk, "peek", chat_id=chat_id(shop, consumer)))

    assert sent.code == Code.FORBIDDEN  # PROTOCOL.md 2: -403 "not yours"
    assert not Message.objects.filter(msg="peek").exists()


# --- Capacity freed, and queue positions kept true -----------------------------------------------


def test_an_agent_set_online_from_their_socket_gets_the_queue_on_that_socket_too(
        shop, amy, consumer, make_agent, connect, say, ask):
    make_agent(shop, amy, status=OFFLINE)
    phone = connect(amy)
    say(consumer, shop, "first")

    sent = ask(amy, "service", "setStatus", {"status": "online"}, channel=phone)

    delivery = [s for s in sent.sent if s.group == user(amy) and s.code in (Code.SESSION_EVENT, Code.MESSAGE)]
    assert [(s.code, s.exclude) for s in delivery] == [
        (Code.SESSION_EVENT, None), (Code.MESSAGE, None), (Code.MESSAGE, None)]
    assert live_session(shop, consumer).agent_id == amy.pk


def test_closing_a_session_frees_capacity_and_the_oldest_queued_session_takes_it_with_its_backlog(
        shop, amy, consumer, consumer2, consumer3, make_agent, connect, say, ask):
    # given: amy has room for one and is busy with the first customer; two wait
    make_agent(shop, amy, max_sessions=1)
    connect(amy)
    say(consumer, shop, "hi")
    say(consumer2, shop, "second in line")
    say(consumer3, shop, "third in line")

    # when
    sent = ask(amy, "service", "close", {"chat_id": chat_id(shop, consumer)})

    # then
    assert [e["event"] for e in event(sent, user(consumer2))] == ["assigned"]
    assert [(m["seq"], m["msg"]) for m in messages_to(sent, user(amy))] == [
        (1, "second in line"), (2, "We are away; leave a message.")]
    assert event(sent, user(consumer3)) == [{"chat_id": chat_id(shop, consumer3), "shop_id": shop.pk,
                                             "event": "queued", "agent_uid": 0, "queue_position": 1,
                                             "eta_seconds": 1}]  # one session handled in ms, one slot
    assert live_session(shop, consumer2).agent_id == amy.pk


def test_a_transfer_is_not_limited_by_capacity_and_frees_the_senders_capacity_for_the_queue(
        shop, amy, ben, consumer, consumer2, consumer3, make_agent, connect, say, ask):
    # given: both agents full (one session each), one customer queued
    make_agent(shop, amy, max_sessions=1)
    make_agent(shop, ben, max_sessions=1)
    connect(amy)
    connect(ben)
    say(consumer, shop, "hi")
    say(consumer2, shop, "hi")
    say(consumer3, shop, "waiting")
    assert live_session(shop, consumer3).state == "queued"

    # when: amy hands her customer to ben, who is already full
    sent = ask(amy, "service", "transfer", {"chat_id": chat_id(shop, consumer), "to_uid": ben.pk})

    # then
    assert sent.code == Code.OK
    assert live_session(shop, consumer).agent_id == ben.pk
    assert ServiceSession.objects.filter(agent=ben, state="open").count() == 2
    assert live_session(shop, consumer3).agent_id == amy.pk
    assert [m["msg"] for m in messages_to(sent, user(amy))][0] == "waiting"


def test_setting_status_for_a_shop_one_does_not_serve_is_refused(shop, amy, ask):
    sent = ask(amy, "service", "setStatus", {"status": "online", "shop_id": shop.pk})

    assert sent.code == Code.FORBIDDEN


def test_closing_a_queued_session_tells_the_consumers_behind_it_their_new_position(
        shop, amy, consumer, consumer2, consumer3, make_agent, say, ask):
    # given: nobody connected; three customers queued
    make_agent(shop, amy)
    for person in (consumer, consumer2, consumer3):
        say(person, shop, "hi")

    # when: an agent closes the first queued session (spam, say)
    sent = ask(amy, "service", "close", {"chat_id": chat_id(shop, consumer)})

    # then: the others moved up, and PROTOCOL.md 4 says they hear it ("again whenever its position changes")
    assert sent.code == Code.OK
    assert [e["queue_position"] for e in event(sent, user(consumer2))] == [1]
    assert [e["queue_position"] for e in event(sent, user(consumer3))] == [2]


def test_an_idle_queued_session_closed_by_the_job_moves_the_others_up_and_tells_them(
        shop, consumer, consumer2, say, pushes):
    # given: two customers queued; the first has been silent past the idle limit
    say(consumer, shop, "hi")
    say(consumer2, shop, "hi")
    long_ago = timezone.now() - timedelta(days=1)
    ServiceSession.objects.filter(consumer=consumer).update(last_activity_at=long_ago)

    # when
    with pushes() as sent:
        closed = services.sessions_close_idle(base_url=BASE_URL)

    # then
    assert closed == 1
    queued = [s.result for s in sent if s.group == user(consumer2) and s.code == Code.SESSION_EVENT]
    assert [e["queue_position"] for e in queued] == [1]


def test_a_consumer_whose_idle_session_closes_on_their_next_message_does_not_jump_the_queue(
        shop, amy, consumer, consumer2, make_agent, connect, say):
    # given: amy (room for one) has a customer silent past the idle limit; another customer waits
    make_agent(shop, amy, max_sessions=1)
    connect(amy)
    say(consumer, shop, "hi")
    say(consumer2, shop, "waiting")
    assert live_session(shop, consumer2).state == "queued"
    ServiceSession.objects.filter(consumer=consumer).update(last_activity_at=timezone.now() - timedelta(days=1))

    # when: the idle customer writes again (the idle session closes, freeing amy)
    say(consumer, shop, "back again")

    # then: the freed place goes to the oldest queued session (PROTOCOL.md 5), not to the newcomer
    assert live_session(shop, consumer2).agent_id == amy.pk
    assert live_session(shop, consumer).state == "queued"
