"""The merchant's shops and agents, and system notices, over HTTP."""

import pytest

from chat.models import Message, Notice
from customer_service.models import ServiceAgent, ServiceSession
from imchat.errors import Code
from tests import factories
from tests.customer_service.conftest import consumer_frame

pytestmark = pytest.mark.django_db
ONLINE, BUSY, OFFLINE = ServiceAgent.Status.ONLINE, ServiceAgent.Status.BUSY, ServiceAgent.Status.OFFLINE


def test_the_owner_lists_their_shops_with_agents_and_sessions_counted(merchant, shop, amy, consumer, make_agent,
                                                                       connect, api):
    make_agent(shop, amy)
    connect(amy)
    api(consumer).post("/api/v1/messages/", consumer_frame(shop.pk), format="json")
    factories.make_user(username="other")  # owns nothing

    rows = api(merchant).get("/api/v1/shops/").json()["result"]

    assert rows == [{
        "shop_id": shop.pk, "name": "Tea House", "logo": "http://testserver/media/shops/tea.png",
        "strategy": "least_busy", "offline_notice": "We are away; leave a message.", "agents": 1,
        "open_sessions": 1, "queued_sessions": 0,
    }]
    assert api(amy).get("/api/v1/shops/").json()["result"] == []


def test_agents_show_status_connection_and_load(merchant, shop, amy, ben, consumer, make_agent, connect, api):
    make_agent(shop, amy, max_sessions=1)
    make_agent(shop, ben, status=BUSY)
    connect(amy)
    api(consumer).post("/api/v1/messages/", consumer_frame(shop.pk), format="json")

    agents = api(merchant).get(f"/api/v1/shops/{shop.pk}/agents/").json()["result"]

    by_uid = {agent["uid"]: agent for agent in agents}
    assert (by_uid[amy.pk]["status"], by_uid[amy.pk]["open_sessions"], by_uid[amy.pk]["connected"],
            by_uid[amy.pk]["available"]) == (ONLINE, 1, True, False)
    assert by_uid[amy.pk]["last_assigned_at"] > 0 and by_uid[amy.pk]["avatar"] == "http://testserver/media/amy.png"
    assert (by_uid[ben.pk]["status"], by_uid[ben.pk]["open_sessions"], by_uid[ben.pk]["connected"]) == (BUSY, 0, False)


def test_the_owner_sets_an_agents_capacity_and_status_and_routing_follows(merchant, shop, amy, consumer, make_agent,
                                                                         connect, api, captured_pushes):
    # given: amy has no room, so the consumer is queued
    make_agent(shop, amy, max_sessions=0)
    connect(amy)
    api(consumer).post("/api/v1/messages/", consumer_frame(shop.pk), format="json")
    assert ServiceSession.objects.get().state == "queued"

    # when: the merchant gives her room
    with captured_pushes() as sent:
        response = api(merchant).patch(f"/api/v1/shops/{shop.pk}/agents/{amy.pk}/", {"max_sessions": 3},
                                       format="json")

    # then: the queue moved to her at once
    assert response.status_code == 200 and response.json()["result"]["max_sessions"] == 3
    assert ServiceSession.objects.get().agent_id == amy.pk
    assert any(s.code == Code.SESSION_EVENT and s.result["event"] == "assigned" for s in sent)

    offline = api(merchant).patch(f"/api/v1/shops/{shop.pk}/agents/{amy.pk}/", {"status": "offline"}, format="json")
    assert offline.json()["result"]["status"] == OFFLINE
    assert ServiceAgent.objects.get(user=amy).status == OFFLINE
    assert ServiceSession.objects.get().state == "queued"  # handed back: nobody else is online


