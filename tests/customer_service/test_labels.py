"""A shop's labels on its sessions: only that shop's labels, set by its agents, pushed as 310 to them,
filtered in the workspace and counted in the reports."""

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from chat import realtime
from customer_service import desk, reports, services
from customer_service.models import ServiceSession, ShopLabel
from imchat.errors import AppError, Code
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def chat(shop, amy, consumer, make_agent, connect, say):
    make_agent(shop, amy)
    connect(amy)
    assert say(consumer, shop, "my parcel is broken").code == Code.OK
    return f"{shop.pk}____{consumer.pk}"


@pytest.fixture
def labels(shop):
    return {name: desk.label_create(shop=shop, name=name, color=color)
            for name, color in (("refund", "#DC2626"), ("vip", "#7c3aed"))}


@pytest.fixture
def other_shop(db):
    owner = factories.make_user(username="otherowner", nickname="Olga")
    return services.shop_create(name="Other shop", owner=owner)


def session_label_names(chat_id: str) -> list[str]:
    session = ServiceSession.objects.filter(conversation__chat_id=chat_id).order_by("-pk").first()
    return sorted(session.labels.values_list("name", flat=True))


def test_an_agent_lists_the_shops_labels_and_labels_the_session_by_id_and_name(chat, shop, amy, labels, ask):
    listed = ask(amy, "service", "labels", {"shop_id": shop.pk})
    changed = ask(amy, "service", "label", {"chat_id": chat, "add": [labels["refund"].pk, "vip"]}, channel="amy.1")

    assert listed.result == {"shop_id": shop.pk, "labels": [
        {"id": labels["refund"].pk, "name": "refund", "color": "#dc2626", "shop_id": shop.pk},
        {"id": labels["vip"].pk, "name": "vip", "color": "#7c3aed", "shop_id": shop.pk}]}
    session = ServiceSession.objects.get(conversation__chat_id=chat)
    expected = {"chat_id": chat, "shop_id": shop.pk, "session_id": session.pk, "labels": [
        {"id": labels["refund"].pk, "name": "refund", "color": "#dc2626"},
        {"id": labels["vip"].pk, "name": "vip", "color": "#7c3aed"}]}
    assert changed.code == Code.OK and changed.result == expected
    [push] = changed.with_code(Code.SESSION_LABELS)
    assert (push.group, push.exclude, push.result) == (realtime.shop_agents_group(shop.pk), "amy.1", expected)

    removed = ask(amy, "service", "label", {"chat_id": chat, "remove": ["refund"], "add": ["vip"]})
    assert [label["name"] for label in removed.result["labels"]] == ["vip"]


def test_another_shops_label_is_refused_and_nothing_changes(chat, shop, amy, labels, other_shop, ask):
    foreign = desk.label_create(shop=other_shop, name="spam")

    by_id = ask(amy, "service", "label", {"chat_id": chat, "add": [labels["vip"].pk, foreign.pk]})
    by_name = ask(amy, "service", "label", {"chat_id": chat, "add": ["vip", "spam"]})

    assert by_id.code == Code.NOT_FOUND and by_id.frame["msg"] == f"add: no such label in this shop: {foreign.pk}"
    assert by_name.code == Code.NOT_FOUND
    assert session_label_names(chat) == [] and not by_id.sent


def test_another_shops_agent_and_the_consumer_cannot_label_or_list(chat, shop, consumer, labels, other_shop, ask):
    intruder = factories.make_user(username="intruder")
    services.agent_add(shop=other_shop, user=intruder, status="online")

    for user in (intruder, consumer):
        assert ask(user, "service", "label", {"chat_id": chat, "add": ["vip"]}).code == Code.FORBIDDEN
        assert ask(user, "service", "labels", {"shop_id": shop.pk}).code == Code.FORBIDDEN
    assert session_label_names(chat) == []


@pytest.mark.parametrize(("content", "why"), [
    ({"add": "vip"}, "add: must be a list of label ids or names"),
    ({"add": [True]}, "add: must be a list of label ids or names"),
    ({"add": [{"id": 1}]}, "add: must be a list of label ids or names"),
    ({"add": ["x" * 40]}, "add: must be a list of label ids or names"),
    ({"add": ["v\x00ip"]}, "add: must be a list of label ids or names"),
    ({"remove": [2**63]}, "remove: must be a list of label ids or names"),
    ({"add": list(range(1, 60))}, "add: at most 50 items"),
    ({"add": ["vip"], "remove": ["vip"]}, "remove: a label cannot be added and removed at once"),
])
def test_bad_label_changes_get_code_0(chat, amy, labels, ask, content, why):
    outcome = ask(amy, "service", "label", {"chat_id": chat, **content})

    assert (outcome.code, outcome.frame["msg"]) == (Code.BAD_REQUEST, why)
    assert session_label_names(chat) == []


