"""A card reaches the original compiled H5 client (unchanged) as what it knows: a text message whose
line is readable, with the link, in the list and in the conversation; nothing it does is refused."""

import json
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from chat.cards import card_sign
from tests.e2e.harness import Site, base_env, free_port
from tests.web.original_client import WAIT_MS, ClientPage, client_dir, patched_copy, static_site
from tests.web.test_original_client import PEOPLE, ClientSite, Person

pytestmark = [pytest.mark.e2e, pytest.mark.chromium]

KEY = "mall-card-key-" + "0c1" * 10
PRODUCT = {"kind": "product", "id": "42", "title": "Blue shirt", "price": "129.00",
           "image": "https://mall.example/i/42.jpg", "link": "https://mall.example/p/42"}
LINE = "[Product] Blue shirt ¥129.00 https://mall.example/p/42"


@pytest.fixture(scope="module")
def card_site(browser) -> Iterator[ClientSite]:
    source = client_dir()
    with tempfile.TemporaryDirectory(prefix="imchat-cards-original-") as var_dir:
        files_port = free_port()
        origin = f"http://localhost:{files_port}"
        site = Site(env=base_env(var_dir, ALLOWED_HOSTS="127.0.0.1", CORS_ALLOWED_ORIGINS=origin, IM_MALL_API_KEY=KEY))
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


def test_the_original_client_shows_a_customers_product_card_as_its_line_of_text(browser, card_site):
    shop, cora, anna = card_site.shop_id, card_site.people["cora"], card_site.people["anna"]
    agent = ClientPage(browser, card_site.origin, card_site.server, anna.token, is_service=True)
    try:
        # when the customer (a new client, say) sends the mall's product card to the shop
        card = card_sign(dict(PRODUCT), key=KEY, expires=int(time.time()) + 600)
        sent = httpx.post(f"{card_site.server.http_url}/api/v1/messages/", trust_env=False, timeout=10,
                          headers={"Authorization": f"Bearer {cora.token}"},
                          json={"chat_type": 4, "to_uid": shop, "card": card})
        assert sent.status_code == 201, sent.text

        # then the agent's original client lists it and shows it as a plain text bubble
        row = agent.row("Cora")
        row.locator(".content-o", has_text=LINE).wait_for(timeout=WAIT_MS)
        history = agent.open_row("Cora")
        [record] = history["result"]["rows"]
        assert (record["msg_type"], record["msg"], record["card"]) == (1, LINE, PRODUCT)
        agent.bubble(LINE, mine=False).wait_for(timeout=WAIT_MS)
        assert agent.problems() == []
    finally:
        agent.close()
