"""The web pages in Debian's Chromium (Playwright) against a real daphne with the demo data.

One site and one browser for the module; alice (consumer) and amy (agent) each have their own
browser context (their own cookies), logged in once through the login form. The tests run in file
order and each leaves the demo in a state the next one expects (amy online, alice's session hers).
"""

import struct
import time
import zlib

import httpx
import pytest

from tests.web.people import WAIT_MS, Person

pytestmark = [pytest.mark.e2e, pytest.mark.chromium]

OFFLINE_NOTICE = "Our agents are away right now"


def test_a_consumer_and_an_agent_chat_both_ways(alice, amy):
    alice.open("/chat/?shop=1")
    alice.page.get_by_role("heading", name="Demo Shop").wait_for()

    alice.say("Is the red kettle in stock?")

    # amy's workspace lists the new session (305 assigned) with an unread badge, and shows the message.
    row = amy.page.locator("#mine button.conv", has_text="Alice")
    row.wait_for(timeout=WAIT_MS)
    assert row.locator(".badge").inner_text(timeout=WAIT_MS).startswith("1")
    row.click()
    amy.wait_for_message("Is the red kettle in stock?")
    # The customer panel is filled by its own request: wait for it, not just for the element.
    customer = amy.page.locator("#customer-body", has_text="Alice (consumer)")
    customer.wait_for(timeout=WAIT_MS)
    assert customer.inner_text().startswith("Alice (consumer)")
    amy.say("Yes, three left.")
    alice.wait_for_message("Yes, three left.")
    reply = alice.messages("Yes, three left.")
    assert "Amy (agent)" in reply.locator(".sender").inner_text()
    assert reply.locator("time").get_attribute("datetime")

    # A quick reply the merchant keeps in the admin goes into the box, ready to send.
    amy.page.get_by_text("Quick replies").click()
    amy.page.get_by_role("button", name="Shipping", exact=True).click()
    assert amy.page.get_by_label("Message", exact=True).input_value().startswith("Orders ship within 24 hours")
    amy.page.get_by_label("Message", exact=True).press("Enter")
    alice.wait_for_message("Orders ship within 24 hours")

    # Typing shows on the other side (302), then the message arrives.
    alice.page.get_by_label("Message", exact=True).fill("Great, thanks!")
    amy.page.locator("#chat-subtitle", has_text="Alice (consumer) is typing").wait_for(timeout=WAIT_MS)
    alice.page.get_by_label("Message", exact=True).press("Enter")
    amy.wait_for_message("Great, thanks!")
    amy.page.locator("#chat-subtitle", has_text="Demo Shop").wait_for(timeout=WAIT_MS)
    assert alice.messages("Is the red kettle in stock?").count() == 1


def test_an_xss_payload_shows_as_text(alice, amy):
    payload = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'

    alice.say(payload)

    amy.wait_for_message(payload)
    alice.sent_and_acknowledged()
    for person in (alice, amy):
        assert person.messages(payload).locator(".text").inner_text() == payload
        assert person.page.evaluate("window.__xss") is None
        assert person.page.locator('#messages img[src="x"]').count() == 0
    assert amy.page.locator("#mine", has_text=payload).count() == 1  # the list preview, as text too


def test_a_page_that_loses_the_network_for_ten_seconds_loses_and_doubles_nothing(alice, amy):
    # A short heartbeat so the page notices the dead socket inside the ten seconds.
    alice.open("/chat/?shop=1&heartbeat=2000&pong_timeout=2000")
    alice.wait_for_message("Great, thanks!")
    sockets_before = alice.page.evaluate("window.imchat.client.socketSerial")

    alice.context.set_offline(True)
    cut_at = time.monotonic()
    alice.say("written while offline")
    for number in range(1, 4):
        amy.say(f"while you were away {number}")
        amy.sent_and_acknowledged()
        time.sleep(1)
    time.sleep(max(0.0, 10 - (time.monotonic() - cut_at)))
    alice.context.set_offline(False)

    for number in range(1, 4):
        assert alice.count_exactly_once(f"while you were away {number}") == 1
    alice.sent_and_acknowledged()
    assert amy.count_exactly_once("written while offline") == 1
    time.sleep(1.5)  # a late resend or a late push would show up by now
    for number in range(1, 4):
        assert alice.messages(f"while you were away {number}").count() == 1
    assert alice.messages("written while offline").count() == 1
    assert amy.messages("written while offline").count() == 1
    assert alice.page.evaluate("window.imchat.client.socketSerial") > sockets_before  # it did reconnect
    for person in (alice, amy):
        ids = person.msg_ids()
        assert len(ids) == len(set(ids)), f"{person.username} shows a message twice"
    # Order survives: the three come in the order amy sent them.
    texts = alice.page.locator("#messages li.msg .text").all_inner_texts()
    positions = [texts.index(f"while you were away {number}") for number in range(1, 4)]
    assert positions == sorted(positions)


