"""Fixtures of the REST API tests: clients with a real token, a shop with agents, a fresh MEDIA_ROOT."""

from collections.abc import Callable, Iterator

import pytest
from rest_framework.test import APIClient

from accounts.services import user_create
from chat.presence import presence
from customer_service import services
from customer_service.models import ServiceAgent
from tests import factories


@pytest.fixture(autouse=True)
def fresh_presence() -> Iterator[None]:
    """Presence is a process-wide singleton: every test starts and ends with nobody connected."""
    presence.cache_clear()
    yield
    presence.cache_clear()


@pytest.fixture(autouse=True)
def fast_password_hashing(settings) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    """Uploads land in a directory of this test's own."""
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


def client_for(user, *, header: str = "HTTP_AUTHORIZATION", scheme: str = "Bearer") -> APIClient:
    client = APIClient()
    client.credentials(**{header: f"{scheme} {factories.token_for(user)}"})
    return client


@pytest.fixture
def api() -> Callable[..., APIClient]:
    """`api(user)`: a client sending that user's JWT as `Authorization: Bearer`."""
    return client_for


@pytest.fixture
def merchant(db):
    return factories.make_user(username="merchant", nickname="Mia the merchant", avatar="/media/mia.png")


@pytest.fixture
def shop(merchant):
    return services.shop_create(name="Tea House", owner=merchant, logo="/media/shops/tea.png",
                                offline_notice="We are away; leave a message.")


@pytest.fixture
def amy(db):
    return factories.make_user(username="amy", nickname="Amy", avatar="/media/amy.png")


@pytest.fixture
def ben(db, amy):
    return factories.make_user(username="ben", nickname="Ben")


@pytest.fixture
def consumer(db):
    return factories.make_user(username="cora", nickname="Cora")


@pytest.fixture
def staff(db):
    return user_create(username="root", nickname="Platform", is_staff=True)


@pytest.fixture
def superuser(staff):
    staff.is_superuser = True
    staff.save(update_fields=["is_superuser"])
    return staff


@pytest.fixture
def make_agent() -> Callable[..., ServiceAgent]:
    def make(shop, user, *, status: str = ServiceAgent.Status.ONLINE, max_sessions: int = 10) -> ServiceAgent:
        return services.agent_add(shop=shop, user=user, status=status, max_sessions=max_sessions,
                                  base_url=factories.BASE_URL)

    return make


@pytest.fixture
def connect() -> Callable[..., str]:
    """Mark a user as having a live socket (as the consumer does on connect); returns the channel name."""

    def connect_(user, channel: str | None = None) -> str:
        channel = channel or f"test.socket.{user.pk}"
        presence().connected(user.pk, channel)
        return channel

    return connect_
