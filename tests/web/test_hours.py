"""Business hours in Debian's Chromium against a real daphne with the demo data (shop 2, Night Owl
Books, has hours and a greeting): outside the hours the consumer sees when the shop opens and gets
the out-of-hours message; in hours a new conversation gets the greeting."""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.web.people import WAIT_MS, Person

pytestmark = [pytest.mark.e2e, pytest.mark.chromium]

SHOP = 2
GREETING = "Welcome to Night Owl Books!"
WHOLE_WEEK = [{"weekday": day, "opens": "00:00", "closes": "00:00"} for day in range(7)]


@pytest.fixture(scope="module")
def set_hours(demo_site):
    """PUT /api/v1/shops/2/hours/ as the demo merchant (the REST API the dashboard's admin link mirrors)."""
    token = demo_site.manage("mintoken", "merchant").strip().splitlines()[-1]

    def put(body: dict) -> dict:
        reply = httpx.put(f"{demo_site.servers[0].http_url}/api/v1/shops/{SHOP}/hours/", json=body,
                          headers={"Authorization": f"Bearer {token}"}, timeout=10, trust_env=False)
        assert reply.status_code == 200, reply.text
        return reply.json()["result"]

    return put


@pytest.fixture(scope="module")
def alice(browser, demo_site) -> Iterator[Person]:
    person = Person(browser, demo_site.servers[0].http_url, "alice")
    yield person
    assert person.errors == []
    person.close()


@pytest.fixture(scope="module")
def bob(browser, demo_site) -> Iterator[Person]:
    person = Person(browser, demo_site.servers[0].http_url, "bob")
    yield person
    assert person.errors == []
    person.close()


def test_outside_hours_the_consumer_sees_when_the_shop_opens_and_gets_the_out_of_hours_message(set_hours, alice):
    # given the shop closed today (UTC) and a day either side
    today = datetime.now(UTC).date()
    hours = set_hours({"timezone": "UTC", "schedule": WHOLE_WEEK,
                       "closed_days": [{"date": (today + timedelta(days=n)).isoformat(), "note": "inventory"}
                                       for n in (-1, 0, 1)]})
    assert hours["open_now"] is False

    # when alice opens the shop's conversation: the page says it is closed and when it opens
    alice.open(f"/chat/?shop={SHOP}")
    note = alice.page.locator("#shop-hours")
    note.wait_for(timeout=WAIT_MS)
    assert note.inner_text().startswith("The shop is closed now. It opens")

    # when she writes: the shop answers with its out-of-hours message, once, and she waits in the queue
    alice.say("do you have the new atlas?")
    alice.wait_for_message("We are closed right now and open again")
    alice.page.locator("#banner", has_text="your message waits for the opening").wait_for(timeout=WAIT_MS)
    alice.say("I will come back tomorrow")
    alice.wait_for_message("I will come back tomorrow")
    alice.sent_and_acknowledged()
    assert alice.messages("We are closed right now").count() == 1
    assert alice.messages(GREETING).count() == 0


def test_in_hours_a_new_conversation_gets_the_greeting(set_hours, bob):
    # given the shop open all week
    hours = set_hours({"timezone": "Asia/Shanghai", "schedule": WHOLE_WEEK, "closed_days": []})
    assert hours["open_now"] is True

    # when bob opens the conversation and writes: no closed note, and the greeting follows his message
    bob.open(f"/chat/?shop={SHOP}")
    bob.say("hello, is anyone there?")
    bob.wait_for_message(GREETING)
    assert bob.page.locator("#shop-hours").is_hidden()
    texts = bob.page.eval_on_selector_all("#messages li.msg", "nodes => nodes.map(n => n.textContent)")
    assert [n for n, text in enumerate(texts) if "is anyone there" in text] < \
        [n for n, text in enumerate(texts) if GREETING in text]
    assert bob.messages("We are closed right now").count() == 0
