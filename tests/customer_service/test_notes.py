"""Private notes on customer-service sessions: the shop side writes and reads them, the consumer never
sees them (no push, not in chatRecord, getChatRecord, sync or the recent list)."""

import json

import pytest
from django.test import Client

from chat import realtime
from customer_service import desk, services
from customer_service.models import ServiceSession, SessionNote
from imchat.errors import Code
from tests import factories

pytestmark = pytest.mark.django_db

SECRET = "customer is rude, offer voucher SECRET-42"


@pytest.fixture
def chat(shop, amy, consumer, make_agent, connect, say):
    """amy serves the shop and has the consumer's open session."""
    make_agent(shop, amy)
    connect(amy)
    assert say(consumer, shop, "where is my order?").code == Code.OK
    return f"{shop.pk}____{consumer.pk}"


@pytest.fixture
def other_shop(db):
    owner = factories.make_user(username="otherowner", nickname="Olga")
    return services.shop_create(name="Other shop", owner=owner)


def test_an_agent_adds_a_note_the_shops_other_sockets_hear_and_the_consumer_does_not(
        chat, shop, amy, ben, consumer, make_agent, ask):
    make_agent(shop, ben)

    added = ask(amy, "service", "note", {"chat_id": chat, "text": f"  {SECRET}  "}, channel="amy.laptop")

    assert added.code == Code.OK
    note = added.result
    assert note["text"] == SECRET and note["author_uid"] == amy.pk and note["author_name"] == "Amy"
    assert note["session_id"] == ServiceSession.objects.get(conversation__chat_id=chat).pk
    assert isinstance(note["createtime"], int)
    [push] = added.with_code(Code.SESSION_NOTE)
    assert push.group == realtime.shop_agents_group(shop.pk)
    assert push.exclude == "amy.laptop"  # the echo rule: the acting socket has the reply
    assert push.result == {"chat_id": chat, "shop_id": shop.pk, "note": note}
    assert added.to(realtime.user_group(consumer.pk)) == []

    listed = ask(ben, "service", "notes", {"chat_id": chat})
    assert listed.code == Code.OK
    assert listed.result == {"chat_id": chat, "shop_id": shop.pk, "notes": [note]}


def test_notes_are_listed_oldest_first_across_the_conversations_sessions(chat, shop, amy, merchant, ask):
    ask(amy, "service", "note", {"chat_id": chat, "text": "first"})
    ask(amy, "service", "close", {"chat_id": chat})
    ask(merchant, "service", "note", {"chat_id": chat, "text": "second, by the owner"})

    notes = ask(amy, "service", "notes", {"chat_id": chat}).result["notes"]

    assert [note["text"] for note in notes] == ["first", "second, by the owner"]
    assert notes[1]["author_uid"] == merchant.pk


def test_the_consumer_can_neither_write_nor_read_notes_of_their_own_chat(chat, consumer, amy, ask):
    ask(amy, "service", "note", {"chat_id": chat, "text": SECRET})

    wrote = ask(consumer, "service", "note", {"chat_id": chat, "text": "let me in"})
    read = ask(consumer, "service", "notes", {"chat_id": chat})

    assert wrote.code == Code.FORBIDDEN and read.code == Code.FORBIDDEN
    assert SessionNote.objects.count() == 1


def test_a_note_never_reaches_the_consumers_history_sync_or_list(chat, shop, consumer, amy, ask, answer):
    answer(amy, shop, consumer, "checking")
    ask(amy, "service", "note", {"chat_id": chat, "text": SECRET})

    record = ask(consumer, "user", "chatRecord", {"chat_id": chat})
    synced = ask(consumer, "chat", "sync", {"chats": {chat: 0}, "since": 0})
    recent = ask(consumer, "user", "recentChat", {})
    http = Client().post("/user/getChatRecord", {"chat_id": chat}, content_type="application/json",
                         HTTP_AUTHORIZATIONS=f"bear {factories.token_for(consumer)}")

    assert record.code == Code.CHAT_RECORD and [row["msg"] for row in record.result["rows"]] == [
        "checking", "where is my order?"]
    assert synced.code == Code.OK and len(synced.result["messages"]) == 2
    assert http.status_code == 200 and http.json()["code"] == 1
    for seen in (record.frame, synced.frame, recent.frame, http.json()):
        assert "SECRET-42" not in json.dumps(seen)


def test_a_note_on_another_shops_session_is_refused_and_nothing_is_stored(chat, other_shop, ask):
    intruder = factories.make_user(username="intruder", nickname="Ivan")
    services.agent_add(shop=other_shop, user=intruder, status="online")

    wrote = ask(intruder, "service", "note", {"chat_id": chat, "text": "mine now"})
    read = ask(intruder, "service", "notes", {"chat_id": chat})
    forged = ask(intruder, "service", "note", {"chat_id": f"{other_shop.pk}____{chat.split('____')[1]}",
                                               "text": "no such conversation"})

    assert wrote.code == Code.FORBIDDEN and read.code == Code.FORBIDDEN
    assert forged.code == Code.NOT_FOUND
    assert SessionNote.objects.count() == 0


@pytest.mark.parametrize(("content", "why"), [
    ({"text": "x"}, "chat_id: required"),
    ({"chat_id": "1_2", "text": "x"}, "chat_id: not a customer-service chat"),
    ({"chat_id": "CHAT", "text": ""}, "text: required"),
    ({"chat_id": "CHAT", "text": "   "}, "text: required"),
    ({"chat_id": "CHAT", "text": ["a"]}, "text: required"),
    ({"chat_id": "CHAT", "text": "x" * (desk.NOTE_MAX_CHARS + 1)}, f"text: at most {desk.NOTE_MAX_CHARS} characters"),
    ({"chat_id": "CHAT", "text": "a\x00b"}, "text: must not contain NUL characters"),
])
def test_bad_notes_get_code_0_naming_the_field(chat, amy, ask, content, why):
    content = {key: chat if value == "CHAT" else value for key, value in content.items()}

    outcome = ask(amy, "service", "note", content)

    assert (outcome.code, outcome.frame["msg"]) == (Code.BAD_REQUEST, why)
    assert SessionNote.objects.count() == 0