def test_the_consumer_sees_the_offline_notice_when_the_agent_goes_offline(alice, amy):
    amy.page.get_by_label("Offline", exact=True).check()
    amy.page.locator("#banner", has_text="Your status is now offline").wait_for(timeout=WAIT_MS)

    # amy's sessions go back to the queue: alice is told, and her next message gets the shop's notice.
    alice.page.locator("#banner", has_text="in the queue").wait_for(timeout=WAIT_MS)
    alice.say("Hello? Anyone there?")
    alice.wait_for_message(OFFLINE_NOTICE)
    assert alice.page.locator("#messages li.msg.notice", has_text=OFFLINE_NOTICE).count() == 1

    amy.page.get_by_label("Online", exact=True).check()
    amy.page.locator("#mine button.conv", has_text="Alice").wait_for(timeout=WAIT_MS)
    alice.page.locator("#banner", has_text="An agent is with you now").wait_for(timeout=WAIT_MS)


def test_group_chat_and_a_phone_sized_screen(browser, demo_site, alice):
    bob = Person(browser, demo_site.servers[0].http_url, "bob", viewport={"width": 390, "height": 844})
    try:
        bob.wait_connected()
        alice.open("/chat/")
        alice.page.locator("#conversations button.conv", has_text="Demo group").click()
        alice.say("Group hello from alice")

        # On a phone the list fills the screen; a conversation replaces it, and Back returns.
        group_row = bob.page.locator("#conversations button.conv", has_text="Demo group")
        group_row.wait_for(timeout=WAIT_MS)
        assert not bob.page.locator("#conversation").is_visible()
        group_row.click()
        assert not bob.page.locator("#conversations").is_visible()
        bob.wait_for_message("Group hello from alice")
        assert "Alice (consumer)" in bob.messages("Group hello from alice").locator(".sender").inner_text()
        assert bob.page.evaluate("document.activeElement.id") == "message-input"
        bob.say("Hi alice, bob here")
        alice.wait_for_message("Hi alice, bob here")
        bob.page.get_by_role("button", name="Back to the list").click()
        assert bob.page.locator("#conversations").is_visible()
        assert bob.page.evaluate("document.documentElement.scrollWidth") <= 390  # nothing sticks out sideways
        assert bob.errors == []
    finally:
        bob.close()


def test_history_loads_upward_as_the_reader_scrolls(alice, demo_site):
    # given: 45 messages between bob and alice, more than two pages of user.chatRecord (20 a page)
    demo_site.manage("shell", "-c", (
        "from accounts.models import User\n"
        "from chat.protocol import Caller\n"
        "from chat.services import private_message_send\n"
        "bob = Caller(user=User.objects.get(username='bob'), base_url='http://localhost')\n"
        "for number in range(1, 46):\n"
        "    private_message_send(caller=bob, to_uid=1001, chat_id=None, msg_type=1,\n"
        "                         msg=f'history line {number:02d}', client_msg_id=None)\n"
    ))
    alice.open("/chat/")

    # when: alice opens the chat and keeps scrolling to the top
    alice.page.locator('#conversations button.conv[data-chat-id="1001_1002"]').click()
    alice.wait_for_message("history line 45")
    assert alice.messages("history line 01").count() == 0  # only the newest page so far
    log = alice.page.locator("#messages")
    for _ in range(10):
        if alice.page.locator("#messages .history-edge", has_text="beginning").count():
            break
        log.evaluate("node => { node.scrollTop = 0; node.dispatchEvent(new Event('scroll')); }")
        alice.page.wait_for_timeout(300)

    # then: every line once, oldest first
    texts = [text for text in alice.page.locator("#messages li.msg .text").all_inner_texts()
             if text.startswith("history line")]
    assert texts == [f"history line {number:02d}" for number in range(1, 46)]


