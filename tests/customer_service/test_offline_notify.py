"""notification.offline (customer_service/offline.py): who hears through the mall, when, and what it
costs the message path. SQLite and in-memory presence; tests/e2e/test_offline_notify.py runs the
same promises on PostgreSQL, Redis and daphne."""

import json
from collections.abc import Callable

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from chat import handlers
from chat.models import Conversation
from chat.presence import RedisPresence, presence
from chat.protocol import Envelope
from customer_service import offline
from customer_service.models import OfflineNotification, ServiceSession, Shop, WebhookDelivery
from tests import factories
from tests.customer_service.conftest import agent_frame, consumer_frame

Event = WebhookDelivery.Event


@pytest.fixture(autouse=True)
def mall(settings):
    """The mall takes webhooks (nothing is delivered here: the rows are what the tests read)."""
    settings.IM_WEBHOOK_URL = "http://mall.invalid/hooks/imchat"
    settings.IM_WEBHOOK_SECRET = "webhook-secret-0123456789abcdef"
    settings.IM_AGENT_GRACE_SECONDS = 60


def notifications() -> list[dict]:
    """The queued notification.offline events' data, oldest first."""
    return [json.loads(body)["data"] for body in
            WebhookDelivery.objects.filter(event=Event.NOTIFICATION_OFFLINE).order_by("pk").values_list("body",
                                                                                                     flat=True)]


def touches_notifications(sql: str) -> bool:
    return OfflineNotification._meta.db_table in sql or WebhookDelivery._meta.db_table in sql


@pytest.fixture
def batch(pushes) -> Callable:
    """chat.sendMsg requests stored together, as the socket's batcher does: [(user, content)] -> frames."""

    def send(*requests):
        with pushes():
            frames, _ = handlers.run_batch([
                (factories.caller_of(account), Envelope(cls="chat", action="sendMsg", content=content))
                for account, content in requests
            ])
        return frames

    return send


@pytest.fixture
def served(shop, amy, consumer, make_agent, connect, say):
    """Cora has an open session with amy; amy's socket is `served["amy"]`, cora is not connected."""
    make_agent(shop, amy)
    channel = connect(amy)
    assert say(consumer, shop, "hello").code == 1
    session = ServiceSession.objects.get(consumer=consumer)
    assert session.agent_id == amy.pk
    return {"amy": channel, "session": session}


def private_frame(to_uid: int, msg: str = "hi", **extra) -> dict:
    return {"to_uid": to_uid, "chat_type": 1, "msg_type": 1, "msg": msg, "chat_id": "", **extra}


# --- Who is told -------------------------------------------------------------------------------


def test_an_agent_whose_socket_closed_inside_the_grace_hears_of_the_customers_message(
        shop, amy, consumer, served, disconnect, say):
    disconnect(amy, served["amy"])  # the tab closed; the session stays with amy through the grace

    sent = say(consumer, shop, "are you there?")

    assert sent.code == 1
    [event] = notifications()
    assert event == {
        "recipient_uid": amy.pk, "role": "agent", "chat_id": f"{shop.pk}____{consumer.pk}", "chat_type": 4,
        "shop_id": shop.pk, "session_id": served["session"].pk, "sender_uid": consumer.pk, "sender_name": "Cora",
        "agent_name": None, "msg_id": sent.result["msg_id"], "seq": sent.result["seq"], "msg_type": 1,
        "preview": "are you there?", "createtime": sent.result["createtime"], "unread": 2,
    }
    assert ServiceSession.objects.get(pk=served["session"].pk).agent_id == amy.pk


def test_a_customer_who_left_hears_of_the_agents_answer_once_per_window(shop, amy, consumer, served, answer):
    first = answer(amy, shop, consumer, "It ships tomorrow.", channel=served["amy"])
    second = answer(amy, shop, consumer, "Anything else?", channel=served["amy"])

    assert (first.code, second.code) == (1, 1)
    [event] = notifications()  # the second answer falls in the shop's 10 minutes
    assert (event["recipient_uid"], event["role"], event["sender_uid"], event["sender_name"], event["agent_name"],
            event["msg_id"], event["preview"], event["unread"]) == (
        consumer.pk, "consumer", amy.pk, "Tea House", "Amy", first.result["msg_id"], "It ships tomorrow.", 1)

    # the window is over: the next answer is reported, with everything unread so far
    OfflineNotification.objects.update(quiet_until=0)
    third = answer(amy, shop, consumer, "Bye!", channel=served["amy"])

    assert [(e["msg_id"], e["unread"]) for e in notifications()] == [
        (first.result["msg_id"], 1), (third.result["msg_id"], 3)]