def test_only_the_owner_manages_a_shop(merchant, shop, amy, make_agent, api):
    make_agent(shop, amy)

    for response in (
        api(amy).get(f"/api/v1/shops/{shop.pk}/agents/"),
        api(amy).patch(f"/api/v1/shops/{shop.pk}/agents/{amy.pk}/", {"status": "online"}, format="json"),
        api(amy).patch(f"/api/v1/shops/{shop.pk}/agents/{amy.pk}/", {"status": "nonsense"}, format="json"),
    ):
        assert response.status_code == 403 and response.json()["code"] == -403
    assert api(merchant).get("/api/v1/shops/424242/agents/").status_code == 404
    not_agent = api(merchant).patch(f"/api/v1/shops/{shop.pk}/agents/{merchant.pk}/", {"status": "online"},
                                    format="json")
    assert not_agent.status_code == 404
    bad = api(merchant).patch(f"/api/v1/shops/{shop.pk}/agents/{amy.pk}/", {"status": "away"}, format="json")
    assert bad.status_code == 400 and bad.json()["msg"].startswith("status:")
    empty = api(merchant).patch(f"/api/v1/shops/{shop.pk}/agents/{amy.pk}/", {}, format="json")
    assert empty.status_code == 400 and "status or max_sessions" in empty.json()["msg"]


# --- Notices ---------------------------------------------------------------------------------------


def test_platform_staff_send_a_notice_that_lands_in_the_users_box(superuser, alice, api, captured_pushes):
    with captured_pushes() as sent:
        response = api(superuser).post("/api/v1/notices/", {"audience": "user", "target_id": alice.pk,
                                                            "text": "Maintenance at 2am"}, format="json")

    assert response.status_code == 201
    result = response.json()["result"]
    assert (result["audience"], result["target_id"], result["recipients"]) == ("user", alice.pk, 1)
    assert Notice.objects.get(pk=result["notice_id"]).sent_by == superuser
    assert Message.objects.get(conversation__chat_id=f"sys_{alice.pk}").msg == "Maintenance at 2am"
    assert [(s.group, s.code) for s in sent] == [(f"user.{alice.pk}", Code.MESSAGE)]


def test_a_notice_to_everyone_is_stored_once(superuser, alice, bob, api):
    response = api(superuser).post("/api/v1/notices/", {"audience": "all", "text": "Hello all"}, format="json")

    assert response.json()["result"]["recipients"] == 1
    assert Message.objects.filter(conversation__chat_id="sys_0").count() == 1


def test_notices_are_for_platform_staff_only(staff, merchant, alice, api):
    # merchants are staff too (for their shop's admin): only superusers speak for the platform
    for user in (alice, merchant, staff):
        response = api(user).post("/api/v1/notices/", {"audience": "all", "text": "spam"}, format="json")
        assert response.status_code == 403 and response.json()["code"] == -403
    assert Notice.objects.count() == 0


def test_a_notice_needs_a_target_and_a_known_audience(superuser, api):
    missing = api(superuser).post("/api/v1/notices/", {"audience": "user", "text": "x"}, format="json")
    assert missing.status_code == 400 and missing.json()["msg"] == "target_id: required"
    unknown = api(superuser).post("/api/v1/notices/", {"audience": "martians", "text": "x"}, format="json")
    assert unknown.status_code == 400 and unknown.json()["msg"].startswith("audience:")
    nobody = api(superuser).post("/api/v1/notices/", {"audience": "user", "target_id": 999999, "text": "x"},
                                 format="json")
    assert nobody.status_code == 404


# --- Accounts --------------------------------------------------------------------------------------


def test_a_token_for_a_password_works_on_the_api(db, api):
    user = factories.make_user(username="gina", password=factories.PASSWORD)
    from rest_framework.test import APIClient

    anonymous = APIClient()
    wrong = anonymous.post("/api/v1/auth/token/", {"username": "gina", "password": "nope"}, format="json")
    assert wrong.status_code == 400 and wrong.json()["code"] == 0
    token = anonymous.post("/api/v1/auth/token/", {"username": "gina", "password": factories.PASSWORD},
                           format="json").json()["result"]["token"]

    anonymous.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    me = anonymous.get("/api/v1/me/").json()["result"]
    assert (me["id"], me["username"], me["is_superuser"]) == (user.pk, "gina", False)


def test_the_compat_authorizations_header_works_on_the_api_too(alice):
    from tests.api.conftest import client_for

    client = client_for(alice, header="HTTP_AUTHORIZATIONS", scheme="bear")

    assert client.get("/api/v1/me/").json()["result"]["id"] == alice.pk
