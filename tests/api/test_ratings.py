"""CSAT over REST: the consumer rates (POST /api/v1/ratings/), sees what waits for a rating, and the
shop's agents and owner read the ratings (GET /api/v1/shops/{id}/ratings/); attackers get nowhere."""

from datetime import timedelta

import pytest
import yaml
from django.core.management import call_command
from django.utils import timezone

from customer_service import services
from customer_service.models import ServiceSession
from tests import factories

pytestmark = pytest.mark.django_db


def close_session_of(consumer, shop, agent) -> ServiceSession:
    """The consumer writes, the agent answers and closes: a closed session to rate."""
    services.consumer_message_send(caller=factories.caller_of(consumer), shop_id=shop.pk, msg_type=1, msg="hi",
                                   client_msg_id=None)
    services.session_close_by_agent(caller=factories.caller_of(agent), chat_id=f"{shop.pk}____{consumer.pk}",
                                    base_url=factories.BASE_URL)
    return ServiceSession.objects.filter(consumer=consumer, shop=shop).latest("pk")


@pytest.fixture
def closed(shop, amy, consumer, make_agent, connect) -> ServiceSession:
    make_agent(shop, amy)
    connect(amy)
    return close_session_of(consumer, shop, amy)


def test_the_consumer_rates_their_closed_session(api, closed, shop, amy, consumer):
    reply = api(consumer).post("/api/v1/ratings/", {"session_id": closed.pk, "score": 5, "comment": "great"},
                               format="json")

    assert reply.status_code == 201
    assert reply.json() == {"code": 1, "msg": None, "result": {
        "chat_id": f"{shop.pk}____{consumer.pk}", "shop_id": shop.pk, "session_id": closed.pk, "score": 5,
        "comment": "great", "agent_uid": amy.pk}}
    assert ServiceSession.objects.get(pk=closed.pk).rating == 5


def test_pending_lists_what_the_consumer_may_still_rate(api, closed, shop, consumer):
    before = api(consumer).get("/api/v1/ratings/pending/").json()["result"]
    api(consumer).post("/api/v1/ratings/", {"chat_id": f"{shop.pk}____{consumer.pk}", "score": 4}, format="json")
    after = api(consumer).get("/api/v1/ratings/pending/").json()["result"]

    assert [(p["session_id"], p["shop_name"]) for p in before] == [(closed.pk, shop.name)]
    assert before[0]["rate_until"] == int(ServiceSession.objects.get(pk=closed.pk).closed_at.timestamp()) + 7 * 86400
    assert after == []


# --- Attackers --------------------------------------------------------------------------------------


def test_rating_another_users_session_is_not_found_and_changes_nothing(api, closed, shop, consumer):
    mallory = factories.make_user(username="mallory")

    by_id = api(mallory).post("/api/v1/ratings/", {"session_id": closed.pk, "score": 1}, format="json")
    by_chat = api(mallory).post("/api/v1/ratings/", {"chat_id": f"{shop.pk}____{consumer.pk}", "score": 1},
                                format="json")

    assert by_id.status_code == by_chat.status_code == 404
    assert by_id.json()["code"] == -404
    assert ServiceSession.objects.get(pk=closed.pk).rating is None


def test_rating_twice_is_refused_and_the_first_rating_stays(api, closed, consumer):
    first = api(consumer).post("/api/v1/ratings/", {"session_id": closed.pk, "score": 2}, format="json")
    second = api(consumer).post("/api/v1/ratings/", {"session_id": closed.pk, "score": 5, "comment": "x"},
                                format="json")

    assert first.status_code == 201
    assert second.status_code == 400 and second.json() == {"code": 0, "msg": "session_id: already rated",
                                                           "result": None}
    assert ServiceSession.objects.get(pk=closed.pk).rating == 2


def test_rating_an_open_session_is_refused(api, shop, amy, consumer, make_agent, connect):
    make_agent(shop, amy)
    connect(amy)
    services.consumer_message_send(caller=factories.caller_of(consumer), shop_id=shop.pk, msg_type=1, msg="hi",
                                   client_msg_id=None)
    session = ServiceSession.objects.get(consumer=consumer)

    reply = api(consumer).post("/api/v1/ratings/", {"session_id": session.pk, "score": 5}, format="json")

    assert reply.status_code == 400 and reply.json()["msg"] == "session_id: the session is not closed yet"


def test_rating_after_the_window_is_refused(api, closed, consumer, settings):
    ServiceSession.objects.filter(pk=closed.pk).update(
        closed_at=timezone.now() - timedelta(seconds=settings.IM_CSAT_WINDOW_SECONDS + 60))

    reply = api(consumer).post("/api/v1/ratings/", {"session_id": closed.pk, "score": 5}, format="json")

    assert reply.status_code == 400 and "too late" in reply.json()["msg"]
    assert ServiceSession.objects.get(pk=closed.pk).rating is None


