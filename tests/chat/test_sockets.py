"""What opening a socket reads and joins (chat/sockets.py, through chat.handlers.socket_opened)."""

import time

import pytest
from channels.db import database_sync_to_async
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from chat import handlers
from chat.groups import group_create, group_leave
from chat.models import Notice, Participant
from chat.notices import notice_send
from chat.presence import presence
from customer_service.models import ServiceAgent
from customer_service.services import agent_add, shop_create
from imchat.errors import AppError, Code
from tests import factories
from tests.factories import open_socket, pyjwt_token, refusal, request, socket, synchronously, token_for


@pytest.fixture
def opened():
    """`opened(user)` -> handlers.socket_opened for a new socket of the user; presence undone afterwards."""
    channels = []

    def open_(user, **options):
        channel = f"test.socket.{user.pk}.{len(channels)}"
        channels.append((user.pk, channel))
        return handlers.socket_opened(user_id=user.pk, claims=options.get("claims"),
                                      base_url=factories.BASE_URL, channel_name=channel)

    yield open_
    for user_id, channel in channels:
        presence().disconnected(user_id, channel)


def group_of(owner, *members, name="Hikers"):
    return group_create(caller=factories.caller_of(owner), name=name, uids=[member.pk for member in members])


@pytest.mark.django_db
def test_an_agents_socket_reads_its_user_groups_shops_and_box_in_one_statement(alice, bob, carol, opened):
    # given alice in two groups (and out of a third she left), agent of one shop and owner of another,
    # with the announcements box she has already seen
    hikers, readers, left = group_of(bob, alice), group_of(carol, alice, name="Readers"), group_of(bob, alice)
    group_leave(caller=factories.caller_of(alice), group_id=left.pk)
    served = shop_create(name="Tea House", owner=bob)
    agent_add(shop=served, user=alice, status=ServiceAgent.Status.ONLINE)
    owned = shop_create(name="Alice's", owner=alice)
    notice_send(audience=Notice.Audience.ALL, text="welcome")
    opened(alice)

    # when she opens another socket
    with CaptureQueriesContext(connection) as queries:
        opening = opened(alice)

    # then one statement told everything it joins, and as an online agent it has work after joining
    assert len(queries) == 1, [query["sql"] for query in queries]
    assert opening.caller.user == alice and opening.caller.user.nickname == "Alice"
    assert opening.caller.user.date_joined == alice.date_joined
    assert sorted(opening.groups) == sorted([
        f"user.{alice.pk}", "everyone", f"chatgroup.{hikers.pk}", f"chatgroup.{readers.pk}",
        f"shop.{served.pk}.agents", f"shop.{owned.pk}.agents",
    ])
    assert opening.after_join is not None


@pytest.mark.django_db
def test_a_consumers_socket_joins_its_own_groups_and_has_nothing_to_do_after(alice, opened):
    with CaptureQueriesContext(connection) as queries:
        opening = opened(alice)

    assert len(queries) == 1
    assert opening.groups == [f"user.{alice.pk}", "everyone"]
    assert opening.after_join is None


@pytest.mark.django_db
def test_an_offline_agent_has_nothing_to_do_after_joining(alice, bob, opened):
    agent_add(shop=shop_create(name="Tea House", owner=bob), user=alice, status=ServiceAgent.Status.OFFLINE)

    assert opened(alice).after_join is None


@pytest.mark.django_db
def test_the_first_socket_after_an_announcement_places_the_read_marker_before_it(alice, opened):
    # given an announcement sent after alice joined, and another before: she sees the later one only
    notice_send(audience=Notice.Audience.ALL, text="old news")
    alice.date_joined = timezone.now()
    alice.save(update_fields=["date_joined"])
    notice_send(audience=Notice.Audience.ALL, text="welcome")

    opened(alice)

    marker = Participant.objects.get(user=alice, conversation__chat_id="sys_0")
    assert (marker.joined_seq, marker.last_read_seq) == (1, 1)


@pytest.mark.django_db
def test_a_deactivated_user_gets_no_socket(opened):
    user = factories.make_user(is_active=False)

    with pytest.raises(AppError) as refused:
        opened(user)

    assert (refused.value.code, refused.value.msg) == (Code.NOT_LOGGED_IN, "user does not exist")
    assert presence().socket_count(user.pk) == 0


@pytest.mark.django_db
def test_the_socket_over_the_users_limit_is_refused_and_not_counted(alice, opened, settings):
    settings.IM_MAX_SOCKETS_PER_USER = 2
    opened(alice), opened(alice)

    with pytest.raises(AppError) as refused:
        opened(alice)

    assert refused.value.code == Code.RATE_LIMITED
    assert presence().socket_count(alice.pk) == 2


# --- Through the real consumer --------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@synchronously
async def test_a_token_of_a_deactivated_user_is_refused_at_the_handshake(db):
    user = await database_sync_to_async(factories.make_user)(is_active=False)
    communicator = socket(f"/?token={token_for(user)}")

    connected, _ = await communicator.connect()
    frame, code = await refusal(communicator)

    assert connected and code == 4401
    assert frame == {"code": -200, "msg": "user does not exist", "result": None}
    await communicator.disconnect()


@pytest.mark.django_db(transaction=True)
@synchronously
async def test_with_auto_create_a_mall_token_opens_a_socket_for_a_new_user(db, settings):
    settings.IM_JWT_AUTO_CREATE = True
    claims = {"iss": settings.IM_JWT_ISSUER, "exp": int(time.time()) + 60, "data": {"id": 7001, "nickname": "Mall Mia"}}

    communicator = await open_socket(path=f"/?token={pyjwt_token(claims)}")

    reply = await request(communicator, "user", "friendList")
    assert reply["result"]["mine"]["id"] == 7001 and reply["result"]["mine"]["nickname"] == "Mall Mia"
    await communicator.disconnect()
