"""The desk over REST: labels and canned replies of a shop (owner manages, agents read), notes and
labels of a session (the shop side only), the label report, and the schema naming them all."""

import pytest
import yaml
from django.core.management import call_command

from chat.protocol import Caller
from customer_service import desk, services
from customer_service.models import QuickReply, ServiceSession, SessionNote, ShopLabel
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def session(shop, amy, consumer, make_agent, connect):
    make_agent(shop, amy)
    connect(amy)
    services.consumer_message_send(caller=Caller(user=consumer, base_url=factories.BASE_URL), shop_id=shop.pk,
                                   msg_type=1, msg="hello", client_msg_id=None)
    return ServiceSession.objects.get(shop=shop, consumer=consumer)


@pytest.fixture
def other_shop(db):
    return services.shop_create(name="Other", owner=factories.make_user(username="otherowner"))


def test_the_owner_manages_labels_and_agents_only_read_them(api, shop, merchant, amy, make_agent):
    make_agent(shop, amy)

    created = api(merchant).post(f"/api/v1/shops/{shop.pk}/labels/", {"name": "refund", "color": "#ff0000"},
                                 format="json")
    label_id = created.json()["result"]["id"]
    duplicate = api(merchant).post(f"/api/v1/shops/{shop.pk}/labels/", {"name": "refund"}, format="json")
    agent_create = api(amy).post(f"/api/v1/shops/{shop.pk}/labels/", {"name": "agent's"}, format="json")
    agent_list = api(amy).get(f"/api/v1/shops/{shop.pk}/labels/")
    renamed = api(merchant).patch(f"/api/v1/shops/{shop.pk}/labels/{label_id}/", {"name": "refunds"}, format="json")
    bad_colour = api(merchant).patch(f"/api/v1/shops/{shop.pk}/labels/{label_id}/", {"color": "red"}, format="json")

    assert created.status_code == 201 and created.json()["result"] == {"id": label_id, "name": "refund",
                                                                        "color": "#ff0000"}
    assert duplicate.status_code == 400 and duplicate.json()["code"] == 0
    assert agent_create.status_code == 403
    assert agent_list.json()["result"] == [{"id": label_id, "name": "refund", "color": "#ff0000"}]
    assert renamed.json()["result"]["name"] == "refunds"
    assert bad_colour.status_code == 400 and bad_colour.json()["msg"].startswith("color:")
    assert api(merchant).delete(f"/api/v1/shops/{shop.pk}/labels/{label_id}/").status_code == 200
    assert not ShopLabel.objects.exists()


def test_another_merchant_cannot_touch_a_shops_labels(api, shop, other_shop):
    label = desk.label_create(shop=shop, name="vip")
    stranger = other_shop.owner

    assert api(stranger).get(f"/api/v1/shops/{shop.pk}/labels/").status_code == 403
    assert api(stranger).delete(f"/api/v1/shops/{shop.pk}/labels/{label.pk}/").status_code == 403
    # their own shop's URL with this shop's label id: not found there
    assert api(stranger).delete(f"/api/v1/shops/{other_shop.pk}/labels/{label.pk}/").status_code == 404
    assert ShopLabel.objects.filter(pk=label.pk).exists()


def test_agents_write_and_read_a_sessions_notes_and_labels(api, shop, amy, consumer, session):
    desk.label_create(shop=shop, name="vip")
    url = f"/api/v1/service-sessions/{session.pk}"

    added = api(amy).post(f"{url}/notes/", {"text": "call back tomorrow"}, format="json")
    listed = api(amy).get(f"{url}/notes/")
    labelled = api(amy).patch(f"{url}/labels/", {"add": ["vip"]}, format="json")

    assert added.status_code == 201 and added.json()["result"]["text"] == "call back tomorrow"
    assert [note["text"] for note in listed.json()["result"]] == ["call back tomorrow"]
    assert [label["name"] for label in labelled.json()["result"]["labels"]] == ["vip"]
    assert api(amy).get(f"{url}/labels/").json()["result"]["session_id"] == session.pk


