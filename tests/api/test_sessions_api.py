"""The session API (/api/v1/shops/{id}/sessions/, /api/v1/service-sessions/{id}/...): the shop's side,
superusers and the mall key; transfer and close under the socket's own rules, errors and pushes."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from chat.protocol import Caller
from customer_service import desk, handlers, services
from customer_service.models import Assignment, ServiceAgent, ServiceSession, WebhookDelivery
from imchat.errors import AppError, Code
from tests import factories
from tests.api.conftest import client_for
from tests.customer_service.conftest import consumer_frame

pytestmark = pytest.mark.django_db
KEY = "mall-key-for-the-session-tests-0123456789"


@pytest.fixture(autouse=True)
def mall_key(settings):
    settings.IM_MALL_API_KEY = KEY


def mall(key: str = KEY) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_X_IMCHAT_API_KEY=key)
    return client


def say(consumer, shop, msg: str = "hello") -> dict:
    response = client_for(consumer).post("/api/v1/messages/", consumer_frame(shop.pk, msg), format="json")
    assert response.status_code == 201, response.content
    return response.json()["result"]


@pytest.fixture
def served(shop, consumer, amy, ben, make_agent, connect):
    """amy and ben online and connected; cora's session is open with one of them."""
    make_agent(shop, amy)
    make_agent(shop, ben)
    connect(amy)
    connect(ben)
    say(consumer, shop, "hi")
    return ServiceSession.objects.get()


@pytest.fixture
def rival(db):
    """Another merchant's shop, with its own agent."""
    owner = factories.make_user(username="rex", nickname="Rex")
    agent = factories.make_user(username="rita", nickname="Rita")
    shop = services.shop_create(name="Rival", owner=owner)
    services.agent_add(shop=shop, user=agent, status="online", base_url=factories.BASE_URL)
    return owner, agent


def result(response, status: int = 200):
    assert response.status_code == status, response.content
    return response.json()["result"]


# --- Reading ------------------------------------------------------------------------------------


def test_the_owner_lists_the_shops_sessions_newest_first_with_each_filter(shop, merchant, consumer, amy, ben,
                                                                       make_agent, connect):
    make_agent(shop, amy)
    connect(amy)
    people = [factories.make_user(username=f"c{n}", nickname=f"C{n}") for n in range(3)]
    for person in people:
        say(person, shop)
    sessions = list(ServiceSession.objects.order_by("pk"))
    label = desk.label_create(shop=shop, name="refund")
    desk.session_labels_change(session=sessions[1], add=[label.pk])
    services.session_close(session=sessions[0], now=timezone.now())
    ServiceSession.objects.filter(pk=sessions[2].pk).update(created_at=timezone.now() - timedelta(days=3))
    api = client_for(merchant)

    everything = result(api.get(f"/api/v1/shops/{shop.pk}/sessions/"))
    assert [row["session_id"] for row in everything["rows"]] == [sessions[1].pk, sessions[0].pk, sessions[2].pk]
    assert everything["has_more"] is False
    row = everything["rows"][0]
    assert (row["state"], row["agent_uid"], row["agent_name"], row["consumer_uid"], row["labels"]) == (
        "open", amy.pk, "Amy", people[1].pk, [{"id": label.pk, "name": "refund", "color": label.color}])

    def ids(**query):
        return [row["session_id"] for row in result(api.get(f"/api/v1/shops/{shop.pk}/sessions/", query))["rows"]]

    assert ids(state="closed") == [sessions[0].pk]
    assert ids(label=label.pk) == [sessions[1].pk]
    assert ids(agent=amy.pk, state="open") == [sessions[1].pk, sessions[2].pk]
    assert ids(agent=ben.pk) == []
    day_ago = int((timezone.now() - timedelta(days=1)).timestamp())
    assert ids(since=day_ago) == [sessions[1].pk, sessions[0].pk]
    assert ids(until=day_ago) == [sessions[2].pk]
    first = result(api.get(f"/api/v1/shops/{shop.pk}/sessions/", {"page_size": 2}))
    second = result(api.get(f"/api/v1/shops/{shop.pk}/sessions/", {"page_size": 2, "page": 2}))
    assert (first["has_more"], second["has_more"]) == (True, False)
    assert [r["session_id"] for r in first["rows"] + second["rows"]] == [r["session_id"] for r in everything["rows"]]


@pytest.mark.parametrize("query", [{"page_size": 101}, {"page": 0}, {"state": "lost"}, {"agent": "١"},
                                   {"since": 100, "until": 100}, {"since": "x"}, {"until": 10**13}])
