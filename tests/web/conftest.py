"""Fixtures of the web-page tests: two shops with their people (view tests), and a real daphne with
the demo data plus Debian's Chromium driven by Playwright (browser tests)."""

import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from accounts.services import user_create
from chat.presence import presence
from customer_service import services
from customer_service.models import ServiceAgent
from tests import factories
from tests.e2e.harness import Site, base_env
from tests.services import missing, require_chromium
from tests.web.chromium import CHROMIUM_ARGS
from tests.web.people import Person

PASSWORD = factories.PASSWORD


@pytest.fixture(autouse=True)
def fresh_presence() -> Iterator[None]:
    presence.cache_clear()
    yield
    presence.cache_clear()


@pytest.fixture
def fast_password_hashing(settings) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@dataclass
class World:
    """Shop A (owner, agent, consumer) and shop B (owner, agent, consumer), each with a live session."""

    owner_a: object
    owner_b: object
    agent_a: object
    agent_b: object
    consumer_a: object
    consumer_b: object
    shop_a: object
    shop_b: object
    superuser: object


@pytest.fixture
def world(db, fast_password_hashing) -> World:
    owner_a = user_create(username="ownera", nickname="Owner A", password=PASSWORD, is_staff=True)
    owner_b = user_create(username="ownerb", nickname="Owner B", password=PASSWORD, is_staff=True)
    superuser = user_create(username="root1", nickname="Root", password=PASSWORD, is_staff=True)
    superuser.is_superuser = True
    superuser.save(update_fields=["is_superuser"])
    shop_a = services.shop_create(name="Alpha Teas", owner=owner_a)
    shop_b = services.shop_create(name="Bravo Bikes", owner=owner_b)
    agent_a = factories.make_user(username="annaagent", nickname="Anna Agent", password=PASSWORD)
    agent_b = factories.make_user(username="borisagent", nickname="Boris Agent", password=PASSWORD)
    consumer_a = factories.make_user(username="cora", nickname="Cora <script>alert(1)</script>", password=PASSWORD)
    consumer_b = factories.make_user(username="zed", nickname="Zed Customer", password=PASSWORD)
    for shop, agent in ((shop_a, agent_a), (shop_b, agent_b)):
        services.agent_add(shop=shop, user=agent, status=ServiceAgent.Status.OFFLINE, base_url=factories.BASE_URL)
    for consumer, shop, text in ((consumer_a, shop_a, "alpha: is oolong in stock?"),
                                 (consumer_b, shop_b, "bravo: brakes squeak")):
        services.consumer_message_send(caller=factories.caller_of(consumer), shop_id=shop.pk, msg_type=1, msg=text,
                                       client_msg_id=None)
    return World(owner_a, owner_b, agent_a, agent_b, consumer_a, consumer_b, shop_a, shop_b, superuser)


# --- browser tests ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def seeded_demo() -> Iterator[str]:
    """A directory holding what `manage.py migrate` and `seeddemo` make (the database, the development
    secrets), once per test run: each module's site starts from a copy (seeding took ~5 s a module)."""
    with tempfile.TemporaryDirectory(prefix="imchat-web-seeded-") as var_dir:
        site = Site(env=base_env(var_dir, DJANGO_DEBUG="1"))
        site.migrate()
        site.manage("seeddemo")
        yield var_dir


@pytest.fixture(scope="module")
def demo_site(seeded_demo) -> Iterator[Site]:
    """SQLite in a fresh directory, one daphne, and `manage.py seeddemo` (alice, bob, amy, ben, merchant):
    the development server of `make run` (DEBUG on; seeddemo refuses to run without it)."""
    require_chromium()
    with tempfile.TemporaryDirectory(prefix="imchat-web-") as var_dir:
        shutil.copytree(seeded_demo, var_dir, dirs_exist_ok=True)
        site = Site(env=base_env(var_dir, DJANGO_DEBUG="1"))
        try:
            site.start(1)
            yield site
        finally:
            site.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Debian's Chromium through Playwright (never a browser Playwright downloads)."""
    executable = require_chromium()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as error:
        missing("Playwright", str(error))
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def amy(browser, demo_site) -> Iterator[Person]:
    """The demo shop's agent, in her workspace; a page error fails the module."""
    person = Person(browser, demo_site.servers[0].http_url, "amy")
    assert person.page.url.endswith("/workspace/")
    person.wait_connected()
    yield person
    assert person.errors == []
    person.close()


@pytest.fixture(scope="module")
def alice(browser, demo_site, amy) -> Iterator[Person]:
    """A consumer of the demo, on her chat page (after amy: the shop has an agent online)."""
    person = Person(browser, demo_site.servers[0].http_url, "alice")
    assert person.page.url.endswith("/chat/")
    yield person
    assert person.errors == []
    person.close()
