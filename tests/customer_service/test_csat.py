"""CSAT: the consumer rates a closed session once (PROTOCOL-EXT.md, CSAT), through the socket's table
and through real sockets; the shop's agents hear a 308, the mall a `session.rated` webhook."""

import io
import json
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from django.core.management import call_command
from django.utils import timezone

from customer_service import ratings, services
from customer_service.models import ServiceSession, WebhookDelivery
from imchat.errors import Code
from tests import factories
from tests.customer_service.conftest import consumer_frame
from tests.factories import open_socket, request, synchronously

WEEK = 7 * 24 * 3600


def chat_id(shop, consumer) -> str:
    return f"{shop.pk}____{consumer.pk}"


def agents_of(shop) -> str:
    return f"shop.{shop.pk}.agents"


@pytest.fixture
def closed_session(shop, amy, consumer, make_agent, connect, say, ask) -> ServiceSession:
    """Cora talked to amy, and amy closed the session."""
    make_agent(shop, amy)
    connect(amy)
    say(consumer, shop, "where is my order?")
    assert ask(amy, "service", "close", {"chat_id": chat_id(shop, consumer)}).code == Code.OK
    return ServiceSession.objects.get(consumer=consumer)


def rate(ask, user, **content):
    return ask(user, "service", "rate", content)


# --- The closed 305 says what to rate ---------------------------------------------------------


def test_the_closed_event_names_the_session_and_the_last_moment_to_rate_it(
        shop, amy, consumer, make_agent, connect, say, ask):
    make_agent(shop, amy)
    connect(amy)
    say(consumer, shop, "hi")

    closed = ask(amy, "service", "close", {"chat_id": chat_id(shop, consumer)})

    session = ServiceSession.objects.get(consumer=consumer)
    [event] = closed.to(f"user.{consumer.pk}", Code.SESSION_EVENT)
    assert event["session_id"] == session.pk
    assert event["rate_until"] == int(session.closed_at.timestamp()) + WEEK


def test_an_idle_close_also_offers_the_rating(shop, amy, consumer, make_agent, connect, say, pushes, settings):
    make_agent(shop, amy)
    connect(amy)
    say(consumer, shop, "hi")
    settings.IM_CSAT_WINDOW_SECONDS = 3600
    later = timezone.now() + timedelta(seconds=settings.IM_SESSION_IDLE_SECONDS + 5)

    with pushes() as sent:
        assert services.sessions_close_idle(base_url=factories.BASE_URL, now=later) == 1

    [event] = [s.result for s in sent if s.group == f"user.{consumer.pk}" and s.code == Code.SESSION_EVENT]
    assert event["event"] == "closed" and event["rate_until"] == int(later.timestamp()) + 3600


# --- Rating -------------------------------------------------------------------------------------


def test_the_consumer_rates_a_closed_session_and_the_shops_agents_hear_it(closed_session, shop, amy, consumer, ask):
    # when
    outcome = ask(consumer, "service", "rate", {"chat_id": chat_id(shop, consumer), "score": 4,
                                                "comment": "  quick and kind  "}, channel="cora.phone")

    # then: the reply says what was stored
    expected = {"chat_id": chat_id(shop, consumer), "shop_id": shop.pk, "session_id": closed_session.pk,
                "score": 4, "comment": "quick and kind", "agent_uid": amy.pk}
    assert outcome.code == Code.OK and outcome.result == expected
    closed_session.refresh_from_db()
    assert (closed_session.rating, closed_session.rating_comment) == (4, "quick and kind")
    assert closed_session.rated_at is not None
    # the shop's agents get a 308; the consumer's other sockets too (not the rating one)
    assert outcome.to(agents_of(shop), Code.SESSION_RATED) == [expected]
    [mine] = [s for s in outcome.sent if s.group == f"user.{consumer.pk}"]
    assert mine.code == Code.SESSION_RATED and mine.exclude == "cora.phone"


def test_a_session_is_named_by_its_id_as_well(closed_session, consumer, ask):
    outcome = rate(ask, consumer, session_id=closed_session.pk, score="5")

    assert outcome.code == Code.OK and outcome.result["score"] == 5 and outcome.result["comment"] == ""