def test_bad_filters_get_a_400_naming_the_field(shop, merchant, query):
    response = client_for(merchant).get(f"/api/v1/shops/{shop.pk}/sessions/", query)

    assert response.status_code == 400
    assert response.json()["code"] == 0 and response.json()["msg"].split(":")[0] in query


def test_the_detail_has_the_assignments_in_order(served, merchant, amy, ben):
    first = served.agent_id
    other = ben.pk if first == amy.pk else amy.pk
    services.session_transfer(caller=Caller(user=served.agent, base_url=""), shop_id=served.shop_id,
                              chat_id=served.conversation.chat_id, to_uid=other, base_url="")

    detail = result(client_for(merchant).get(f"/api/v1/service-sessions/{served.pk}/"))

    assert (detail["session_id"], detail["agent_uid"], detail["state"]) == (served.pk, other, "open")
    assert [(a["agent_uid"], a["reason"]) for a in detail["assignments"]] == [(first, "strategy"), (other, "transfer")]
    assert detail["assignments"][1]["detail"] == f"from agent {first} by {first}"


def test_agents_superusers_and_the_mall_read_any_session_of_the_shop(served, amy, ben, superuser):
    for api in (client_for(amy), client_for(ben), client_for(superuser), mall()):
        assert result(api.get(f"/api/v1/service-sessions/{served.pk}/"))["session_id"] == served.pk
        assert result(api.get(f"/api/v1/shops/{served.shop_id}/sessions/"))["rows"][0]["session_id"] == served.pk


def test_others_are_refused_as_the_socket_refuses_them(served, consumer, rival):
    rival_owner, rival_agent = rival
    paths = [f"/api/v1/shops/{served.shop_id}/sessions/", f"/api/v1/service-sessions/{served.pk}/"]
    for who in (consumer, rival_owner, rival_agent):
        api = client_for(who)
        for path in paths:
            assert api.get(path).status_code == 403
        assert api.post(f"/api/v1/service-sessions/{served.pk}/close/").status_code == 403
        assert api.post(f"/api/v1/service-sessions/{served.pk}/transfer/", {"to_uid": 1}, format="json"
                        ).status_code == 403
    for path in paths:
        assert APIClient().get(path).status_code == 401
        assert mall("a-wrong-key-0123456789").get(path).status_code == 401
    assert ServiceSession.objects.get().state == "open"


def test_a_deactivated_agent_is_refused(served, amy):
    api = client_for(amy)
    amy.is_active = False
    amy.save(update_fields=["is_active"])

    assert api.get(f"/api/v1/service-sessions/{served.pk}/").status_code == 401


def test_unknown_ids_are_404(merchant, shop):
    assert client_for(merchant).get("/api/v1/service-sessions/999999/").status_code == 404
    assert mall().get("/api/v1/shops/999999/sessions/").status_code == 404
    assert mall().post("/api/v1/service-sessions/999999/close/").status_code == 404


def test_users_are_served_while_no_mall_key_is_set_and_the_key_is_refused(settings, served, merchant):
    settings.IM_MALL_API_KEY = ""

    assert client_for(merchant).get(f"/api/v1/service-sessions/{served.pk}/").status_code == 200
    refused = mall().get(f"/api/v1/service-sessions/{served.pk}/")
    assert refused.status_code == 403 and "IM_MALL_API_KEY" in refused.json()["msg"]


# --- Transfer and close: the socket's rules -----------------------------------------------------


def test_an_agent_transfers_over_rest_and_everyone_gets_the_305(served, amy, ben, consumer, captured_pushes):
    first = served.agent
    other = ben if first.pk == amy.pk else amy

    with captured_pushes() as sent:
        detail = result(client_for(first).post(f"/api/v1/service-sessions/{served.pk}/transfer/",
                                               {"to_uid": other.pk}, format="json"))

    assert (detail["agent_uid"], detail["assignments"][-1]["reason"]) == (other.pk, "transfer")
    told = {s.group for s in sent if s.code == Code.SESSION_EVENT and s.result["event"] == "transferred"}
    assert told == {f"user.{first.pk}", f"user.{other.pk}", f"user.{consumer.pk}"}


