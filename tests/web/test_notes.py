"""The desk in a real browser: amy keeps a private note and a label on alice's conversation, ben (and
a reload) sees them, alice's page never shows the note; amy types /hi and alice gets the filled text."""

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.web.people import WAIT_MS, Person

NOTE = "Asked twice about order 77; offer free shipping next time"
SHOTS = os.environ.get("IM_DESK_SCREENSHOTS")  # a directory: also save the workspace as a PNG


@pytest.fixture(scope="module")
def amy(browser, demo_site) -> Iterator[Person]:
    person = Person(browser, demo_site.servers[0].http_url, "amy", viewport={"width": 1400, "height": 860})
    person.wait_connected()
    yield person
    assert person.errors == []
    person.close()


def open_alices_chat(agent: Person, list_id: str = "mine") -> None:
    row = agent.page.locator(f"#{list_id} button.conv", has_text="Alice")
    row.wait_for(timeout=WAIT_MS)
    row.click()
    agent.page.locator("#desk-labels").wait_for(timeout=WAIT_MS)


def test_a_private_note_and_a_label_reach_the_team_and_never_the_customer(browser, demo_site, alice, amy):
    alice.open("/chat/?shop=1")
    alice.say("Hello, my order 77 is late again")
    open_alices_chat(amy)
    amy.wait_for_message("my order 77 is late")

    # amy writes a note and puts the VIP label on the conversation
    amy.page.get_by_label("New private note").fill(NOTE)
    amy.page.get_by_role("button", name="Add note").click()
    amy.page.locator("#desk-note-list .note", has_text=NOTE).wait_for(timeout=WAIT_MS)
    amy.page.locator("#desk-label-add").click()
    amy.page.get_by_role("menuitem", name="VIP").click()
    amy.page.locator("#desk-label-chips .label-chip", has_text="VIP").wait_for(timeout=WAIT_MS)
    amy.page.locator("#mine button.conv .label-chip", has_text="VIP").wait_for(timeout=WAIT_MS)

    # the label filter narrows the lists: Refund hides alice's row, VIP shows it
    amy.page.locator("#label-filter-chips button", has_text="Refund").click()
    amy.page.locator("#mine button.conv", has_text="Alice").wait_for(state="detached", timeout=WAIT_MS)
    amy.page.locator("#label-filter-chips button", has_text="Refund").click()
    amy.page.locator("#label-filter-chips button", has_text="VIP").click()
    amy.page.locator("#mine button.conv", has_text="Alice").wait_for(timeout=WAIT_MS)
    amy.page.locator("#label-filter-chips button", has_text="VIP").click()

    # ben, a colleague, sees the label in the list and the note when he opens the conversation, then
    # amy's next note arrives live (309) and so does her label change (310)
    ben = Person(browser, demo_site.servers[0].http_url, "ben", viewport={"width": 1400, "height": 860})
    try:
        ben.wait_connected()
        ben.page.locator("#team-section summary").click()
        ben.page.locator("#team button.conv .label-chip", has_text="VIP").wait_for(timeout=WAIT_MS)
        open_alices_chat(ben, "team")
        ben.page.locator("#desk-note-list .note", has_text=NOTE).wait_for(timeout=WAIT_MS)
        ben.page.locator("#desk-label-chips .label-chip", has_text="VIP").wait_for(timeout=WAIT_MS)
        amy.page.get_by_label("New private note").fill("Second note, live")
        amy.page.get_by_role("button", name="Add note").click()
        ben.page.locator("#desk-note-list .note", has_text="Second note, live").wait_for(timeout=WAIT_MS)
        amy.page.locator("#desk-label-add").click()
        amy.page.get_by_role("menuitem", name="Follow-up").click()
        ben.page.locator("#desk-label-chips .label-chip", has_text="Follow-up").wait_for(timeout=WAIT_MS)
        assert ben.errors == []
    finally:
        ben.close()

    # a reload of amy's workspace still shows both
    amy.page.reload()
    amy.wait_connected()
    open_alices_chat(amy)
    amy.page.locator("#desk-note-list .note", has_text=NOTE).wait_for(timeout=WAIT_MS)
    amy.page.locator("#desk-label-chips .label-chip", has_text="Follow-up").wait_for(timeout=WAIT_MS)
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        amy.page.screenshot(path=str(Path(SHOTS) / "workspace-notes-labels.png"))

    # alice's page never shows a note, live or after a reload
    alice.page.wait_for_timeout(500)
    assert "order 77; offer" not in alice.page.content()
    alice.page.reload()
    alice.open("/chat/?shop=1")
    alice.wait_for_message("my order 77 is late")
    assert "order 77; offer" not in alice.page.content() and "Second note" not in alice.page.content()


def test_an_agent_expands_a_shortcut_and_the_customer_gets_the_filled_text(alice, amy):
    open_alices_chat(amy)
    box = amy.page.get_by_label("Message", exact=True)
    box.fill("")
    box.press_sequentially("/h")
    picker = amy.page.locator("#canned-picker")
    picker.locator(".canned-option", has_text="/hi").wait_for(timeout=WAIT_MS)
    if SHOTS:
        amy.page.screenshot(path=str(Path(SHOTS) / "workspace-canned-picker.png"))
    box.press_sequentially("i")
    box.press("Tab")

    expected = ("Hello Alice (consumer)! Thanks for contacting Demo Shop, this is Amy (agent). "
                "How can I help you today?")
    assert box.input_value() == expected and picker.is_hidden()
    box.press("Enter")

    alice.wait_for_message(expected)
    amy.sent_and_acknowledged()
    assert "{customer_name}" not in alice.page.content()


def test_the_merchants_dashboard_counts_the_labelled_conversation(browser, demo_site, amy):
    merchant = Person(browser, demo_site.servers[0].http_url, "merchant")
    try:
        merchant.page.goto(demo_site.servers[0].http_url + "/dashboard/")
        row = merchant.page.locator(".label-report tr", has_text="VIP")
        row.wait_for(timeout=WAIT_MS)
        assert row.locator(".label-count").inner_text().strip() == "1"
        if SHOTS:
            merchant.page.locator(".label-report").screenshot(path=str(Path(SHOTS) / "dashboard-labels.png"))
        assert merchant.errors == []
    finally:
        merchant.close()
