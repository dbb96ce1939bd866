"""The workspace in a background tab, in Chromium: amy turns notifications on with the button (the
context grants the permission; an init script records every Notification the page constructs and
lets the test hide the page), then customers write while her tab is hidden: the title counts them,
a notification is shown for each message and for the new conversation, clicking one opens that
conversation, and showing the tab clears the count. A visible tab gets neither."""

from collections.abc import Iterator

import pytest

from tests.web.people import WAIT_MS, Person

# The real Notification, wrapped to record what is constructed; visibilityState under the test's hand.
RECORD_AND_HIDE = """
(() => {
  const Real = window.Notification;
  window.__notes = [];
  window.__shown = [];
  window.Notification = new Proxy(Real, {
    construct(target, args) {
      const note = Reflect.construct(target, args);
      window.__notes.push({ title: args[0], body: args[1]?.body, tag: args[1]?.tag });
      window.__shown.push(note);
      return note;
    },
  });
  let hidden = false;
  Object.defineProperty(Document.prototype, "visibilityState", { get: () => (hidden ? "hidden" : "visible"),
    configurable: true });
  Object.defineProperty(Document.prototype, "hidden", { get: () => hidden, configurable: true });
  window.__setHidden = (value) => { hidden = value; document.dispatchEvent(new Event("visibilitychange")); };
})();
"""


@pytest.fixture(scope="module")
def amy(browser, demo_site) -> Iterator[Person]:
    person = Person(browser, demo_site.servers[0].http_url, "amy")
    person.context.grant_permissions(["notifications"], origin=demo_site.servers[0].http_url)
    person.context.add_init_script(RECORD_AND_HIDE)
    person.page.reload()
    person.wait_connected()
    yield person
    assert person.errors == []
    person.close()


def notes(agent: Person) -> list[dict]:
    return agent.page.evaluate("window.__notes")


def wait_title(agent: Person, prefix: str) -> None:
    agent.page.wait_for_function("prefix => document.title.startsWith(prefix)", arg=prefix, timeout=WAIT_MS)


def test_a_hidden_workspace_counts_in_its_title_and_notifies_and_a_click_opens_the_conversation(
        browser, demo_site, amy, alice):
    button = amy.page.locator("#notify-toggle")
    assert button.inner_text() == "Enable notifications"
    button.click()
    amy.page.wait_for_function("document.getElementById('notify-toggle').getAttribute('aria-pressed') === 'true'",
                               timeout=WAIT_MS)
    assert button.inner_text() == "Turn notifications off"
    assert amy.page.evaluate("localStorage.getItem('imchat.workspace.notifications')") == "on"
    title = amy.page.title()

    # a visible tab: no badge, no notification
    alice.open("/chat/?shop=1")
    alice.say("Seen while amy looks")
    amy.page.locator("#mine button.conv", has_text="Alice").wait_for(timeout=WAIT_MS)
    amy.page.wait_for_function("[...document.querySelectorAll('#mine .preview')].some("
                               "n => n.textContent.includes('Seen while amy looks'))", timeout=WAIT_MS)
    assert notes(amy) == [] and amy.page.title() == title

    # hidden: each customer message counts and notifies
    amy.page.evaluate("window.__setHidden(true)")
    alice.say("Is my parcel on its way?")
    wait_title(amy, "(1) ")
    alice.say("It was due on Monday")
    wait_title(amy, "(2) ")
    assert [(n["title"].split()[0], n["body"]) for n in notes(amy)] == [
        ("Alice", "Is my parcel on its way?"), ("Alice", "It was due on Monday")]

    # a new customer: the new conversation and the message both notify
    bob = Person(browser, demo_site.servers[0].http_url, "bob")
    try:
        bob.open("/chat/?shop=1")
        bob.say("Do you ship to Lyon?")
        amy.page.wait_for_function("window.__notes.length >= 4", timeout=WAIT_MS)
        assert bob.errors == []
    finally:
        bob.close()
    assert {n["title"].split()[0] for n in notes(amy)[2:]} == {"New", "Bob"}
    assert "New conversation" in {n["title"] for n in notes(amy)}
    wait_title(amy, "(4) ")

    # clicking alice's first notification opens her conversation; the tab shown again clears the badge
    amy.page.evaluate("window.__shown[0].dispatchEvent(new Event('click'))")
    amy.page.locator("#chat-title", has_text="Alice").wait_for(timeout=WAIT_MS)
    amy.wait_for_message("It was due on Monday")
    amy.page.evaluate("window.__setHidden(false)")
    amy.page.wait_for_function("title => document.title === title", arg=title, timeout=WAIT_MS)
