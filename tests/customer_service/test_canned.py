"""Canned replies: a `/shortcut` per shop and the variables {customer_name}, {shop_name}, {agent_name},
filled by one substitution (never str.format), over the socket, the admin and the service."""

import pytest
from django.test import Client
from django.urls import reverse

from customer_service import canned, services
from customer_service.models import QuickReply
from imchat.errors import AppError, Code
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def chat(shop, amy, consumer, make_agent, connect, say):
    make_agent(shop, amy)
    connect(amy)
    assert say(consumer, shop, "hi").code == Code.OK
    return f"{shop.pk}____{consumer.pk}"


def test_replies_come_rendered_for_the_open_conversation(chat, shop, amy, ask):
    hello = canned.reply_create(shop=shop, title="Hello", shortcut="/Hello",
                                text="Hi {customer_name}, {agent_name} of {shop_name} here. {customer_name}?")
    canned.reply_create(shop=shop, title="Bye", text="Bye!", order=1)

    outcome = ask(amy, "service", "cannedReplies", {"chat_id": chat})

    assert outcome.code == Code.OK
    assert outcome.result == {"chat_id": chat, "shop_id": shop.pk, "replies": [
        {"id": hello.pk, "shop_id": shop.pk, "shortcut": "hello", "title": "Hello", "order": 0,
         "text": "Hi Cora, Amy of Tea House here. Cora?"},
        {"id": hello.pk + 1, "shop_id": shop.pk, "shortcut": "", "title": "Bye", "order": 1, "text": "Bye!"}]}


@pytest.mark.parametrize("text", [
    "{customer_name.__class__}", "{customer_name.__class__.__init__.__globals__}", "{shop_name!r}",
    "{agent_name[0]}", "{order_id}", "{Customer_Name}", "ok {customer_name} then {agent_name.upper}",
])
def test_unknown_or_dotted_variables_are_refused_at_save(shop, text):
    with pytest.raises(AppError, match="text: unknown variable"):
        canned.reply_create(shop=shop, title="Evil", text=text)
    assert not QuickReply.objects.exists()


def test_rendering_never_formats_and_never_rescans_what_it_filled(chat, shop, amy, consumer, ask):
    consumer.nickname = "{shop_name} {agent_name.__class__}"
    consumer.save()
    # a row written before the check (or by SQL) with a token that is not a variable stays literal
    QuickReply.objects.create(shop=shop, title="Old", text="{customer_name} {customer_name.__class__} {0} {}")

    [reply] = ask(amy, "service", "cannedReplies", {"chat_id": chat}).result["replies"]

    assert reply["text"] == "{shop_name} {agent_name.__class__} {customer_name.__class__} {0} {}"
    assert canned.render("{shop_name}", {"shop_name": "{agent_name}", "agent_name": "x", "customer_name": ""}) \
        == "{agent_name}"


def test_shortcuts_are_slugs_unique_per_shop(shop):
    other = services.shop_create(name="Other", owner=factories.make_user(username="other"))
    canned.reply_create(shop=shop, title="A", shortcut="ship", text="x")

    with pytest.raises(AppError, match="already used"):
        canned.reply_create(shop=shop, title="B", shortcut="SHIP", text="y")
    for bad in ("has space", "ünï", "a" * 40, "../x", 7):
        with pytest.raises(AppError, match="shortcut"):
            canned.reply_create(shop=shop, title="C", shortcut=bad, text="z")
    assert canned.reply_create(shop=other, title="A", shortcut="ship", text="x").shortcut == "ship"
    assert canned.reply_create(shop=shop, title="D", text="no shortcut").shortcut == ""
    assert canned.reply_create(shop=shop, title="E", text="another without").shortcut == ""


def test_only_the_shop_side_gets_its_replies(chat, shop, consumer, ask):
    canned.reply_create(shop=shop, title="Internal", text="our script")
    stranger = factories.make_user(username="stranger")
    other = services.shop_create(name="Other", owner=stranger)

    assert ask(consumer, "service", "cannedReplies", {"chat_id": chat}).code == Code.FORBIDDEN
    assert ask(stranger, "service", "cannedReplies", {"chat_id": chat}).code == Code.FORBIDDEN
    assert ask(stranger, "service", "cannedReplies",
               {"chat_id": f"{other.pk}____{consumer.pk}"}).code == Code.NOT_FOUND


def test_the_admin_checks_shortcut_and_variables_and_keeps_to_the_merchants_shops(shop, merchant):
    merchant.is_staff = True
    merchant.save()
    other = services.shop_create(name="Other", owner=factories.make_user(username="other"))
    client = Client()
    client.force_login(merchant)
    url = reverse("admin:customer_service_quickreply_add")

    added = client.post(url, {"shop": shop.pk, "title": "Hi", "shortcut": "hi", "text": "Hi {customer_name}",
                              "order": 0})
    duplicate = client.post(url, {"shop": shop.pk, "title": "Hi2", "shortcut": "hi", "text": "x", "order": 0})
    injected = client.post(url, {"shop": shop.pk, "title": "Evil", "shortcut": "evil",
                                 "text": "{customer_name.__class__}", "order": 0})
    foreign = client.post(url, {"shop": other.pk, "title": "X", "shortcut": "x", "text": "x", "order": 0})

    assert added.status_code == 302
    assert duplicate.status_code == 200 and injected.status_code == 200 and foreign.status_code == 200
    assert "unknown variable" in injected.content.decode()
    assert list(QuickReply.objects.values_list("shortcut", flat=True)) == ["hi"]
