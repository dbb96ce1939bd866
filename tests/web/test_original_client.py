"""The original compiled H5 client (what the shops run), unchanged but for its server address, against a
real daphne: an agent answers a customer through it, and two customers chat with each other.

One site for the module (SQLite, the in-memory layer); the client is served from another origin, which
is in CORS_ALLOWED_ORIGINS (and ALLOWED_HOSTS does not admit it on its own). Each person has their own
browser context, as each keeps their login in localStorage. Every page is checked at the end for what
the client would hide: console errors, refused HTTP answers, refused socket replies.
"""

import json
import re
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.harness import Server, Site, base_env, free_port, http_post
from tests.web.original_client import (NO_CHATS, WAIT_MS, ClientPage, client_dir, is_mark_read, is_read_reply,
                                      patched_copy, static_site)

pytestmark = [pytest.mark.e2e, pytest.mark.chromium]

PEOPLE = """
import json
from accounts.services import user_create
from accounts.tokens import token_mint
from customer_service import services
from customer_service.models import ServiceAgent
from imchat.links import default_base_url

people = {name: user_create(username=name, nickname=nickname) for name, nickname in (
    ("merchant", "Merchant"), ("anna", "Anna Agent"), ("cora", "Cora"), ("dan", "Dan"), ("eve", "Eve"))}
shop = services.shop_create(name="Tea Shop", owner=people["merchant"])
services.agent_add(shop=shop, user=people["anna"], status=ServiceAgent.Status.ONLINE, base_url=default_base_url())
print(json.dumps({"shop": shop.pk, **{name: [user.pk, token_mint(user_id=user.pk)] for name, user in people.items()}}))
"""


# A traceback, a logged error or warning, or an access-log line with an HTTP status of 400 or more.
SERVER_TROUBLE = re.compile(r'Traceback|\b(ERROR|WARNING|CRITICAL)\b|" [45]\d\d ')


@dataclass(frozen=True)
class Person:
    id: int
    token: str


@dataclass
class ClientSite:
    site: Site
    server: Server
    origin: str
    shop_id: int
    people: dict[str, Person]


@pytest.fixture(scope="module")
def client_site(browser) -> Iterator[ClientSite]:
    source = client_dir()
    with tempfile.TemporaryDirectory(prefix="imchat-original-client-") as var_dir:
        files_port = free_port()
        origin = f"http://localhost:{files_port}"
        site = Site(env=base_env(var_dir, ALLOWED_HOSTS="127.0.0.1", CORS_ALLOWED_ORIGINS=origin))
        site.migrate()
        made = json.loads(site.manage("shell", "-c", PEOPLE).strip().splitlines()[-1])
        shop_id = made.pop("shop")
        try:
            [server] = site.start(1)
            copy = patched_copy(source, Path(var_dir) / "client", server)
            with static_site(copy, files_port) as served:
                assert served == origin
                yield ClientSite(site, server, origin, shop_id, {name: Person(*pair) for name, pair in made.items()})
        finally:
            site.stop()


@pytest.fixture
def open_client(browser, client_site) -> Iterator[Callable[..., ClientPage]]:
    """`open_client(name, is_service=False)`: that person's client, logged in on its list page.

    After the test every page is checked for what the client hides (console errors, refused answers),
    and the server's log for errors and refused requests."""
    opened: dict[str, ClientPage] = {}
    log_start = client_site.server.log_path.stat().st_size

    def open_as(name: str, *, is_service: bool = False) -> ClientPage:
        person = client_site.people[name]
        opened[name] = ClientPage(browser, client_site.origin, client_site.server, person.token,
                                  is_service=is_service)
        return opened[name]

    yield open_as
    problems = {name: page.problems() for name, page in opened.items()}
    for page in opened.values():
        page.close()
    with open(client_site.server.log_path, errors="replace") as log:
        log.seek(log_start)
        problems["server"] = [line for line in log.read().splitlines() if SERVER_TROUBLE.search(line)]
    assert {name: found for name, found in problems.items() if found} == {}