def test_a_customer_who_read_since_the_last_report_is_told_again_inside_the_window(
        shop, amy, consumer, served, answer, ask):
    answer(amy, shop, consumer, "one", channel=served["amy"])
    assert ask(consumer, "chat", "setChatRead", {"chat_id": f"{shop.pk}____{consumer.pk}"}).code == 1

    again = answer(amy, shop, consumer, "two", channel=served["amy"])

    assert [(e["msg_id"], e["unread"]) for e in notifications()][1:] == [(again.result["msg_id"], 1)]


def test_a_connected_receiver_is_not_told(shop, amy, consumer, served, connect, answer):
    connect(consumer)

    assert answer(amy, shop, consumer, "hi", channel=served["amy"]).code == 1

    assert notifications() == []


def test_a_shop_with_zero_minutes_tells_nobody(shop, amy, consumer, served, disconnect, answer, say):
    Shop.objects.filter(pk=shop.pk).update(offline_notify_minutes=0)

    answer(amy, shop, consumer, "answered while you were away", channel=served["amy"])
    disconnect(amy, served["amy"])
    say(consumer, shop, "and you while I was")

    assert notifications() == []


def test_a_queued_customer_is_the_unattended_webhooks_business_not_this_one(shop, consumer, say):
    assert say(consumer, shop, "anyone?").code == 1  # no agent at all: queued

    assert notifications() == []
    assert WebhookDelivery.objects.filter(event=Event.MESSAGE_UNATTENDED).count() == 1


def test_a_masked_contact_stays_masked_in_the_preview(shop, amy, consumer, served, answer):
    Shop.objects.filter(pk=shop.pk).update(contact_guard=Shop.ContactGuard.MASK)

    assert answer(amy, shop, consumer, "call me on 138 1234 5678", channel=served["amy"]).code == 1

    [event] = notifications()
    assert "5678" not in event["preview"] and "***" in event["preview"]


def test_previews_are_one_short_line_and_images_say_so():
    assert offline.preview(1, "  two\n\nlines  ") == "two lines"
    long = offline.preview(1, "x" * 500)
    assert len(long) == offline.PREVIEW_CHARS and long.endswith("…")
    assert offline.preview(2, "https://im.example/media/a.png") == "[image]"


def test_a_private_message_to_a_user_with_no_socket_is_reported_unless_private_chat_is_off(
        alice, bob, ask, settings):
    first = ask(alice, "chat", "sendMsg", private_frame(bob.pk, "lunch?"))  # opens the conversation
    assert first.code == 1
    [event] = notifications()
    assert (event["recipient_uid"], event["role"], event["chat_type"], event["shop_id"], event["session_id"],
            event["sender_name"], event["preview"]) == (bob.pk, "user", 1, None, None, alice.display_name, "lunch?")

    settings.IM_OFFLINE_NOTIFY_SECONDS = 0
    OfflineNotification.objects.update(quiet_until=0)
    assert ask(alice, "chat", "sendMsg", private_frame(bob.pk, "hello?")).code == 1
    assert len(notifications()) == 1


def test_group_messages_tell_nobody(alice, bob, ask):
    group = ask(alice, "group", "create", {"name": "team", "uids": [bob.pk]}).result
    frame = {"to_uid": 0, "chat_type": 2, "msg_type": 1, "msg": "hi all", "chat_id": group["chat_id"]}

    assert ask(alice, "chat", "sendMsg", frame).code == 1

    assert notifications() == []


def test_nothing_is_asked_or_written_while_the_mall_takes_no_webhooks(alice, bob, ask, settings, monkeypatch):
    settings.IM_WEBHOOK_URL = ""
    monkeypatch.setattr(type(presence()), "offline", lambda *_: pytest.fail("presence asked"))

    with CaptureQueriesContext(connection) as queries:
        assert ask(alice, "chat", "sendMsg", private_frame(bob.pk)).code == 1

    assert not any(touches_notifications(query["sql"]) for query in queries.captured_queries)
    assert not OfflineNotification.objects.exists() and not WebhookDelivery.objects.exists()


# --- What a batch costs --------------------------------------------------------------------------


@pytest.fixture
def three_customers(shop, amy, consumer, consumer2, consumer3, make_agent, connect, say):
    """amy (connected) serves three customers, none of whom is connected."""
    make_agent(shop, amy)
    channel = connect(amy)
    for someone in (consumer, consumer2, consumer3):
        assert say(someone, shop, "first").code == 1
    return channel


