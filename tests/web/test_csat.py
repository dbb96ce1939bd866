"""CSAT and the queue ETA in Debian's Chromium against a real daphne with the demo data.

alice's session is closed by amy; alice rates it in the widget the 305 closed brings; amy sees the
rating arrive (308) in her workspace. Then, amy full and nobody else online, bob queues and is told
about how long he will wait.
"""

import re

import pytest

from tests.web.people import WAIT_MS, Person

pytestmark = [pytest.mark.e2e, pytest.mark.chromium]


def test_the_consumer_rates_the_session_the_agent_closed_and_the_agent_sees_the_rating(alice, amy):
    # given: alice asks, amy answers
    alice.open("/chat/?shop=1")
    alice.say("Can I change my delivery address?")
    row = amy.page.locator("#mine button.conv", has_text="Alice")
    row.wait_for(timeout=WAIT_MS)
    row.click()
    amy.wait_for_message("Can I change my delivery address?")
    amy.say("Done, it goes to your new address.")
    alice.wait_for_message("Done, it goes to your new address.")
    assert alice.page.locator("form.csat").count() == 0  # nothing to rate while the session is open

    # when amy closes the conversation
    amy.page.once("dialog", lambda dialog: dialog.accept())
    amy.page.locator("#close-session").click()

    # then alice is asked to rate it, and sends four stars with a comment
    widget = alice.page.locator("form.csat")
    widget.wait_for(timeout=WAIT_MS)
    assert widget.get_by_text("How was this conversation?").is_visible()
    widget.get_by_role("button", name="Send rating").click()  # no score yet: told to pick one
    widget.get_by_text("Pick from 1 to 5 stars first.").wait_for(timeout=WAIT_MS)
    widget.locator(".csat-star").nth(3).click()
    assert widget.locator(".csat-star.on").count() == 4
    widget.get_by_label("Comment (optional)").fill("Quick and <b>clear</b>")
    widget.get_by_role("button", name="Send rating").click()
    alice.page.get_by_text("Thank you for your rating!").wait_for(timeout=WAIT_MS)
    assert alice.page.locator("form.csat").count() == 0

    # and amy, still on the conversation, sees it arrive (308) and in the customer panel's history
    amy.page.locator("#banner", has_text="The customer rated this conversation ★★★★☆ (4/5).").wait_for(
        timeout=WAIT_MS)
    badge = amy.page.locator("#customer-sessions .rating-badge", has_text="★★★★☆")
    badge.wait_for(timeout=WAIT_MS)
    assert badge.get_attribute("data-score") == "4"
    comment = amy.page.locator("#customer-sessions .rating-comment")
    assert comment.inner_text() == "Quick and <b>clear</b>"  # text, not markup

    # a reload offers nothing more: the session is rated
    alice.open("/chat/?shop=1")
    alice.wait_for_message("Done, it goes to your new address.")
    assert alice.page.locator("form.csat").count() == 0


def test_a_conversation_whose_last_session_waits_for_a_rating_offers_it_when_opened(alice, amy):
    # given: a new session, closed by amy while alice is not on the page
    alice.say("One more question: gift wrapping?")
    amy.page.locator("#mine button.conv", has_text="Alice").first.click()
    amy.wait_for_message("One more question: gift wrapping?")
    alice.page.goto("about:blank")  # alice is away when it closes
    amy.page.once("dialog", lambda dialog: dialog.accept())
    amy.page.locator("#close-session").click()
    amy.page.locator("#banner", has_text="Conversation closed.").wait_for(timeout=WAIT_MS)

    # when alice opens the conversation again
    alice.open("/chat/?shop=1")

    # then the widget is there (from GET /api/v1/ratings/pending/); "Not now" puts it away
    widget = alice.page.locator("form.csat")
    widget.wait_for(timeout=WAIT_MS)
    widget.get_by_role("button", name="Not now").click()
    assert alice.page.locator("form.csat").count() == 0


def test_a_queued_consumer_sees_about_how_long_the_wait_is(browser, demo_site, alice, amy):
    # given: ben offline and amy taking one conversation at a time, busy with alice
    demo_site.manage("shell", "-c", (
        "from accounts.models import User\n"
        "from customer_service import services\n"
        "from customer_service.models import ServiceAgent\n"
        "services.agent_set_status(user=User.objects.get(username='ben'), status='offline')\n"
        "amy = ServiceAgent.objects.get(user__username='amy')\n"
        "services.agent_set_capacity(agent=amy, max_sessions=1)\n"
    ))
    alice.say("Back again: is the kettle in stock?")
    amy.page.locator("#mine button.conv", has_text="Alice").first.wait_for(timeout=WAIT_MS)

    # when bob writes to the shop
    bob = Person(browser, demo_site.servers[0].http_url, "bob")
    try:
        bob.open("/chat/?shop=1")
        bob.say("Hello, anyone?")

        # then he learns his place and the estimated wait (from the shop's recent handling times)
        banner = bob.page.locator("#banner", has_text="You are number 1 in the queue.")
        banner.wait_for(timeout=WAIT_MS)
        assert re.search(r"About \d+ min wait\.", banner.inner_text()), banner.inner_text()
        assert bob.errors == []
    finally:
        bob.close()


def test_the_merchants_dashboard_shows_the_satisfaction_of_the_last_30_days(browser, demo_site):
    # seeddemo's two rated sessions of bob's (4 by ben's, 5 by amy's) and alice's 4 above
    merchant = Person(browser, demo_site.servers[0].http_url, "merchant")
    try:
        merchant.page.goto(merchant.base_url + "/dashboard/")

        merchant.page.locator("#csat-average", has_text="4.3 ★").wait_for(timeout=WAIT_MS)
        assert merchant.page.locator("#csat-count").inner_text() == "ratings: 3"
        assert merchant.page.locator('#csat-distribution tr[data-score="4"]').inner_text().endswith("2")
        agents = merchant.page.locator("#csat-agents tr")
        assert sorted(agents.all_inner_texts()) == ["Amy (agent)\t4.5 ★ · ratings: 2", "Ben (agent)\t4.0 ★ · ratings: 1"]
        assert merchant.errors == []
    finally:
        merchant.close()
