"""The people of the browser tests: one logged-in browser context each (their own cookies), logged
in once through the login form (tests/web/conftest.py gives each module its alice and amy)."""

import re

PASSWORD = "imchat-demo"
WAIT_MS = 10_000


class Person:
    """One logged-in browser context and its page."""

    def __init__(self, browser, base_url: str, username: str, *, viewport=None):
        self.username = username
        self.base_url = base_url
        self.context = browser.new_context(viewport=viewport or {"width": 1280, "height": 800}, locale="en-US")
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.goto(f"{base_url}/accounts/login/")
        self.page.get_by_label("Username").fill(username)
        self.page.get_by_label("Password").fill(PASSWORD)
        self.page.get_by_role("button", name="Log in").click()
        self.page.wait_for_url(re.compile(r"/(chat|workspace)/"))

    def open(self, path: str) -> None:
        self.page.goto(self.base_url + path)
        self.wait_connected()
        if "shop=" in path:  # the shop's conversation opens once the list has loaded
            self.page.locator("#composer").wait_for(timeout=WAIT_MS)

    def wait_connected(self) -> None:
        self.page.locator('#connection[data-state="open"]').wait_for(timeout=WAIT_MS)

    def say(self, text: str) -> None:
        """Type into the composer and press Enter (the keyboard way to send)."""
        box = self.page.get_by_label("Message", exact=True)
        box.fill(text)
        box.press("Enter")

    def messages(self, text: str):
        return self.page.locator("#messages li.msg", has_text=text)

    def wait_for_message(self, text: str, *, timeout: int = WAIT_MS) -> None:
        self.messages(text).first.wait_for(timeout=timeout)

    def count_exactly_once(self, text: str, *, timeout: float = 10.0) -> int:
        """Wait until `text` shows, let late duplicates arrive, and count it."""
        self.wait_for_message(text, timeout=int(timeout * 1000))
        return self.messages(text).count()

    def sent_and_acknowledged(self) -> None:
        self.page.locator("#messages li.msg.pending").first.wait_for(state="detached", timeout=WAIT_MS)

    def msg_ids(self) -> list[str]:
        return self.page.eval_on_selector_all("#messages li.msg", "nodes => nodes.map(n => n.dataset.msgId)")

    def close(self) -> None:
        self.context.close()