def test_a_second_rating_is_refused_and_changes_nothing(closed_session, shop, consumer, ask):
    assert rate(ask, consumer, session_id=closed_session.pk, score=2, comment="slow").code == Code.OK

    again = rate(ask, consumer, chat_id=chat_id(shop, consumer), score=5, comment="actually great")

    assert again.code == Code.BAD_REQUEST and again.frame["msg"] == "chat_id: already rated"
    assert again.sent == []
    closed_session.refresh_from_db()
    assert (closed_session.rating, closed_session.rating_comment) == (2, "slow")


@pytest.mark.parametrize("score", [7, 0, -1, "abc", 2.5, True, None, "", [4], {"x": 1}, "4.5", 10**30])
def test_a_score_that_is_not_an_integer_from_1_to_5_is_refused_naming_the_field(closed_session, consumer, ask,
                                                                                   score):
    outcome = rate(ask, consumer, session_id=closed_session.pk, score=score)

    assert outcome.code == Code.BAD_REQUEST and outcome.frame["msg"] == "score: must be an integer from 1 to 5"
    closed_session.refresh_from_db()
    assert closed_session.rating is None


def test_a_comment_too_long_or_not_text_is_refused(closed_session, consumer, ask):
    long = rate(ask, consumer, session_id=closed_session.pk, score=3, comment="x" * 501)
    wrong = rate(ask, consumer, session_id=closed_session.pk, score=3, comment={"html": "<b>"})

    assert long.code == Code.BAD_REQUEST and long.frame["msg"] == "comment: at most 500 characters"
    assert wrong.code == Code.BAD_REQUEST and wrong.frame["msg"].startswith("comment:")
    assert ServiceSession.objects.get(pk=closed_session.pk).rating is None


def test_another_users_session_is_not_found_whether_named_by_id_or_chat(closed_session, shop, consumer2, ask):
    by_id = rate(ask, consumer2, session_id=closed_session.pk, score=1)
    by_chat = rate(ask, consumer2, chat_id=closed_session.conversation.chat_id, score=1)
    nothing = rate(ask, consumer2, session_id=closed_session.pk + 1000, score=1)

    assert by_id.code == by_chat.code == nothing.code == Code.NOT_FOUND
    assert by_id.frame["msg"] == nothing.frame["msg"] == "session_id: no such session"  # existence not revealed
    assert ServiceSession.objects.get(pk=closed_session.pk).rating is None


def test_the_shops_agent_cannot_rate_the_session_for_the_consumer(closed_session, amy, ask):
    outcome = rate(ask, amy, session_id=closed_session.pk, score=5)

    assert outcome.code == Code.NOT_FOUND


def test_an_open_session_cannot_be_rated(shop, amy, consumer, make_agent, connect, say, ask):
    make_agent(shop, amy)
    connect(amy)
    say(consumer, shop, "hi")
    session = ServiceSession.objects.get(consumer=consumer)

    by_id = rate(ask, consumer, session_id=session.pk, score=5)
    by_chat = rate(ask, consumer, chat_id=chat_id(shop, consumer), score=5)

    assert by_id.code == by_chat.code == Code.BAD_REQUEST
    assert by_id.frame["msg"] == "session_id: the session is not closed yet"
    assert by_chat.frame["msg"] == "chat_id: the session is not closed yet"


def test_after_the_window_the_rating_is_refused(closed_session, consumer, settings, ask):
    ServiceSession.objects.filter(pk=closed_session.pk).update(
        closed_at=timezone.now() - timedelta(seconds=settings.IM_CSAT_WINDOW_SECONDS + 1))

    outcome = rate(ask, consumer, session_id=closed_session.pk, score=5)

    assert outcome.code == Code.BAD_REQUEST and "too late" in outcome.frame["msg"]
    assert ServiceSession.objects.get(pk=closed_session.pk).rating is None


@pytest.mark.parametrize("content, msg", [
    ({"score": 5}, "session_id: required (or chat_id)"),
    ({"score": 5, "session_id": "x"}, "session_id: must be an integer"),
    ({"score": 5, "chat_id": "nonsense"}, "chat_id: not a valid chat id"),
    ({"score": 5, "chat_id": "x" * 65}, "chat_id: at most 64 characters"),
])
def test_a_missing_or_malformed_session_reference_is_a_bad_request(closed_session, consumer, ask, content, msg):
    outcome = rate(ask, consumer, **content)

    assert outcome.code == Code.BAD_REQUEST and outcome.frame["msg"] == msg


