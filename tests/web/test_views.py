"""The web pages through Django's test client: login and where it lands, who sees which shop, i18n, escaping."""

import json
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from chat.presence import presence
from customer_service import reports, services
from customer_service.models import QuickReply, ServiceSession
from customer_service.views import dashboard_shop_ids
from tests import factories
from tests.web.conftest import PASSWORD

XSS = "<script>alert(1)</script>"


def client_for(user=None, **headers) -> Client:
    client = Client(**headers)
    if user is not None:
        client.force_login(user)
    return client


def page_config(response) -> dict:
    html = response.content.decode()
    start = html.index('<script id="im-config" type="application/json">') + len(
        '<script id="im-config" type="application/json">')
    return json.loads(html[start:html.index("</script>", start)])


# --- login and logout ------------------------------------------------------------------------------


def test_the_login_page_has_a_labelled_form(db):
    response = Client().get(reverse("login"))

    assert response.status_code == 200
    html = response.content.decode()
    assert '<label for="id_username">' in html and '<label for="id_password">' in html
    assert 'autocomplete="current-password"' in html


@pytest.mark.parametrize(("username", "lands_on"), [("cora", "/chat/"), ("annaagent", "/workspace/"),
                                                      ("ownera", "/workspace/")])
def test_logging_in_sends_consumers_to_the_chat_and_agents_and_owners_to_the_workspace(world, username, lands_on):
    client = Client()

    response = client.post(reverse("login"), {"username": username, "password": PASSWORD}, follow=True)

    assert response.redirect_chain[-1][0] == lands_on
    assert response.status_code == 200


def test_a_wrong_password_shows_an_error_and_no_session(world):
    client = Client()

    response = client.post(reverse("login"), {"username": "cora", "password": "nope"})

    assert response.status_code == 200
    assert 'role="alert"' in response.content.decode()
    assert client.get(reverse("chat")).status_code == 302


def test_logging_out_ends_the_session(world):
    client = client_for(world.consumer_a)

    response = client.post(reverse("logout"))

    assert response.status_code == 302
    assert client.get(reverse("chat"))["Location"].startswith("/accounts/login/?next=/chat/")


@pytest.mark.parametrize("name", ["chat", "workspace", "dashboard", "start"])
def test_every_page_asks_for_a_login_first(db, name):
    response = Client().get(reverse(name))

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


@pytest.mark.parametrize("name", ["workspace-state", "workspace-customer", "dashboard-data", "shop-directory"])
def test_the_json_views_answer_401_not_a_login_page(db, name):
    response = Client().get(reverse(name))

    assert response.status_code == 401
    assert response.json() == {"detail": "not logged in"}


# --- consumer chat -----------------------------------------------------------------------------------


def test_the_chat_page_gives_its_script_the_user_the_socket_and_the_strings(world):
    response = client_for(world.consumer_b).get(reverse("chat") + "?shop=7")

    assert response.status_code == 200
    config = page_config(response)
    assert config["me"]["id"] == world.consumer_b.pk
    assert config["socket_path"] == "/ws/"
    assert config["open_shop"] == 7
    assert config["strings"]["connected"] == "Connected"
    assert 'src="/static/js/chat.js"' in response.content.decode()


def test_a_nickname_with_markup_is_escaped_in_the_page(world):
    response = client_for(world.consumer_a).get(reverse("chat"))

    html = response.content.decode()
    assert XSS not in html
    assert page_config(response)["me"]["name"] == "Cora " + XSS  # json_script escapes, JSON.parse restores


def test_the_shop_directory_says_which_shops_have_an_agent_online(world):
    presence().connected(world.agent_a.pk, "test.socket.a")
    services.agent_set_status(user=world.agent_a, status="online", base_url="http://testserver")

    shops = client_for(world.consumer_b).get(reverse("shop-directory")).json()["shops"]

    assert [(shop["name"], shop["online"]) for shop in shops] == [("Alpha Teas", True), ("Bravo Bikes", False)]


# --- agent workspace ------------------------------------------------------------------------------------


def test_a_consumer_may_not_open_the_workspace(world):
    client = client_for(world.consumer_a)

    assert client.get(reverse("workspace")).status_code == 403
    assert client.get(reverse("workspace-state")).status_code == 403


def test_an_agent_sees_only_the_sessions_agents_and_quick_replies_of_their_shop(world):
    QuickReply.objects.create(shop=world.shop_a, title="Hi", text="Hello from Alpha")
    QuickReply.objects.create(shop=world.shop_b, title="Yo", text="Hello from Bravo")
    # The automatic offline notice reads nothing for the shop: the consumer's first question, the
    # notice and this message are all unread on the shop side.
    services.consumer_message_send(caller=factories.caller_of(world.consumer_a), shop_id=world.shop_a.pk,
                                   msg_type=1, msg="anyone?", client_msg_id=None)

    state = client_for(world.agent_a).get(reverse("workspace-state")).json()

    assert [shop["name"] for shop in state["shops"]] == ["Alpha Teas"]
    assert [agent["name"] for agent in state["agents"]] == ["Anna Agent"]
    assert [(s["chat_id"], s["state"], s["queue_position"], s["unread_count"]) for s in state["sessions"]] == [
        (f"{world.shop_a.pk}____{world.consumer_a.pk}", "queued", 1, 3)]
    assert [reply["text"] for reply in state["quick_replies"]] == ["Hello from Alpha"]
    assert state["status"] == {str(world.shop_a.pk): "offline"}