@pytest.mark.parametrize("score", [7, 0, "abc", 2.5, True, None, "", [5]])
def test_a_score_outside_1_to_5_is_refused_naming_the_field(api, closed, consumer, score):
    reply = api(consumer).post("/api/v1/ratings/", {"session_id": closed.pk, "score": score}, format="json")

    assert reply.status_code == 400 and reply.json()["code"] == 0
    assert reply.json()["msg"].startswith("score: ")
    assert ServiceSession.objects.get(pk=closed.pk).rating is None


@pytest.mark.parametrize("body, field", [
    ({"score": 5}, "session_id"),
    ({"session_id": 1, "score": 5, "comment": "x" * 501}, "comment"),
    ({"chat_id": "x" * 65, "score": 5}, "chat_id"),
    ({"session_id": 2**70, "score": 5}, "session_id"),
])
def test_malformed_bodies_are_bad_requests_naming_the_field(api, closed, consumer, body, field):
    reply = api(consumer).post("/api/v1/ratings/", body, format="json")

    assert reply.status_code == 400 and reply.json()["msg"].startswith(f"{field}: ")


def test_a_body_that_is_not_an_object_is_refused(api, closed, consumer):
    reply = api(consumer).post("/api/v1/ratings/", [1, 2], format="json")

    assert reply.status_code == 400 and reply.json()["code"] == 0


def test_without_a_login_nothing_is_rated(closed):
    from rest_framework.test import APIClient

    reply = APIClient().post("/api/v1/ratings/", {"session_id": closed.pk, "score": 5}, format="json")

    assert reply.status_code == 401
    assert ServiceSession.objects.get(pk=closed.pk).rating is None


# --- The shop's side reads them -----------------------------------------------------------------------


def test_the_shops_agents_and_owner_list_its_ratings_with_filters_and_a_summary(
        api, closed, shop, amy, ben, merchant, consumer, make_agent):
    make_agent(shop, ben, status="offline")
    other = factories.make_user(username="olga")
    second = close_session_of(other, shop, amy)
    api(consumer).post("/api/v1/ratings/", {"session_id": closed.pk, "score": 5, "comment": "great"}, format="json")
    api(other).post("/api/v1/ratings/", {"session_id": second.pk, "score": 2}, format="json")

    everything = api(ben).get(f"/api/v1/shops/{shop.pk}/ratings/").json()["result"]
    low = api(merchant).get(f"/api/v1/shops/{shop.pk}/ratings/?score=2").json()["result"]
    amys = api(amy).get(f"/api/v1/shops/{shop.pk}/ratings/?agent_uid={amy.pk}").json()["result"]

    assert [(r["session_id"], r["score"]) for r in everything["rows"]] == [(second.pk, 2), (closed.pk, 5)]
    assert everything["total"] == 2 and everything["rows"][1]["comment"] == "great"
    assert everything["rows"][1]["consumer_name"] == "Cora" and everything["rows"][1]["agent_name"] == "Amy"
    assert everything["summary"]["average"] == 3.5 and everything["summary"]["count"] == 2
    assert everything["summary"]["distribution"] == {"1": 0, "2": 1, "3": 0, "4": 0, "5": 1}
    assert [r["session_id"] for r in low["rows"]] == [second.pk]
    assert amys["total"] == 2


def test_another_shops_people_and_consumers_cannot_read_the_ratings(api, closed, shop, consumer, merchant):
    stranger_owner = factories.make_user(username="otherowner")
    services.shop_create(name="Elsewhere", owner=stranger_owner)

    assert api(stranger_owner).get(f"/api/v1/shops/{shop.pk}/ratings/").status_code == 403
    assert api(consumer).get(f"/api/v1/shops/{shop.pk}/ratings/").status_code == 403
    assert api(merchant).get("/api/v1/shops/999999/ratings/").status_code == 404
    assert api(merchant).get(f"/api/v1/shops/{shop.pk}/ratings/?score=7").status_code == 400
    assert api(merchant).get(f"/api/v1/shops/{shop.pk}/ratings/?page=abc").status_code == 400
    assert api(merchant).get(f"/api/v1/shops/{shop.pk}/ratings/?since=1099511627775").status_code == 400


def test_the_schema_names_the_rating_resources(tmp_path):
    target = tmp_path / "schema.yaml"

    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target))

    schema = yaml.safe_load(target.read_text())
    assert {"/api/v1/ratings/", "/api/v1/ratings/pending/", "/api/v1/shops/{shop_id}/ratings/"} <= set(schema["paths"])
    assert schema["paths"]["/api/v1/ratings/"]["post"]["operationId"] == "sessionRate"
    assert {"RatingOut", "RatingRowOut", "RatingSummaryOut"} <= set(schema["components"]["schemas"])
