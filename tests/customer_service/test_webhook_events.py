"""The mall's session and message events: each change of a session reported once, in the transaction
that made it; message.created for both sides, set-based per batch; only the events the mall wants."""

import json
from datetime import timedelta

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from chat import handlers
from chat.protocol import Envelope
from customer_service import services, webhooks
from customer_service.models import ServiceAgent, ServiceSession, WebhookDelivery
from tests import factories
from tests.customer_service.conftest import consumer_frame

pytestmark = pytest.mark.django_db
URL = "https://mall.example.com/hooks/imchat"


@pytest.fixture(autouse=True)
def mall_hook(settings):
    settings.IM_WEBHOOK_URL, settings.IM_WEBHOOK_SECRET = URL, "s" * 32
    settings.IM_WEBHOOK_EVENTS = "all"


def events(*names: str) -> list[tuple[str, dict]]:
    rows = WebhookDelivery.objects.order_by("pk")
    if names:
        rows = rows.filter(event__in=names)
    return [(row.event, json.loads(row.body)["data"]) for row in rows]


def delivery_inserts(queries: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in queries.captured_queries
            if q["sql"].startswith('INSERT INTO "customer_service_webhookdelivery"')]


def test_the_default_is_every_event_but_message_created(settings):
    settings.IM_WEBHOOK_EVENTS = "default"

    assert not webhooks.wanted("message.created")
    assert all(webhooks.wanted(event) for event in WebhookDelivery.Event.values if event != "message.created")
    settings.IM_WEBHOOK_EVENTS = "default,message.created"
    assert webhooks.wanted("message.created")
    settings.IM_WEBHOOK_EVENTS = " session.closed , message.created "
    assert [e for e in WebhookDelivery.Event.values if webhooks.wanted(e)] == ["session.closed", "message.created"]


def test_nothing_is_wanted_without_a_url_and_an_unknown_event_is_refused(settings):
    settings.IM_WEBHOOK_URL = ""
    assert not webhooks.wanted("session.closed")
    with pytest.raises(ImproperlyConfigured, match="session.opened"):
        webhooks.subscribed_events("session.closed,session.opened")


def test_a_queued_session_reports_created_then_queued_then_assigned_when_an_agent_comes(
        shop, consumer, amy, say, make_agent, connect):
    # given: nobody serves the shop
    assert say(consumer, shop, "anyone?").code == 1

    # when amy comes online
    make_agent(shop, amy, status=ServiceAgent.Status.OFFLINE)
    connect(amy)
    services.agent_set_status(user=amy, status="online", shop_id=shop.pk, base_url=factories.BASE_URL)

    # then
    session = ServiceSession.objects.get()
    got = events("session.created", "session.queued", "session.assigned")
    assert [name for name, _ in got] == ["session.created", "session.queued", "session.assigned"]
    assert got[0][1] | {"consumer_nickname": "-"} == {
        "session_id": session.pk, "shop_id": shop.pk, "chat_id": f"{shop.pk}____{consumer.pk}",
        "consumer_uid": consumer.pk, "agent_uid": 0, "state": "queued", "consumer_nickname": "-",
        "createtime": got[0][1]["createtime"]}
    assert (got[1][1]["queue_position"], got[1][1]["out_of_hours"]) == (1, False)
    assert (got[2][1]["agent_uid"], got[2][1]["state"], got[2][1]["reason"]) == (amy.pk, "open", "queue")


def test_a_routed_session_reports_created_first_with_where_it_went(shop, consumer, amy, say, make_agent, connect):
    make_agent(shop, amy)
    connect(amy)

    say(consumer, shop, "hi")

    got = events("session.created", "session.queued", "session.assigned")
    assert [(name, data["state"], data["agent_uid"]) for name, data in got] == [
        ("session.created", "open", amy.pk), ("session.assigned", "open", amy.pk)]
    assert got[1][1]["reason"] == "strategy"


def test_message_created_for_both_sides_on_the_slow_and_the_batch_path(shop, consumer, amy, say, answer,
                                                                     make_agent, connect):
    make_agent(shop, amy)
    connect(amy)
    first = say(consumer, shop, "first, routed").result  # a new session: alone, through routing
    reply = answer(amy, shop, consumer, "hello from amy").result  # amy's own session: the batch path
    again = say(consumer, shop, "again, batched").result

    got = events("message.created")
    session = ServiceSession.objects.get()
    assert [(d["msg_id"], d["side"], d["from_uid"], d["to_uid"], d["consumer_uid"], d["msg"]) for _, d in got] == [
        (first["msg_id"], "consumer", consumer.pk, amy.pk, consumer.pk, "first, routed"),
        (reply["msg_id"], "agent", amy.pk, consumer.pk, consumer.pk, "hello from amy"),
        (again["msg_id"], "consumer", consumer.pk, amy.pk, consumer.pk, "again, batched"),
    ]
    data = got[1][1]
    assert data == {"msg_id": reply["msg_id"], "seq": reply["seq"], "chat_id": f"{shop.pk}____{consumer.pk}",
                    "session_id": session.pk, "shop_id": shop.pk, "side": "agent", "from_uid": amy.pk,
                    "to_uid": consumer.pk, "consumer_uid": consumer.pk, "nickname": "Amy", "msg_type": 1,
                    "msg": "hello from amy", "createtime": reply["createtime"], "card": None}


