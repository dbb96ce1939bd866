"""A socket whose opening fails half-way (the database or the channel layer gives out) leaves nothing behind.

Found while writing the fault run (bench/faults.py): ChatConsumer.connect then recorded presence
first, then read the database and joined channel-layer groups. When one of those raised, the
consumer died before `self.caller` was set, so `disconnect` never undid the presence, and the
per-user rate bucket was never released. With Redis presence the process keeps
writing the dead socket back on every heartbeat: the user counts as online for as long as the
process lives (an agent gets customer-service sessions with no socket to receive them), and each
such socket counts against IM_MAX_SOCKETS_PER_USER, so a user whose phone retries through a short
database blip is refused (4429) afterwards.
"""

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.db import OperationalError

from chat import sockets, throttling
from chat.presence import presence
from tests.factories import make_user, open_socket, socket, synchronously, token_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def fresh_presence():
    """Presence and the per-user buckets are process-wide: what a leaking connect left goes away."""
    presence.cache_clear()
    buckets_before = set(throttling.user_buckets._buckets)
    yield
    presence.cache_clear()
    for user_id in set(throttling.user_buckets._buckets) - buckets_before:
        throttling.user_buckets._buckets.pop(user_id, None)


@pytest.fixture
def database_blip(monkeypatch):
    """The database connection dies while the socket reads its user and groups."""

    def lost(*args, **kwargs):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(sockets, "_rows", lost)
    return monkeypatch


async def failed_connect(user) -> None:
    communicator = socket(f"/?token={token_for(user)}")
    try:
        connected, _ = await communicator.connect()
        assert not connected
    except OperationalError:
        pass  # the consumer's exception reaches the test through the communicator
    except ConnectionError:
        pass


@synchronously
async def test_a_socket_that_fails_to_open_on_a_database_error_is_not_left_online(database_blip):
    user = await database_sync_to_async(make_user)(username="ghostly")

    await failed_connect(user)

    assert presence().socket_count(user.pk) == 0
    assert presence().online([user.pk]) == set()


@synchronously
async def test_a_socket_that_fails_to_join_its_groups_is_not_left_online_nor_holding_its_rate_bucket(monkeypatch):
    user = await database_sync_to_async(make_user)(username="ghostly")
    layer = get_channel_layer()

    async def layer_down(groups, channel):
        raise ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(layer, "group_add_many", layer_down)

    await failed_connect(user)

    assert presence().socket_count(user.pk) == 0
    assert user.pk not in throttling.user_buckets._buckets


@synchronously
async def test_retries_through_a_database_blip_do_not_use_up_the_users_socket_allowance(settings, database_blip):
    settings.IM_MAX_SOCKETS_PER_USER = 3
    user = await database_sync_to_async(make_user)(username="ghostly")

    # the phone retries a few times while the database is away
    for _ in range(settings.IM_MAX_SOCKETS_PER_USER):
        await failed_connect(user)
    database_blip.undo()

    # and once it is back, the user gets in
    communicator = await open_socket(user)
    await communicator.send_to(text_data="ping")
    assert await communicator.receive_json_from() == {"code": -1, "msg": "PONG", "result": None}
    await communicator.disconnect()