def test_the_mall_closes_a_session_the_consumer_may_rate_and_the_mall_hears_it(settings, served, consumer,
                                                                               captured_pushes):
    settings.IM_WEBHOOK_URL, settings.IM_WEBHOOK_SECRET = "https://mall.example.com/hook", "s" * 32

    with captured_pushes() as sent:
        detail = result(mall().post(f"/api/v1/service-sessions/{served.pk}/close/"))

    assert (detail["state"], detail["closed_at"] > 0) == ("closed", True)
    closed = [s for s in sent if s.code == Code.SESSION_EVENT and s.result["event"] == "closed"]
    assert {s.group for s in closed} == {f"user.{consumer.pk}", f"shop.{served.shop_id}.agents"}
    assert closed[0].result["session_id"] == served.pk and closed[0].result["rate_until"] > 0
    [event] = [json.loads(row.body)["data"] for row in WebhookDelivery.objects.filter(event="session.closed")]
    assert (event["closed_by"], event["by_uid"], event["session_id"]) == ("mall", 0, served.pk)


def test_the_mall_transfers_as_uid_0(served, amy, ben):
    other = ben if served.agent_id == amy.pk else amy

    result(mall().post(f"/api/v1/service-sessions/{served.pk}/transfer/", {"to_uid": other.pk}, format="json"))

    assignment = Assignment.objects.filter(session=served).last()
    assert (assignment.agent_id, assignment.detail) == (other.pk, f"from agent {served.agent_id} by the mall")


def socket_error(user, action: str, content: dict) -> tuple[int, str]:
    try:
        getattr(handlers, action)(Caller(user=user, base_url=""), content)
    except AppError as error:
        return int(error.code), error.msg
    raise AssertionError("the socket accepted it")


@pytest.mark.parametrize("case", ["not an agent", "offline agent", "already has it", "another shop's agent"])
def test_a_bad_transfer_gets_the_sockets_own_error(served, case, merchant, consumer, amy, ben, rival):
    offline = factories.make_user(username="olga", nickname="Olga")
    services.agent_add(shop=served.shop, user=offline, status=ServiceAgent.Status.OFFLINE,
                       base_url=factories.BASE_URL)
    to_uid = {"not an agent": consumer.pk, "offline agent": offline.pk, "already has it": served.agent_id,
              "another shop's agent": rival[1].pk}[case]

    response = client_for(merchant).post(f"/api/v1/service-sessions/{served.pk}/transfer/", {"to_uid": to_uid},
                                         format="json")

    expected = socket_error(merchant, "transfer", {"chat_id": served.conversation.chat_id, "to_uid": to_uid})
    assert response.status_code == 400
    assert (response.json()["code"], response.json()["msg"]) == expected
    assert ServiceSession.objects.get().agent_id == served.agent_id


@pytest.mark.parametrize("body", [{}, {"to_uid": 0}, {"to_uid": "x"}, {"to_uid": 2**63}, []])
def test_a_malformed_transfer_is_a_400(served, merchant, body):
    response = client_for(merchant).post(f"/api/v1/service-sessions/{served.pk}/transfer/", body, format="json")

    assert response.status_code == 400 and response.json()["code"] == 0


def test_a_closed_session_can_be_neither_closed_nor_transferred_again(served, merchant, amy, ben):
    api = client_for(merchant)
    result(api.post(f"/api/v1/service-sessions/{served.pk}/close/"))
    other = ben if served.agent_id == amy.pk else amy

    again = api.post(f"/api/v1/service-sessions/{served.pk}/close/")
    transfer = api.post(f"/api/v1/service-sessions/{served.pk}/transfer/", {"to_uid": other.pk}, format="json")

    assert again.status_code == 404 and again.json()["msg"] == "session_id: the session is closed"
    assert transfer.status_code == 404 and transfer.json()["msg"] == "session_id: the session is closed"


def test_an_old_session_id_does_not_reach_the_conversations_new_session(served, merchant, consumer, shop):
    result(client_for(merchant).post(f"/api/v1/service-sessions/{served.pk}/close/"))
    say(consumer, shop, "back again")  # a new session in the same conversation
    new = ServiceSession.objects.exclude(pk=served.pk).get()

    response = client_for(merchant).post(f"/api/v1/service-sessions/{served.pk}/close/")

    assert response.status_code == 404
    assert ServiceSession.objects.get(pk=new.pk).state == "open"


def test_closing_frees_room_and_the_queue_moves(shop, merchant, consumer, amy, make_agent, connect):
    consumer2 = factories.make_user(username="dora", nickname="Dora")
    make_agent(shop, amy, max_sessions=1)
    connect(amy)
    say(consumer, shop, "first")
    say(consumer2, shop, "second")
    first, second = ServiceSession.objects.order_by("pk")
    assert (first.state, second.state) == ("open", "queued")

    result(client_for(amy).post(f"/api/v1/service-sessions/{first.pk}/close/"))

    second.refresh_from_db()
    assert (second.state, second.agent_id) == ("open", amy.pk)