def test_an_agent_answers_a_customer_who_asked_through_the_shops_link(client_site, open_client):
    shop, cora = client_site.shop_id, client_site.people["cora"]
    chat_id = f"{shop}____{cora.id}"

    # given: the agent's list (isService=1) is open and empty; the customer is logged in
    agent = open_client("anna", is_service=True)
    agent.page.get_by_text(NO_CHATS).wait_for(timeout=WAIT_MS)
    customer = open_client("cora")

    # when: the customer opens the chat with the shop by link and asks
    history = customer.open_chat_by_link(shop, "Tea Shop", shop_id=shop)
    assert history == {"code": 1, "msg": None, "result": {"rows": [], "total": 0}}
    sent = customer.say("Is the oolong in stock?")

    # then: stored under the shop-first chat_id; the agent's list shows the row with one unread
    assert sent["code"] == 1 and sent["result"]["chat_id"] == chat_id
    customer.bubble("Is the oolong in stock?", mine=True).wait_for(timeout=WAIT_MS)
    row = agent.row("Cora")
    row.locator(".content-o", has_text="Is the oolong in stock?").wait_for(timeout=WAIT_MS)
    assert row.locator(".uni-badge").inner_text(timeout=WAIT_MS) == "1"
    assert agent.page.locator(".uni-tabbar__badge").inner_text(timeout=WAIT_MS) == "1"  # the tab's total

    # when: the agent opens it
    with agent.expect_frame_sent(is_mark_read) as marked, agent.expect_frame_received(is_read_reply) as read:
        history = agent.open_row("Cora")

    # then: the shop side's history (asked with chat_id alone), shown as the customer's bubble
    assert history["code"] == 1, history
    assert [(row["msg"], row["mine"]) for row in history["result"]["rows"]] == [("Is the oolong in stock?", False)]
    agent.bubble("Is the oolong in stock?", mine=False).wait_for(timeout=WAIT_MS)
    # ... marked read for the shop (role_type 1), and back on the list the server counts nothing unread
    assert marked.value == {"class": "chat", "action": "setChatRead", "content": {"chat_id": chat_id,
                                                                                    "role_type": 1}}
    assert read.value == {"code": 1, "msg": None, "result": {"chat_id": chat_id, "seq": 1}}
    listed = agent.back_to_list()
    assert [(row["chat_id"], row["unread_count"]) for row in listed["result"]["rows"]] == [(chat_id, 0)]
    agent.row("Cora").locator(".uni-badge").wait_for(state="detached", timeout=WAIT_MS)
    agent.page.locator(".uni-tabbar__badge").wait_for(state="detached", timeout=WAIT_MS)
    agent.open_row("Cora")

    # given: the customer keeps the conversation open (from their list: a page opened by link has no
    # chat_id, and the client draws a pushed message only on the page of that chat_id)
    customer.open_list()
    customer.row("Tea Shop").locator(".content-o", has_text="Is the oolong in stock?").wait_for(timeout=WAIT_MS)
    customer.open_row("Tea Shop")
    customer.bubble("Is the oolong in stock?", mine=True).wait_for(timeout=WAIT_MS)

    # when: the agent answers
    answered = agent.say("Yes, three tins left.")

    # then: the customer sees the answer at once, as the shop's bubble
    assert answered["code"] == 1 and answered["result"]["chat_id"] == chat_id
    customer.bubble("Yes, three tins left.", mine=False).wait_for(timeout=WAIT_MS)
    agent.bubble("Yes, three tins left.", mine=True).wait_for(timeout=WAIT_MS)
    assert customer.bubble_texts() == ["Is the oolong in stock?", "Yes, three tins left."]

    # and the customer's thanks, from the page opened from the list, reaches the agent at once
    customer.say("Great, I'll take two.")
    agent.bubble("Great, I'll take two.", mine=False).wait_for(timeout=WAIT_MS)

    # and the shop's link, opened again, shows the whole conversation from the server
    history = customer.open_chat_by_link(shop, "Tea Shop", shop_id=shop)
    assert [(row["msg"], row["mine"]) for row in history["result"]["rows"]] == [
        ("Great, I'll take two.", True), ("Yes, three tins left.", False), ("Is the oolong in stock?", True)]
    customer.bubble("Yes, three tins left.", mine=False).wait_for(timeout=WAIT_MS)


def test_two_customers_chat_with_each_other(client_site, open_client):
    dan, eve = client_site.people["dan"], client_site.people["eve"]
    chat_id = f"{min(dan.id, eve.id)}_{max(dan.id, eve.id)}"
    eve_page = open_client("eve")
    dan_page = open_client("dan")

    # when: dan opens a chat with eve by link and writes
    dan_page.open_chat_by_link(eve.id, "Eve")
    sent = dan_page.say("Hi Eve, coffee later?")

    # then: eve's list shows it, unread
    assert sent["code"] == 1 and sent["result"]["chat_id"] == chat_id
    row = eve_page.row("Dan")
    row.locator(".content-o", has_text="Hi Eve, coffee later?").wait_for(timeout=WAIT_MS)
    assert row.locator(".uni-badge").inner_text(timeout=WAIT_MS) == "1"

    # when: eve opens it and answers
    with eve_page.expect_frame_sent(is_mark_read) as marked:
        eve_page.open_row("Dan")
    eve_page.bubble("Hi Eve, coffee later?", mine=False).wait_for(timeout=WAIT_MS)
    assert marked.value["content"] == {"chat_id": chat_id, "role_type": 0}
    eve_page.say("Sure, at four.")

    # then: dan's list shows her answer, unread; opening it shows both
    dan_page.open_list()
    row = dan_page.row("Eve")
    row.locator(".content-o", has_text="Sure, at four.").wait_for(timeout=WAIT_MS)
    assert row.locator(".uni-badge").inner_text(timeout=WAIT_MS) == "1"
    dan_page.open_row("Eve")
    dan_page.bubble("Sure, at four.", mine=False).wait_for(timeout=WAIT_MS)
    assert dan_page.bubble_texts() == ["Hi Eve, coffee later?", "Sure, at four."]

    # and from now on both see each other's messages as they come
    eve_page.say("The place by the river?")
    dan_page.bubble("The place by the river?", mine=False).wait_for(timeout=WAIT_MS)
    with eve_page.expect_frame_received(is_read_reply) as read:  # the client marks what it shows read
        dan_page.say("Perfect.")
        eve_page.bubble("Perfect.", mine=False).wait_for(timeout=WAIT_MS)
    assert read.value == {"code": 1, "msg": None, "result": {"chat_id": chat_id, "seq": 4}}
    for page in (dan_page, eve_page):
        assert page.bubble_texts() == ["Hi Eve, coffee later?", "Sure, at four.", "The place by the river?",
                                       "Perfect."]
    listed = http_post(client_site.server, "/user/chatRecently", {}, token=eve.token)
    assert [(row["chat_id"], row["last_msg"], row["unread_count"]) for row in listed["result"]["rows"]] == [
        (chat_id, "Perfect.", 0)]