def test_the_consumer_and_other_shops_get_nothing_of_a_session(api, shop, consumer, session, other_shop):
    foreign = desk.label_create(shop=other_shop, name="theirs")
    url = f"/api/v1/service-sessions/{session.pk}"
    desk.note_add(author=shop.owner, session=session, text="private")

    for user in (consumer, other_shop.owner):
        assert api(user).get(f"{url}/notes/").status_code == 403
        assert api(user).post(f"{url}/notes/", {"text": "x"}, format="json").status_code == 403
        assert api(user).patch(f"{url}/labels/", {"add": ["vip"]}, format="json").status_code == 403
    wrong_label = api(shop.owner).patch(f"{url}/labels/", {"add": [foreign.pk]}, format="json")
    assert wrong_label.status_code == 404
    assert api(consumer).get("/api/v1/service-sessions/999999/notes/").status_code == 404
    assert SessionNote.objects.count() == 1 and not session.labels.exists()


def test_canned_replies_crud_for_the_owner_read_for_agents(api, shop, merchant, amy, make_agent, other_shop):
    make_agent(shop, amy)
    base = f"/api/v1/shops/{shop.pk}/canned-replies/"

    created = api(merchant).post(base, {"title": "Hi", "shortcut": "hi", "text": "Hi {customer_name}!"},
                                 format="json")
    reply_id = created.json()["result"]["id"]
    injected = api(merchant).post(base, {"title": "Evil", "text": "{customer_name.__class__}"}, format="json")
    taken = api(merchant).post(base, {"title": "Again", "shortcut": "hi", "text": "x"}, format="json")
    by_agent = api(amy).post(base, {"title": "Mine", "text": "x"}, format="json")
    agent_reads = api(amy).get(base)
    changed = api(merchant).patch(f"{base}{reply_id}/", {"shortcut": "hello"}, format="json")
    stranger = api(other_shop.owner).get(base)
    cross = api(other_shop.owner).patch(f"/api/v1/shops/{other_shop.pk}/canned-replies/{reply_id}/",
                                        {"text": "pwned"}, format="json")

    assert created.status_code == 201 and created.json()["result"]["shortcut"] == "hi"
    assert injected.status_code == 400 and "unknown variable" in injected.json()["msg"]
    assert taken.status_code == 400 and by_agent.status_code == 403
    assert [reply["text"] for reply in agent_reads.json()["result"]] == ["Hi {customer_name}!"]
    assert changed.json()["result"]["shortcut"] == "hello"
    assert stranger.status_code == 403 and cross.status_code == 404
    assert api(merchant).delete(f"{base}{reply_id}/").status_code == 200
    assert not QuickReply.objects.exists()


def test_the_owner_gets_sessions_per_label_in_a_period(api, shop, merchant, amy, session):
    desk.label_create(shop=shop, name="vip")
    desk.session_labels_change(session=session, add=["vip"])
    url = f"/api/v1/shops/{shop.pk}/labels/report/"

    report = api(merchant).get(url)
    backwards = api(merchant).get(url, {"since": 2000, "until": 1000})
    far = api(merchant).get(url, {"since": 0, "until": 2**40})
    last = api(merchant).get(url, {"since": 253402214400 - 86400, "until": 253402214400})

    assert [(row["name"], row["sessions"]) for row in report.json()["result"]] == [("vip", 1)]
    assert backwards.status_code == 400 and far.status_code == 400
    assert last.status_code == 200 and [row["sessions"] for row in last.json()["result"]] == [0]
    assert api(amy).get(url).status_code == 403


def test_the_schema_names_the_desk_resources(tmp_path):
    target = tmp_path / "schema.yaml"

    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target))

    paths = set(yaml.safe_load(target.read_text())["paths"])
    assert {"/api/v1/shops/{shop_id}/labels/", "/api/v1/shops/{shop_id}/labels/{label_id}/",
            "/api/v1/shops/{shop_id}/labels/report/", "/api/v1/shops/{shop_id}/canned-replies/",
            "/api/v1/shops/{shop_id}/canned-replies/{reply_id}/", "/api/v1/service-sessions/{session_id}/notes/",
            "/api/v1/service-sessions/{session_id}/labels/"} <= paths