def _png(width: int = 8, height: int = 8) -> bytes:
    """A small valid PNG, made here (no image library needed)."""
    raw = b"".join(b"\x00" + bytes([200, 40, 40]) * width for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def test_an_image_is_uploaded_then_sent(alice, amy, demo_site, tmp_path):
    probe = httpx.post(demo_site.servers[0].http_url + "/user/upload", timeout=5, trust_env=False)
    if probe.status_code == 404:
        pytest.skip("this server has no /user/upload yet")
    picture = tmp_path / "kettle.png"
    picture.write_bytes(_png())
    alice.open("/chat/?shop=1")

    alice.page.locator("#image-input").set_input_files(str(picture))

    image = amy.page.locator("#messages li.msg img.picture").last
    image.wait_for(timeout=WAIT_MS)
    src = image.get_attribute("src")
    assert src.startswith("http://127.0.0.1:") and src.endswith(".png")
    assert amy.page.evaluate("(img) => img.complete && img.naturalWidth", image.element_handle()) == 8
    alice.page.locator("#messages li.msg.mine img.picture").last.wait_for(timeout=WAIT_MS)


def test_an_agent_transfers_a_conversation_and_closes_it(alice, amy):
    alice.open("/chat/?shop=1")
    amy.page.locator("#mine button.conv", has_text="Alice").click()
    amy.page.get_by_label("Transfer to").select_option(value="2003")  # ben, from seeddemo

    amy.page.get_by_role("button", name="Transfer", exact=True).click()

    amy.page.locator("#banner", has_text="Passed to Ben (agent)").wait_for(timeout=WAIT_MS)
    amy.page.locator("#team button.conv", has_text="Alice").wait_for(state="attached", timeout=WAIT_MS)
    assert amy.page.locator("#mine button.conv", has_text="Alice").count() == 0
    alice.page.locator("#banner", has_text="passed to another agent").wait_for(timeout=WAIT_MS)

    amy.page.once("dialog", lambda dialog: dialog.accept())
    amy.page.get_by_role("button", name="Close", exact=True).click()

    alice.page.locator("#banner", has_text="This conversation has ended").wait_for(timeout=WAIT_MS)
    amy.page.locator("#banner", has_text="Conversation closed").wait_for(timeout=WAIT_MS)
    amy.page.locator("#team button.conv", has_text="Alice").wait_for(state="detached", timeout=WAIT_MS)


def test_the_client_module_backs_off_with_jitter_and_builds_chat_ids(alice):
    checks = alice.page.evaluate("""async () => {
        const m = await import("/static/js/imchat.js");
        const delays = [0, 1, 2, 3, 4, 5, 10].map((attempt) => m.backoffDelay(attempt, 500, 10000));
        return {
            low: [0, 3, 10].map((attempt) => m.backoffDelay(attempt, 500, 10000, () => 0)),
            high: [0, 3, 10].map((attempt) => m.backoffDelay(attempt, 500, 10000, () => 1)),
            bounded: delays.every((delay, i) => delay >= Math.min(10000, 500 * 2 ** [0, 1, 2, 3, 4, 5, 10][i]) / 2
                                                 && delay <= 10000),
            ids: [m.privateChatId(30, 7), m.serviceChatId(2, 5), m.groupChatId(12)],
            unique: new Set(Array.from({length: 200}, () => m.randomId())).size,
        };
    }""")

    assert checks["low"] == [250, 2000, 5000]
    assert checks["high"] == [500, 4000, 10000]
    assert checks["bounded"]
    assert checks["ids"] == ["7_30", "2____5", "g12"]
    assert checks["unique"] == 200
