"""Product and order cards in the pages (Chromium): the mall hands a signed card to the consumer's
page in its URL, the consumer asks about it, the agent sees the card and answers with an order card;
a card changed on the way is refused with a visible reason."""

import base64
import json
import re
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from tests.web.people import WAIT_MS, Person

pytestmark = [pytest.mark.e2e, pytest.mark.chromium]


def demo_link(person: Person, link_id: str) -> str:
    person.page.goto(person.base_url + "/")
    return person.page.locator(f"#{link_id}").get_attribute("href")


def test_a_consumer_asks_about_a_product_and_the_agent_answers_with_an_order(alice, amy):
    # given the home page's demo link: the mall's signed product card, handed to the chat page
    alice.page.goto(demo_link(alice, "demo-product-card"))
    alice.wait_connected()
    offer = alice.page.locator("#card-offer")
    offer.wait_for(timeout=WAIT_MS)
    assert "Blue shirt" in offer.inner_text() and "¥129.00" in offer.inner_text()
    alice.page.get_by_role("heading", name="Demo Shop").wait_for(timeout=WAIT_MS)

    # when alice asks about it
    alice.page.get_by_role("button", name="Ask about this product").click()

    # then her own bubble is the card, acknowledged, and the offer is gone
    mine = alice.page.locator("#messages li.msg.mine .card-msg.card-product", has_text="Blue shirt")
    mine.wait_for(timeout=WAIT_MS)
    alice.sent_and_acknowledged()
    assert alice.page.locator("#card-offer").count() == 0

    # and amy's workspace shows the card (image, title, price, link) in the new conversation
    row = amy.page.locator("#mine button.conv", has_text="Alice")
    row.wait_for(timeout=WAIT_MS)
    assert "[Product] Blue shirt" in row.inner_text()  # the list's preview is the card's line of text
    row.click()
    card = amy.page.locator("#messages .card-msg.card-product", has_text="Blue shirt")
    card.wait_for(timeout=WAIT_MS)
    assert "¥129.00" in card.inner_text()
    assert card.locator("img.card-image").get_attribute("src").startswith("http")
    assert card.get_by_role("link", name="View product").get_attribute("href") == "https://mall.example/p/42"

    # when amy opens the demo's order card in her workspace and sends it to the open conversation
    amy.page.goto(demo_link(amy, "demo-order-card"))
    amy.wait_connected()
    amy.page.locator("#mine button.conv", has_text="Alice").click()
    amy.page.locator("#messages .card-msg.card-product").first.wait_for(timeout=WAIT_MS)
    amy.page.get_by_role("button", name="Send this order").click()

    # then alice sees the order card: its id, status, items and total
    order = alice.page.locator("#messages li.msg.theirs .card-msg.card-order")
    order.wait_for(timeout=WAIT_MS)
    text = order.inner_text()
    assert "2024-001" in text and "shipped" in text and "Blue shirt" in text and "¥258.00" in text
    amy.page.locator("#messages li.msg.mine .card-msg.card-order").wait_for(timeout=WAIT_MS)


def test_a_card_whose_price_was_changed_is_refused_with_a_visible_reason(alice):
    link = demo_link(alice, "demo-product-card")
    parts = urlsplit(link)
    query = parse_qs(parts.query)
    value = query["card"][0]
    card = json.loads(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))
    card["price"] = "1.00"
    forged = base64.urlsafe_b64encode(json.dumps(card).encode()).rstrip(b"=").decode()

    alice.page.goto(f"{parts.scheme}://{parts.netloc}{parts.path}?" + urlencode({"shop": 1, "card": forged}))
    alice.wait_connected()

    error = alice.page.locator("#card-offer-error")
    error.wait_for(timeout=WAIT_MS)
    assert re.search(r"could not be verified: card\.sig: does not match", error.inner_text())
    assert alice.page.locator("#card-offer").count() == 0
    assert alice.page.get_by_role("button", name="Ask about this product").count() == 0