def test_label_names_are_unique_per_shop_and_colours_checked(shop, other_shop, labels):
    with pytest.raises(AppError, match="already has a label"):
        desk.label_create(shop=shop, name="vip")
    with pytest.raises(AppError, match="color: must be #rrggbb"):
        desk.label_create(shop=shop, name="new", color="red; background:url(x)")
    assert desk.label_create(shop=other_shop, name="vip").shop_id == other_shop.pk


def test_labels_apply_to_the_latest_session_after_it_closed(chat, amy, labels, ask):
    ask(amy, "service", "close", {"chat_id": chat})

    outcome = ask(amy, "service", "label", {"chat_id": chat, "add": ["refund"]})

    assert outcome.code == Code.OK and session_label_names(chat) == ["refund"]


def test_the_workspace_state_carries_labels_and_sessions_per_label_are_reported(chat, shop, amy, labels, ask,
                                                                                other_shop):
    ask(amy, "service", "label", {"chat_id": chat, "add": ["refund"]})
    desk.label_create(shop=other_shop, name="elsewhere")

    state = reports.workspace_state(user=amy, shop_ids=[shop.pk], base_url=factories.BASE_URL)
    now = timezone.now()
    counted = reports.sessions_per_label(shop_ids=[shop.pk], since=now - timedelta(days=1), until=now)
    before = reports.sessions_per_label(shop_ids=[shop.pk], since=now - timedelta(days=3),
                                        until=now - timedelta(days=2))

    assert [label["name"] for label in state["labels"]] == ["refund", "vip"]
    assert state["sessions"][0]["labels"] == [labels["refund"].pk]
    assert [(row["name"], row["sessions"]) for row in counted] == [("refund", 1), ("vip", 0)]
    assert [row["sessions"] for row in before] == [0, 0]


def test_the_admin_filters_sessions_by_label_offering_a_merchant_only_their_own(chat, shop, merchant, labels,
                                                                                  other_shop, ask, amy):
    ask(amy, "service", "label", {"chat_id": chat, "add": ["vip"]})
    foreign = desk.label_create(shop=other_shop, name="their-secret-label")
    merchant.is_staff = True
    merchant.save()
    client = Client()
    client.force_login(merchant)
    url = reverse("admin:customer_service_servicesession_changelist")

    page = client.get(url).content.decode()
    filtered = client.get(url, {"label": labels["vip"].pk}).content.decode()
    empty = client.get(url, {"label": labels["refund"].pk}).content.decode()
    foreign_filter = client.get(url, {"label": foreign.pk}).content.decode()
    label_list = client.get(reverse("admin:customer_service_shoplabel_changelist")).content.decode()
    refused = client.post(reverse("admin:customer_service_shoplabel_add"),
                          {"shop": other_shop.pk, "name": "sneaky", "color": "#000000"})

    assert "vip (Tea House)" in page and "their-secret-label" not in page
    assert "1 service session" in filtered and "0 service sessions" in empty
    assert "0 service sessions" in foreign_filter
    assert "their-secret-label" not in label_list and "refund" in label_list
    assert refused.status_code == 200 and not ShopLabel.objects.filter(name="sneaky").exists()


def test_a_change_that_changes_nothing_reads_the_labels_and_pushes_nothing(chat, amy, labels, ask):
    ask(amy, "service", "label", {"chat_id": chat, "add": ["vip"]})

    read = ask(amy, "service", "label", {"chat_id": chat})
    again = ask(amy, "service", "label", {"chat_id": chat, "add": ["vip"], "remove": ["refund"]})

    assert [label["name"] for label in read.result["labels"]] == ["vip"] and not read.sent
    assert again.result == read.result and not again.sent


def test_the_owners_dashboard_counts_conversations_per_label(chat, shop, merchant, amy, labels, ask):
    ask(amy, "service", "label", {"chat_id": chat, "add": ["vip"]})
    client = Client()
    client.force_login(merchant)

    page = client.get(reverse("dashboard")).content.decode()
    data = client.get(reverse("dashboard-data")).json()

    assert "Conversations per label, last 30 days" in page and "vip" in page
    assert [(row["name"], row["sessions"]) for row in data["labels"]] == [("vip", 1), ("refund", 0)]
    assert data["labels_max"] == 1
