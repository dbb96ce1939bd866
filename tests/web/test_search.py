"""The workspace's search box in Debian's Chromium against a real daphne with the demo data.

alice writes to the Demo Shop; amy finds her words (English and Chinese) and carol's past order in
the search box, and a click opens the conversation at the message found.
"""


import pytest

from tests.web.people import WAIT_MS, Person

pytestmark = [pytest.mark.e2e, pytest.mark.chromium]


def search(person: Person, q: str):
    box = person.page.get_by_label("Search conversations")
    box.fill(q)
    box.press("Enter")
    status = person.page.locator("#search-status")
    status.filter(has_not_text="Searching").wait_for(timeout=WAIT_MS)
    return person.page.locator("#search-results button.conv")


def test_an_agent_finds_what_a_customer_wrote_and_opens_the_conversation_at_it(alice, amy):
    # given: alice writes to the shop, in English and in Chinese, with markup that must stay text
    alice.open("/chat/?shop=1")
    alice.say("Do you gift-wrap the porcelain kettle? <img src=x onerror=alert(1)>")
    alice.sent_and_acknowledged()
    alice.say("请问可以开发票吗？")
    alice.sent_and_acknowledged()
    amy.page.locator("#mine button.conv", has_text="Alice").wait_for(timeout=WAIT_MS)

    # when: amy searches a word alice sent
    hits = search(amy, "PORCELAIN")

    # then: one hit, alice's, the word marked, the markup shown as text
    assert hits.count() == 1
    hit = hits.first
    assert "Alice" in hit.locator(".name").inner_text()
    assert hit.locator("mark").inner_text() == "porcelain"
    assert "<img src=x onerror=alert(1)>" in hit.locator(".preview").inner_text()
    assert amy.page.locator("#search-results img:not(.avatar)").count() == 0

    # when: she clicks it, the conversation opens at that message
    hit.click()
    amy.page.get_by_role("heading", name="Alice (consumer)").wait_for(timeout=WAIT_MS)
    amy.page.locator("#messages li.msg.search-hit", has_text="porcelain kettle").wait_for(timeout=WAIT_MS)

    # and a two-character Chinese word finds the Chinese message
    hits = search(amy, "发票")
    assert hits.count() == 1
    assert hits.first.locator("mark").inner_text() == "发票"
    hits.first.click()
    amy.page.locator("#messages li.msg.search-hit", has_text="请问可以开发票吗").wait_for(timeout=WAIT_MS)


def test_an_order_id_finds_a_past_customers_conversation(amy):
    # carol's closed conversation comes from seeddemo (an order card line, then a refund in Chinese)
    hits = search(amy, "order:2024-001")
    assert hits.count() == 2  # the card carol sent and amy's answer naming the order (newest first)
    assert [hits.nth(n).locator(".name").inner_text() for n in range(2)] == ["Carol (past customer)"] * 2
    assert [hits.nth(n).locator("mark").inner_text() for n in range(2)] == ["2024-001"] * 2
    card = hits.filter(has_text="[Order 2024-001]")
    card.click()
    amy.page.get_by_role("heading", name="Carol (past customer)").wait_for(timeout=WAIT_MS)
    amy.page.locator("#messages li.msg.search-hit", has_text="[Order 2024-001]").wait_for(timeout=WAIT_MS)


def test_a_customer_is_found_by_name_and_a_miss_says_so(amy):
    search(amy, "carol")
    customer = amy.page.locator("#search-customers button.conv", has_text="Carol (past customer)")
    customer.wait_for(timeout=WAIT_MS)
    search(amy, "zebra crossing")
    assert amy.page.locator("#search-status").inner_text() == "Nothing found."
    assert amy.page.locator("#search-results button.conv").count() == 0