def test_the_workspace_page_renders_the_same_state_for_its_script(world):
    response = client_for(world.owner_b).get(reverse("workspace"))

    assert response.status_code == 200
    config = page_config(response)
    assert [s["consumer"]["name"] for s in config["state"]["sessions"]] == ["Zed Customer"]
    assert config["state"]["status"] == {}  # the owner answers for the shop but has no agent status
    agent_page = client_for(world.agent_a).get(reverse("workspace"))
    assert "Bravo" not in json.dumps(page_config(agent_page))
    assert XSS not in agent_page.content.decode()  # the consumer's nickname, escaped by json_script
    assert page_config(agent_page)["state"]["sessions"][0]["consumer"]["name"] == "Cora " + XSS


def test_an_agent_reads_the_customer_summary_of_their_own_shop_only(world):
    own = f"{world.shop_a.pk}____{world.consumer_a.pk}"
    other = f"{world.shop_b.pk}____{world.consumer_b.pk}"
    client = client_for(world.agent_a)

    summary = client.get(reverse("workspace-customer"), {"chat_id": own}).json()

    assert summary["name"] == "Cora " + XSS
    assert summary["sessions_total"] == 1
    assert summary["sessions"][0]["state"] == "queued"
    assert client.get(reverse("workspace-customer"), {"chat_id": other}).status_code == 403
    assert client.get(reverse("workspace-customer"), {"chat_id": "1_2"}).status_code == 400
    assert client.get(reverse("workspace-customer"), {"chat_id": "nonsense"}).status_code == 400


def test_the_shop_side_opens_the_profile_of_its_own_customers_only(world):
    # given: zed wrote only to shop B; nobody has id 987654321
    not_theirs = f"{world.shop_a.pk}____{world.consumer_b.pk}"
    nobody = f"{world.shop_a.pk}____987654321"

    for viewer in (world.agent_a, world.owner_a):
        client = client_for(viewer)

        # when the agent or the owner of shop A asks for them under shop A
        answers = [client.get(reverse("workspace-customer"), {"chat_id": chat_id}) for chat_id in (not_theirs, nobody)]

        # then the same 404 for both, and nothing of the user in it
        assert [(a.status_code, a.json()) for a in answers] == [(404, {"detail": "not a customer of this shop"})] * 2


# --- merchant dashboard ------------------------------------------------------------------------------------


def test_only_owners_and_superusers_open_the_dashboard(world):
    assert client_for(world.agent_a).get(reverse("dashboard")).status_code == 403
    assert client_for(world.consumer_a).get(reverse("dashboard-data")).status_code == 403
    assert client_for(world.owner_a).get(reverse("dashboard")).status_code == 200
    assert dashboard_shop_ids(world.owner_a) == [world.shop_a.pk]
    assert dashboard_shop_ids(world.superuser) == [world.shop_a.pk, world.shop_b.pk]


def test_an_owner_sees_their_own_shop_and_not_another_one(world):
    client = client_for(world.owner_a)

    data = client.get(reverse("dashboard-data")).json()

    assert [agent["name"] for agent in data["agents"]] == ["Anna Agent"]
    assert data["queue"]["length"] == 1
    assert client.get(reverse("dashboard-data"), {"shop": world.shop_b.pk}).status_code == 403
    assert client.get(reverse("dashboard"), {"shop": world.shop_b.pk}).status_code == 403


def test_a_superuser_sees_every_shop_and_may_pick_one(world):
    client = client_for(world.superuser)

    everything = client.get(reverse("dashboard-data")).json()
    only_b = client.get(reverse("dashboard-data"), {"shop": world.shop_b.pk}).json()
    page = client.get(reverse("dashboard"), {"shop": world.shop_b.pk})

    assert sorted(agent["name"] for agent in everything["agents"]) == ["Anna Agent", "Boris Agent"]
    assert [agent["name"] for agent in only_b["agents"]] == ["Boris Agent"]
    assert '<option value="2" selected>Bravo Bikes</option>'.replace("2", str(world.shop_b.pk)) in page.content.decode()