def test_a_private_chat_id_is_no_session(closed_session, consumer, consumer2, ask):
    low, high = sorted((consumer.pk, consumer2.pk))

    outcome = rate(ask, consumer, chat_id=f"{low}_{high}", score=5)

    assert outcome.code == Code.NOT_FOUND


def test_the_mall_hears_the_rating_through_the_session_rated_webhook(closed_session, shop, amy, consumer, ask,
                                                                      settings):
    settings.IM_WEBHOOK_URL, settings.IM_WEBHOOK_SECRET = "http://mall.invalid/hook", "s" * 32

    assert rate(ask, consumer, session_id=closed_session.pk, score=3, comment="ok").code == Code.OK

    [delivery] = WebhookDelivery.objects.filter(event="session.rated")
    body = json.loads(delivery.body)
    assert body["event"] == "session.rated"
    assert body["data"] == {"chat_id": chat_id(shop, consumer), "shop_id": shop.pk, "session_id": closed_session.pk,
                            "score": 3, "comment": "ok", "agent_uid": amy.pk, "consumer_uid": consumer.pk,
                            "rated_at": body["data"]["rated_at"]}


# --- Reads ----------------------------------------------------------------------------------------


def test_pending_lists_the_latest_closed_unrated_session_of_each_conversation(closed_session, shop, amy, consumer,
                                                                              say, ask):
    [pending] = ratings.pending_for(consumer.pk)
    assert pending["session_id"] == closed_session.pk and pending["chat_id"] == chat_id(shop, consumer)

    # a new session in the conversation: the old one is no longer what the page offers
    say(consumer, shop, "one more thing")
    assert ratings.pending_for(consumer.pk) == []

    # closed again and rated: nothing pending
    ask(amy, "service", "close", {"chat_id": chat_id(shop, consumer)})
    [pending] = ratings.pending_for(consumer.pk)
    assert pending["session_id"] != closed_session.pk
    rate(ask, consumer, session_id=pending["session_id"], score=5)
    assert ratings.pending_for(consumer.pk) == []


def test_the_summary_counts_per_shop_and_per_agent(shop, amy, ben, consumer, consumer2, consumer3, make_agent,
                                                  connect, say, ask):
    make_agent(shop, amy, max_sessions=2)
    make_agent(shop, ben, max_sessions=1)
    connect(amy)
    connect(ben)
    for person, score in ((consumer, 5), (consumer2, 3), (consumer3, 4)):
        say(person, shop, "hi")
        session = ServiceSession.objects.get(consumer=person)
        ask(session.agent, "service", "close", {"chat_id": chat_id(shop, person)})
        rate(ask, person, session_id=session.pk, score=score)
    by_agent = {row.agent_id: [] for row in ServiceSession.objects.all()}
    for row in ServiceSession.objects.all():
        by_agent[row.agent_id].append(row.rating)

    summary = ratings.rating_summary([shop.pk])

    assert summary["count"] == 3 and summary["average"] == 4.0
    assert summary["distribution"] == {"1": 0, "2": 0, "3": 1, "4": 1, "5": 1}
    assert [(s["shop_id"], s["count"]) for s in summary["shops"]] == [(shop.pk, 3)]
    assert {a["agent_uid"]: a["count"] for a in summary["agents"]} == {uid: len(v) for uid, v in by_agent.items()}
    for agent in summary["agents"]:
        scores = by_agent[agent["agent_uid"]]
        assert agent["average"] == round(sum(scores) / len(scores), 2)


