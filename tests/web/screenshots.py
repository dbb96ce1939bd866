"""Take the README's screenshots of the web pages: `.venv/bin/python -m tests.web.screenshots`.

Starts a throwaway site with the demo data (as the browser tests do), plays a short conversation in
Debian's Chromium, and writes PNGs to docs/screenshots/ (`... screenshots dashboard-reports`: only
that one). Chinese text needs a CJK font on the machine
(Debian: fonts-wqy-microhei or fonts-noto-cjk); without one the Chinese shot shows boxes.
"""

import sys
import tempfile
import time

from playwright.sync_api import sync_playwright

from tests.e2e.harness import ROOT, Site, base_env
from tests.services import CHROMIUM
from tests.web.chromium import CHROMIUM_ARGS
from tests.web.report_history import HISTORY

OUT = ROOT / "docs" / "screenshots"
DESKTOP = {"width": 1280, "height": 760}
PHONE = {"width": 390, "height": 780}


def login(browser, base: str, username: str, *, viewport=DESKTOP, locale: str = "en-US"):
    context = browser.new_context(viewport=viewport, locale=locale, device_scale_factor=1)
    page = context.new_page()
    page.goto(f"{base}/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", "imchat-demo")
    page.click("button.primary")
    page.wait_for_url(lambda url: "/accounts/login/" not in url)
    page.locator('#connection[data-state="open"]').wait_for()
    return context, page


def say(page, text: str) -> None:
    page.fill("#message-input", text)
    page.press("#message-input", "Enter")
    page.locator("#messages li.msg.pending").first.wait_for(state="detached")


def reports_shot(browser) -> None:
    """The dashboard's reports over 30 days, on a site of its own with a month of the demo shop's history."""
    with tempfile.TemporaryDirectory(prefix="imchat-shots-reports-") as var_dir:
        site = Site(env=base_env(var_dir, DJANGO_DEBUG="1"))
        site.migrate()
        site.manage("seeddemo")
        site.manage("shell", "-c", HISTORY)
        base = site.start(1)[0].http_url
        try:
            context, merchant = login(browser, base, "merchant")
            merchant.goto(f"{base}/dashboard/?shop=1")
            merchant.get_by_role("button", name="30 days").click()
            merchant.wait_for_function("document.querySelectorAll('#report-sessions-chart rect.started').length === 30")
            time.sleep(0.5)
            merchant.locator("#reports").screenshot(path=OUT / "dashboard-reports.png")
            context.close()
        finally:
            site.stop()


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    if sys.argv[1:] == ["dashboard-reports"]:  # only this one
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                reports_shot(browser)
            finally:
                browser.close()
        return
    with tempfile.TemporaryDirectory(prefix="imchat-shots-") as var_dir, sync_playwright() as playwright:
        site = Site(env=base_env(var_dir, DJANGO_DEBUG="1", IM_OFFLINE_NOTICE_SECONDS="0"))
        site.migrate()
        site.manage("seeddemo")
        server = site.start(1)[0]
        base = server.http_url
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 900, "height": 640})
            page = context.new_page()
            page.goto(f"{base}/accounts/login/")
            page.screenshot(path=OUT / "login.png")
            context.close()

            _, amy = login(browser, base, "amy")
            _, alice = login(browser, base, "alice")
            _, bob = login(browser, base, "bob", viewport=PHONE, locale="zh-CN")

            alice.goto(f"{base}/chat/?shop=1")
            alice.locator('#connection[data-state="open"]').wait_for()
            say(alice, "Hi! Is the red kettle still in stock?")
            amy.locator("#mine button.conv, #queue button.conv").first.click()
            amy.locator("#messages li.msg", has_text="red kettle").wait_for()
            say(amy, "Hello Alice, yes: three left in red, and more arrive on Friday.")
            say(alice, "Great. How long does shipping take?")
            amy.locator("#messages li.msg", has_text="How long").wait_for()
            amy.get_by_text("Quick replies").click()
            amy.get_by_role("button", name="Shipping", exact=True).click()
            amy.press("#message-input", "Enter")
            alice.locator("#messages li.msg", has_text="Orders ship").wait_for()
            say(alice, "Perfect, ordering now <3")
            amy.locator("#messages li.msg", has_text="ordering now").wait_for()
            amy.get_by_text("Quick replies").click()
            time.sleep(0.5)
            amy.screenshot(path=OUT / "workspace.png")
            amy.get_by_text("Quick replies").click()

            # The desk: the mall's signed product card, a private note and labels.
            alice.goto(f"{base}/")
            alice.goto(alice.locator("#demo-product-card").get_attribute("href"))
            alice.get_by_role("button", name="Ask about this product").click()
            amy.locator("#messages .card-msg.card-product").wait_for()
            amy.get_by_label("New private note").fill("Wants the blue shirt in M: restock on Friday, follow up then.")
            amy.get_by_role("button", name="Add note").click()
            amy.locator("#desk-note-list .note").first.wait_for()
            for label in ("VIP", "Follow-up"):
                amy.click("#desk-label-add")
                amy.get_by_role("menuitem", name=label).click()
                amy.locator("#desk-label-chips .label-chip", has_text=label).wait_for()
            time.sleep(0.5)
            amy.screenshot(path=OUT / "workspace-desk.png")

            alice.goto(f"{base}/chat/")
            alice.locator("#conversations button.conv", has_text="Demo group").click()
            say(alice, "Lunch at noon?")
            time.sleep(0.3)
            alice.locator("#conversations button.conv", has_text="Demo Shop").click()
            alice.locator("#messages li.msg", has_text="ordering now").wait_for()
            time.sleep(0.5)
            alice.screenshot(path=OUT / "chat.png")

            bob.locator("#conversations button.conv", has_text="Demo group").wait_for()
            bob.screenshot(path=OUT / "chat-phone-list-zh.png")
            bob.locator("#conversations button.conv", has_text="Demo group").click()
            bob.locator("#messages li.msg", has_text="Lunch").wait_for()
            say(bob, "好的，中午见！")
            time.sleep(0.3)
            bob.screenshot(path=OUT / "chat-phone-zh.png")

            amy.once("dialog", lambda dialog: dialog.accept())
            amy.click("#close-session")  # a closed session gives the dashboard a resolution time
            amy.locator("#banner", has_text="Conversation closed").wait_for()
            _, merchant = login(browser, base, "merchant")
            merchant.goto(f"{base}/dashboard/")
            merchant.locator("#agents tr").first.wait_for()
            time.sleep(0.5)
            merchant.screenshot(path=OUT / "dashboard.png", full_page=True)

            # The closed session waits for alice's rating.
            alice.goto(f"{base}/chat/?shop=1")
            rating = alice.locator("form.csat")
            rating.wait_for()
            rating.locator(".csat-star").nth(4).click()
            rating.get_by_label("Comment (optional)").fill("Amy found my size in minutes. Thank you!")
            time.sleep(0.3)
            alice.screenshot(path=OUT / "chat-rating.png")
            reports_shot(browser)
        finally:
            browser.close()
            site.stop()
    for path in sorted(OUT.glob("*.png")):
        print(path.relative_to(ROOT), file=sys.stdout)


if __name__ == "__main__":
    main()