def test_the_dashboard_times_first_replies_and_resolutions_from_the_session_timestamps(world):
    now = timezone.now()
    day_start = reports.start_of_day(now)
    session = ServiceSession.objects.get(shop=world.shop_a)
    created = max(day_start, now - timedelta(minutes=30))
    ServiceSession.objects.filter(pk=session.pk).update(
        state="closed", created_at=created, first_response_at=created + timedelta(seconds=40),
        closed_at=created + timedelta(seconds=600))

    data = reports.shop_dashboard(shop_ids=[world.shop_a.pk], base_url="http://testserver", now=now)

    assert data["sessions"] == {"today": 1, "open": 0, "closed_today": 1, "answered_today": 1}
    assert data["first_response"] == {"count": 1, "average": 40, "median": 40}
    assert data["resolution"] == {"count": 1, "average": 600, "median": 600}
    assert data["queue"] == {"length": 0, "longest_wait_seconds": 0}
    assert sum(bucket["sessions"] for bucket in data["hourly"]) == 1
    assert data["hourly"][timezone.localtime(created).hour]["sessions"] == 1


# --- quick replies in the merchant's admin ------------------------------------------------------------------


def test_a_merchant_keeps_quick_replies_for_their_own_shop_only_in_the_admin(world):
    QuickReply.objects.create(shop=world.shop_b, title="Bravo secret", text="not for A")
    client = client_for(world.owner_a)

    added = client.post(reverse("admin:customer_service_quickreply_add"),
                        {"shop": world.shop_a.pk, "title": "Greeting", "text": "Hello!", "order": 1})
    refused = client.post(reverse("admin:customer_service_quickreply_add"),
                          {"shop": world.shop_b.pk, "title": "Sneaky", "text": "x", "order": 1})
    listing = client.get(reverse("admin:customer_service_quickreply_changelist")).content.decode()

    assert added.status_code == 302
    assert refused.status_code == 200  # the form refuses a shop that is not theirs
    assert list(QuickReply.objects.filter(shop=world.shop_a).values_list("title", flat=True)) == ["Greeting"]
    assert "Greeting" in listing and "Bravo secret" not in listing


# --- languages ------------------------------------------------------------------------------------------


def test_accept_language_picks_chinese_and_the_switch_picks_english(world):
    chinese = client_for(world.consumer_a, HTTP_ACCEPT_LANGUAGE="zh-CN,zh;q=0.9")

    page = chinese.get(reverse("chat"))
    assert '<html lang="zh-hans">' in page.content.decode()
    assert "联系店铺" in page.content.decode()
    assert page_config(page)["strings"]["connected"] == "已连接"

    chinese.post(reverse("set_language"), {"language": "en", "next": "/chat/"})
    english = chinese.get(reverse("chat")).content.decode()
    assert '<html lang="en">' in english and "Contact a shop" in english


def test_the_login_page_speaks_chinese_too(db):
    html = Client(HTTP_ACCEPT_LANGUAGE="zh-CN").get(reverse("login")).content.decode()

    assert "登录 imchat" in html and "用户名" in html


# --- Numbers in query strings -------------------------------------------------------------------


@pytest.mark.parametrize("digits", ["²", "٣", "１", "9" * 5000, "-1", "1e3"])
@pytest.mark.parametrize("path", ["/chat/?shop={}", "/dashboard/?shop={}", "/dashboard/data/?shop={}"])
def test_a_number_in_a_page_query_that_is_not_ascii_digits_is_a_400_not_a_500(world, path, digits):
    response = client_for(world.owner_a).get(path.format(digits))

    assert response.status_code == 400


@pytest.mark.parametrize("digits", ["²", "٣", "１"])
@pytest.mark.parametrize("path", ["/api/v1/conversations/?is_service=true&shop_id={}",
                                  "/api/v1/conversations/1_2/messages/?before={}",
                                  "/api/v1/conversations/1_2/messages/?limit={}"])
def test_a_number_in_an_api_query_that_is_not_ascii_digits_is_a_400(world, path, digits):
    response = client_for(world.owner_a).get(path.format(digits))

    assert response.status_code == 400
    assert response.json()["code"] == 0


def test_every_string_the_pages_scripts_show_has_its_chinese_translation():
    from django.utils import translation

    from chat.views import CLIENT_STRINGS
    from customer_service.views import CSAT_STRINGS, GUARD_STRINGS, REPORT_STRINGS, SEARCH_STRINGS, WORKSPACE_STRINGS

    tables = (CLIENT_STRINGS, WORKSPACE_STRINGS, CSAT_STRINGS, REPORT_STRINGS, SEARCH_STRINGS, GUARD_STRINGS)
    with translation.override("en"):
        english = {(n, key): str(text) for n, table in enumerate(tables) for key, text in table.items()}
    with translation.override("zh-hans"):
        chinese = {(n, key): str(text) for n, table in enumerate(tables) for key, text in table.items()}
    same_in_both = {"—", "× {quantity}", "QQ"}
    untranslated = [text for key, text in english.items() if chinese[key] == text and text not in same_in_both]
    assert untranslated == []
