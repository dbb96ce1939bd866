"""The contact guard over HTTP: the owner reads and sets the mode; the shop's agents and owner list
flagged messages; nobody else does either; the schema names both."""

import pytest
import yaml
from django.core.management import call_command

from customer_service.models import Shop
from tests import factories
from tests.customer_service.conftest import consumer_frame

pytestmark = pytest.mark.django_db
GUARD = "/api/v1/shops/{}/contact-guard/"
FLAGGED = "/api/v1/shops/{}/flagged-messages/"


def send(api, user, shop, text):
    response = api(user).post("/api/v1/messages/", consumer_frame(shop.pk, text), format="json")
    assert response.status_code == 201, response.json()
    return response.json()["result"]


def test_the_owner_reads_and_sets_the_mode_and_the_next_message_follows_it(merchant, shop, consumer, api):
    assert api(merchant).get(GUARD.format(shop.pk)).json()["result"] == {"shop_id": shop.pk, "contact_guard": "flag"}

    response = api(merchant).put(GUARD.format(shop.pk), {"contact_guard": "mask"}, format="json")

    assert response.status_code == 200 and response.json()["result"]["contact_guard"] == "mask"
    assert Shop.objects.get(pk=shop.pk).contact_guard == "mask"
    sent = send(api, consumer, shop, "加我微信 abc_12345")
    assert (sent["guard"], sent["msg"]) == ("masked", "加我微信 ***")


def test_nobody_but_the_owner_reads_or_changes_the_mode(merchant, shop, amy, consumer, make_agent, api):
    make_agent(shop, amy)
    other_owner = factories.make_user(username="otherowner")
    Shop.objects.create(name="Other", owner=other_owner)

    for user in (amy, consumer, other_owner):
        assert api(user).get(GUARD.format(shop.pk)).status_code == 403
        response = api(user).put(GUARD.format(shop.pk), {"contact_guard": "off"}, format="json")
        assert response.status_code == 403 and response.json()["code"] == -403
    assert Shop.objects.get(pk=shop.pk).contact_guard == "flag"
    assert api(merchant).put(GUARD.format(424242), {"contact_guard": "off"}, format="json").status_code == 404
    bad = api(merchant).put(GUARD.format(shop.pk), {"contact_guard": "loud"}, format="json")
    assert bad.status_code == 400 and bad.json()["msg"].startswith("contact_guard")
    assert api(merchant).put(GUARD.format(shop.pk), {}, format="json").status_code == 400
    assert Shop.objects.get(pk=shop.pk).contact_guard == "flag"


def test_the_shops_agents_and_owner_page_through_flagged_messages_newest_first(merchant, shop, amy, consumer,
                                                                                  make_agent, api):
    make_agent(shop, amy)
    texts = ["QQ 12345678", "您好", "电话 13800138000", "mail jane@gmail.com"]
    ids = [send(api, consumer, shop, text)["msg_id"] for text in texts]

    first = api(amy).get(FLAGGED.format(shop.pk), {"limit": 2}).json()["result"]
    second = api(merchant).get(FLAGGED.format(shop.pk), {"limit": 2, "page": 2}).json()["result"]

    assert first["total"] == 3 and second["total"] == 3
    assert [(row["msg_id"], row["kinds"]) for row in first["rows"]] == [(ids[3], ["email"]), (ids[2], ["phone"])]
    assert [row["msg_id"] for row in second["rows"]] == [ids[0]]
    row = second["rows"][0]
    assert row == {"msg_id": ids[0], "chat_id": f"{shop.pk}____{consumer.pk}", "seq": row["seq"],
                   "consumer_uid": consumer.pk, "from_uid": consumer.pk, "side": "consumer",
                   "nickname": consumer.display_name, "msg_type": 1, "msg": "QQ 12345678", "kinds": ["qq"],
                   "createtime": row["createtime"]}


def test_a_consumer_or_another_shops_owner_cannot_read_the_flagged_list(merchant, shop, consumer, api):
    send(api, consumer, shop, "QQ 12345678")
    other_owner = factories.make_user(username="otherowner")
    other = Shop.objects.create(name="Other", owner=other_owner)

    for user in (consumer, other_owner):
        response = api(user).get(FLAGGED.format(shop.pk))
        assert response.status_code == 403 and response.json()["code"] == -403
    assert api(other_owner).get(FLAGGED.format(other.pk)).json()["result"] == {"total": 0, "page": 1, "rows": []}
    assert api(merchant).get(FLAGGED.format(424242)).status_code == 404
    assert api(merchant).get(FLAGGED.format(shop.pk), {"limit": 1000}).status_code == 400
    assert api(merchant).get(FLAGGED.format(shop.pk), {"page": "x"}).status_code == 400


def test_the_schema_names_the_guard_and_the_flagged_list(tmp_path):
    target = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target))
    schema = yaml.safe_load(target.read_text())

    assert {"get", "put"} <= set(schema["paths"]["/api/v1/shops/{shop_id}/contact-guard/"])
    listing = schema["paths"]["/api/v1/shops/{shop_id}/flagged-messages/"]["get"]
    assert {p["name"] for p in listing["parameters"]} >= {"shop_id", "page", "limit"}
    assert "FlaggedMessageOut" in schema["components"]["schemas"]
