"""The contact guard in Chromium: in a flag shop the agent's workspace warns about a WeChat id (live
and in history later); in a mask shop both sides see the masked text, the sender's own bubble too."""


import pytest

from tests.web.people import WAIT_MS

pytestmark = [pytest.mark.e2e, pytest.mark.chromium]


def set_guard(site, mode: str) -> None:
    site.manage("shell", "-c", "from customer_service.models import Shop; "
                               f"Shop.objects.filter(pk=1).update(contact_guard='{mode}')")


def test_in_a_flag_shop_the_agent_sees_a_warning_live_and_in_history(demo_site, alice, amy):
    alice.open("/chat/?shop=1")
    alice.say("加我微信 abc_12345")
    alice.sent_and_acknowledged()
    assert alice.messages("加我微信 abc_12345").locator(".guard-badge").count() == 0  # never on the consumer's side

    amy.page.locator("#mine button.conv", has_text="Alice").click(timeout=WAIT_MS)
    flagged = amy.messages("加我微信 abc_12345")
    badge = flagged.locator(".guard-badge")
    badge.wait_for(timeout=WAIT_MS)
    assert "WeChat" in badge.inner_text()

    # Later, from history: the row itself says it was flagged.
    amy.open("/workspace/")
    amy.page.locator("#mine button.conv", has_text="Alice").click(timeout=WAIT_MS)
    amy.messages("加我微信 abc_12345").locator(".guard-badge").wait_for(timeout=WAIT_MS)


def test_in_a_mask_shop_both_sides_see_the_masked_text(demo_site, alice, amy):
    set_guard(demo_site, "mask")

    alice.say("加我微信 xyz_67890 谢谢")

    alice.wait_for_message("加我微信 *** 谢谢")
    alice.sent_and_acknowledged()
    amy.wait_for_message("加我微信 *** 谢谢")
    for person in (alice, amy):
        assert person.messages("xyz_67890").count() == 0
    # And the history each loads later has the contact masked too.
    alice.open("/chat/?shop=1")
    alice.wait_for_message("加我微信 *** 谢谢")
    assert alice.messages("xyz_67890").count() == 0