def test_a_batch_of_messages_stores_its_message_events_with_one_insert(shop, consumer, consumer2, consumer3, amy,
                                                                        say, make_agent, connect, pushes):
    make_agent(shop, amy)
    connect(amy)
    for someone in (consumer, consumer2, consumer3):
        say(someone, shop, "first")
    before = WebhookDelivery.objects.count()

    with CaptureQueriesContext(connection) as queries, pushes():
        frames, _ = handlers.run_batch([
            (factories.caller_of(someone), Envelope(cls="chat", action="sendMsg",
                                                    content=consumer_frame(shop.pk, f"more from {someone.pk}")))
            for someone in (consumer, consumer2, consumer3)])

    assert [frame["code"] for frame in frames] == [1, 1, 1]
    assert WebhookDelivery.objects.count() - before == 3
    assert len(delivery_inserts(queries)) == 1


def test_an_event_the_mall_does_not_want_is_never_stored_and_the_batch_adds_no_query(
        settings, shop, consumer, amy, say, make_agent, connect, pushes):
    settings.IM_WEBHOOK_EVENTS = "session.closed"
    make_agent(shop, amy)
    connect(amy)
    say(consumer, shop, "first")
    with CaptureQueriesContext(connection) as wanted_none:
        say(consumer, shop, "second")
    settings.IM_WEBHOOK_URL = ""
    with CaptureQueriesContext(connection) as webhooks_off:
        say(consumer, shop, "third")

    assert not WebhookDelivery.objects.exists()
    assert len(wanted_none.captured_queries) == len(webhooks_off.captured_queries)


def test_an_agent_going_offline_reports_each_handed_back_session_with_one_insert(
        shop, consumer, consumer2, amy, ben, say, make_agent, connect):
    make_agent(shop, amy, max_sessions=5)
    connect(amy)
    say(consumer, shop, "one")
    say(consumer2, shop, "two")
    make_agent(shop, ben)
    connect(ben)
    WebhookDelivery.objects.all().delete()

    with CaptureQueriesContext(connection) as queries:
        services.agent_set_status(user=amy, status="offline", shop_id=shop.pk, base_url=factories.BASE_URL)

    got = events()
    assert [(name, data["agent_uid"], data["reason"]) for name, data in got] == [
        ("session.assigned", ben.pk, "strategy"), ("session.assigned", ben.pk, "strategy")]
    assert len(delivery_inserts(queries)) == 1


def test_transfer_and_close_over_the_socket_report_who_did_it(shop, consumer, amy, ben, say, make_agent, connect,
                                                               ask):
    make_agent(shop, amy)
    make_agent(shop, ben)
    connect(amy)
    connect(ben)
    say(consumer, shop, "hi")
    session = ServiceSession.objects.get()
    owner, other = (amy, ben) if session.agent_id == amy.pk else (ben, amy)
    chat_id = f"{shop.pk}____{consumer.pk}"

    assert ask(owner, "service", "transfer", {"chat_id": chat_id, "to_uid": other.pk}).code == 1
    assert ask(other, "service", "close", {"chat_id": chat_id}).code == 1

    got = events("session.transferred", "session.closed")
    assert [(name, data["agent_uid"], data["state"]) for name, data in got] == [
        ("session.transferred", other.pk, "open"), ("session.closed", other.pk, "closed")]
    assert (got[0][1]["from_agent_uid"], got[0][1]["by_uid"]) == (owner.pk, owner.pk)
    assert (got[1][1]["closed_by"], got[1][1]["by_uid"]) == ("agent", other.pk)


def test_idle_sessions_closed_together_are_reported_as_idle(shop, consumer, consumer2, say, settings):
    say(consumer, shop, "one")
    say(consumer2, shop, "two")
    ServiceSession.objects.update(last_activity_at=timezone.now() - timedelta(days=1))

    closed = services.sessions_close_idle(base_url=factories.BASE_URL)

    got = events("session.closed")
    assert closed == 2
    assert [(data["closed_by"], data["by_uid"], data["state"]) for _, data in got] == [("idle", 0, "closed")] * 2