@pytest.fixture
def presence_asks(monkeypatch) -> list[set[int]]:
    asked: list[set[int]] = []
    real = type(presence()).offline

    def counting(self, user_ids):
        asked.append(set(user_ids))
        return real(self, user_ids)

    monkeypatch.setattr(type(presence()), "offline", counting)
    return asked


def test_a_batch_asks_presence_once_and_writes_its_reports_in_one_upsert_and_one_insert(
        shop, amy, consumer, consumer2, consumer3, three_customers, batch, presence_asks):
    customers = (consumer, consumer2, consumer3)

    with CaptureQueriesContext(connection) as queries:
        frames = batch(*((amy, agent_frame(shop.pk, someone.pk, f"answer {n}"))
                         for someone in customers for n in (1, 2)))

    assert [frame["code"] for frame in frames] == [1] * 6
    assert presence_asks == [{someone.pk for someone in customers}]
    marks = [q for q in queries.captured_queries if OfflineNotification._meta.db_table in q["sql"]]
    inserts = [q for q in queries.captured_queries
               if q["sql"].startswith(f'INSERT INTO "{WebhookDelivery._meta.db_table}"')]
    assert (len(marks), len(inserts)) == (1, 1)
    # each customer hears once, of the newest answer, with both unread
    assert sorted((e["recipient_uid"], e["preview"], e["unread"]) for e in notifications()) == sorted(
        (someone.pk, "answer 2", 2) for someone in customers)


def test_a_batch_for_connected_receivers_costs_one_presence_ask_and_no_statement(
        shop, amy, consumer, consumer2, consumer3, three_customers, batch, connect, presence_asks):
    for someone in (consumer, consumer2, consumer3):
        connect(someone)

    with CaptureQueriesContext(connection) as queries:
        batch(*((amy, agent_frame(shop.pk, someone.pk)) for someone in (consumer, consumer2, consumer3)))

    assert len(presence_asks) == 1
    assert not [q for q in queries.captured_queries if touches_notifications(q["sql"])]


def test_a_batch_rolled_back_by_a_resend_leaves_no_mark_and_its_messages_are_reported_once(
        shop, amy, consumer, consumer2, three_customers, batch, answer):
    answer(amy, shop, consumer2, "stored before", channel=three_customers, client_msg_id="dup-1")
    OfflineNotification.objects.update(quiet_until=0)
    before = len(notifications())

    frames = batch((amy, agent_frame(shop.pk, consumer.pk, "new", client_msg_id="new-1")),
                   (amy, agent_frame(shop.pk, consumer2.pk, "stored before", client_msg_id="dup-1")))

    assert [frame["code"] for frame in frames] == [1, 1]
    reported = notifications()[before:]
    assert [(e["recipient_uid"], e["preview"]) for e in reported] == [(consumer.pk, "new")]


# --- Attackers -----------------------------------------------------------------------------------


def test_nobody_outside_the_conversation_can_be_made_to_hear(shop, amy, consumer, consumer2, served, ask, alice,
                                                            bob, carol, make_agent, merchant):
    other = Shop.objects.create(name="Other", owner=merchant)
    make_agent(other, alice)
    attempts = [
        # a consumer naming another consumer's conversation with the shop
        (consumer2, consumer_frame(shop.pk, "x", chat_id=f"{shop.pk}____{consumer.pk}")),
        # another shop's agent answering this shop's customer, or as their own shop to a stranger
        (alice, agent_frame(shop.pk, consumer.pk, "x")),
        (alice, agent_frame(other.pk, consumer.pk, "x")),
        # amy writing as the shop to someone who never wrote to it
        (amy, agent_frame(shop.pk, bob.pk, "x")),
        # a private chat_id of two other users
        (carol, private_frame(bob.pk, "x", chat_id=f"{min(alice.pk, bob.pk)}_{max(alice.pk, bob.pk)}")),
    ]
    for who, frame in attempts:
        assert ask(who, "chat", "sendMsg", frame).code != 1, frame

    assert notifications() == []


def test_a_deactivated_receiver_is_not_reported(alice, bob, ask):
    assert ask(alice, "chat", "sendMsg", private_frame(bob.pk, "hi")).code == 1
    OfflineNotification.objects.update(quiet_until=0)
    type(bob).objects.filter(pk=bob.pk).update(is_active=False)

    ask(alice, "chat", "sendMsg", private_frame(bob.pk, "still there?"))

    assert len(notifications()) == 1
    assert Conversation.objects.filter(chat_type=1).count() == 1


def test_while_presence_is_unreachable_nobody_counts_as_offline():
    unreachable = RedisPresence("redis://127.0.0.1:1/0", "imchat-test")  # nothing listens on port 1

    assert unreachable.offline([1, 2, 3]) == set()