# --- Through real sockets ---------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@synchronously
async def test_over_real_sockets_the_consumer_rates_after_the_close_and_the_agent_hears_308(
        shop, amy, consumer, make_agent):
    # given: cora's session with amy, closed by amy
    await database_sync_to_async(make_agent)(shop, amy)
    amys, cora = await open_socket(amy), await open_socket(consumer)
    assert (await request(cora, "chat", "sendMsg", consumer_frame(shop.pk, "hi")))["code"] == 1
    assert (await cora.receive_json_from(timeout=2))["result"]["event"] == "assigned"
    for _ in range(2):
        await amys.receive_json_from(timeout=2)  # 305 assigned, 200
    assert (await request(amys, "service", "close", {"chat_id": chat_id(shop, consumer)}))["code"] == 1
    closed = (await cora.receive_json_from(timeout=2))["result"]
    assert closed["event"] == "closed" and closed["rate_until"] > timezone.now().timestamp()

    # when: she rates it with the session_id the 305 gave
    reply = await request(cora, "service", "rate", {"session_id": closed["session_id"], "score": 5,
                                                    "comment": "thanks!"}, req_id="r1")
    twice = await request(cora, "service", "rate", {"session_id": closed["session_id"], "score": 1}, req_id="r2")

    # then: stored once; amy hears 308 with the rating, nothing of the refused second try
    assert reply["code"] == 1 and reply["req_id"] == "r1" and reply["result"]["score"] == 5
    assert twice["code"] == 0 and twice["msg"] == "session_id: already rated"
    pushed = await amys.receive_json_from(timeout=2)
    assert pushed == {"code": 308, "msg": None, "result": {
        "chat_id": chat_id(shop, consumer), "shop_id": shop.pk, "session_id": closed["session_id"], "score": 5,
        "comment": "thanks!", "agent_uid": amy.pk}}
    assert await amys.receive_nothing(timeout=0.2)
    assert await cora.receive_nothing(timeout=0.2)
    for socket in (amys, cora):
        await socket.disconnect()


# --- Where the shop's side sees the ratings --------------------------------------------------------


def test_the_workspace_customer_panel_and_the_dashboard_show_the_rating(closed_session, shop, amy, merchant,
                                                                        consumer, ask, client):
    rate(ask, consumer, session_id=closed_session.pk, score=4, comment="<b>nice</b>")
    client.force_login(amy)

    customer = client.get(f"/workspace/customer/?chat_id={chat_id(shop, consumer)}").json()
    client.force_login(merchant)
    dashboard = client.get("/dashboard/data/").json()

    [past] = customer["sessions"]
    assert (past["session_id"], past["rating"], past["rating_comment"]) == (closed_session.pk, 4, "<b>nice</b>")
    assert dashboard["ratings"]["count"] == 1 and dashboard["ratings"]["average"] == 4.0
    assert [(a["agent_uid"], a["name"], a["count"]) for a in dashboard["ratings"]["agents"]] == [(amy.pk, "Amy", 1)]


def test_the_admin_lists_and_filters_sessions_by_rating_for_the_merchants_own_shops(
        closed_session, shop, consumer, ask, client, make_agent, connect, say):
    # given: a rated session in the merchant's shop, and one in another merchant's shop
    rate(ask, consumer, session_id=closed_session.pk, score=2, comment="slow answer")
    rival = factories.make_user(username="rival")
    other = services.shop_create(name="Rival shop", owner=rival)
    outsider = factories.make_user(username="outsider")
    other_agent = factories.make_user(username="otheragent")
    make_agent(other, other_agent)
    connect(other_agent)
    say(outsider, other, "hi")
    ask(other_agent, "service", "close", {"chat_id": chat_id(other, outsider)})
    theirs = ServiceSession.objects.get(consumer=outsider)
    rate(ask, outsider, session_id=theirs.pk, score=2, comment="rival's secret")
    shop.owner.is_staff = True
    shop.owner.save(update_fields=["is_staff"])
    client.force_login(shop.owner)
    changelist = "/admin/customer_service/servicesession/"

    # when
    low = client.get(changelist, {"rating": "2"})
    high = client.get(changelist, {"rating": "5"})
    rated = client.get(changelist, {"rated": "yes"})

    # then: only the merchant's own shop's sessions, filtered by score
    assert low.status_code == 200
    assert list(low.context["cl"].result_list) == [closed_session]
    assert "slow answer" in low.content.decode() and "rival's secret" not in low.content.decode()
    assert list(high.context["cl"].result_list) == []
    assert list(rated.context["cl"].result_list) == [closed_session]


def test_seeddemo_makes_two_rated_past_sessions_once(db, settings):
    settings.DEBUG = True
    call_command("seeddemo", stdout=io.StringIO())
    call_command("seeddemo", stdout=io.StringIO())

    rated = ServiceSession.objects.filter(rating__isnull=False).order_by("closed_at")
    assert [(s.agent.username, s.rating) for s in rated] == [("ben", 4), ("amy", 5)]
    assert ratings.rating_summary([rated[0].shop_id])["average"] == 4.5
    assert ratings.pending_for(rated[0].consumer_id) == []
