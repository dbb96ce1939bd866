"""Socket credentials and the origin rule (PROTOCOL.md section 1), through the real ASGI stack."""

import pytest
from channels.routing import URLRouter
from django.conf import settings as django_settings
from django.test import Client

from accounts.middleware import SocketAuthStack
from chat.routing import websocket_urlpatterns
from tests.factories import open_socket, pyjwt_token, refusal, request, socket, synchronously, token_for

pytestmark = pytest.mark.django_db(transaction=True)


async def logged_in_as(communicator) -> int:
    """The user id the server thinks this socket belongs to (from user.friendList's `mine`)."""
    reply = await request(communicator, "user", "friendList")
    assert reply["code"] == 100, reply
    return reply["result"]["mine"]["id"]


async def assert_refused_with(communicator, why: str | None = None) -> None:
    connected, _ = await communicator.connect()
    assert connected  # the server accepts, explains, then closes
    frame, close_code = await refusal(communicator)
    assert frame["code"] == -200 and frame["result"] is None
    assert isinstance(frame["msg"], str) and frame["msg"]
    if why is not None:
        assert frame["msg"] == why
    assert close_code == 4401
    await communicator.disconnect()


def cookie_header_of(user) -> bytes:
    """The Cookie header of a browser logged in to the server's own pages (Django's session login)."""
    client = Client()
    client.force_login(user)
    name = django_settings.SESSION_COOKIE_NAME
    return f"{name}={client.cookies[name].value}".encode()


@pytest.fixture
def session_cookie(alice) -> bytes:
    return cookie_header_of(alice)


@pytest.fixture
def bob_session_cookie(bob) -> bytes:
    return cookie_header_of(bob)


# --- Credentials --------------------------------------------------------------------------------


@synchronously
async def test_a_query_token_logs_the_socket_in(alice):
    communicator = await open_socket(path=f"/?token={token_for(alice)}")

    assert await logged_in_as(communicator) == alice.pk
    await communicator.disconnect()


@synchronously
async def test_the_ws_path_is_an_alias_of_the_root(alice):
    communicator = await open_socket(path=f"/ws/?token={token_for(alice)}")

    assert await logged_in_as(communicator) == alice.pk
    await communicator.disconnect()


@pytest.mark.parametrize("scheme", ["bear", "Bearer", "BEARER", "bearer"])
@synchronously
async def test_the_authorizations_header_with_any_case_of_bear_or_bearer_logs_in(alice, scheme):
    communicator = await open_socket(headers=[(b"authorizations", f"{scheme} {token_for(alice)}".encode())])

    assert await logged_in_as(communicator) == alice.pk
    await communicator.disconnect()


@synchronously
async def test_a_bare_token_in_the_authorizations_header_logs_in(alice):
    communicator = await open_socket(headers=[(b"authorizations", token_for(alice).encode())])

    assert await logged_in_as(communicator) == alice.pk
    await communicator.disconnect()


@synchronously
async def test_the_standard_authorization_bearer_header_logs_in(alice):
    communicator = await open_socket(headers=[(b"authorization", f"Bearer {token_for(alice)}".encode())])

    assert await logged_in_as(communicator) == alice.pk
    await communicator.disconnect()


@synchronously
async def test_the_django_session_cookie_logs_in(alice, session_cookie):
    communicator = await open_socket(headers=[(b"cookie", session_cookie)])

    assert await logged_in_as(communicator) == alice.pk
    await communicator.disconnect()


@synchronously
async def test_a_token_minted_by_the_mall_with_the_same_secret_logs_in(alice):
    communicator = await open_socket(path=f"/?token={pyjwt_token(user_id=alice.pk)}")

    assert await logged_in_as(communicator) == alice.pk
    await communicator.disconnect()


# --- First match wins ---------------------------------------------------------------------------


@synchronously
async def test_a_bad_query_token_is_refused_even_with_a_good_header(alice):
    communicator = socket("/?token=not-a-token", headers=[(b"authorizations", f"bear {token_for(alice)}".encode())])

    await assert_refused_with(communicator, "invalid token")


@synchronously
async def test_a_bad_authorizations_header_is_refused_even_with_a_good_authorization_header(alice):
    communicator = socket(headers=[
        (b"authorizations", b"bear not-a-token"),
        (b"authorization", f"Bearer {token_for(alice)}".encode()),
    ])

    await assert_refused_with(communicator, "invalid token")


@synchronously
async def test_a_bad_token_is_refused_even_with_a_good_session_cookie(alice, session_cookie):
    communicator = socket("/?token=not-a-token", headers=[(b"cookie", session_cookie)])

    await assert_refused_with(communicator, "invalid token")


@synchronously
async def test_a_query_token_wins_over_the_session_of_another_user(alice, bob_session_cookie):
    communicator = await open_socket(path=f"/?token={token_for(alice)}", headers=[(b"cookie", bob_session_cookie)])

    assert await logged_in_as(communicator) == alice.pk
    await communicator.disconnect()


# --- Refusals -----------------------------------------------------------------------------------


@synchronously
async def test_no_credentials_are_refused_with_a_frame_then_close_4401(db):
    await assert_refused_with(socket(), "not logged in")


@synchronously
async def test_an_expired_token_is_refused_with_its_reason(alice):
    await assert_refused_with(socket(f"/?token={token_for(alice, ttl=-10)}"), "token expired")


@synchronously
async def test_a_valid_token_for_a_user_that_does_not_exist_is_refused(db):
    await assert_refused_with(socket(f"/?token={pyjwt_token(user_id=99999)}"), "user does not exist")


@synchronously
async def test_a_token_signed_with_another_secret_is_refused(alice):
    token = pyjwt_token(user_id=alice.pk, secret="some-other-secret-that-is-long-enough")

    await assert_refused_with(socket(f"/?token={token}"), "invalid token")


@synchronously
async def test_a_refused_socket_processes_nothing_it_is_sent(db):
    # given a socket that was refused
    communicator = socket()
    await communicator.connect()
    await refusal(communicator)

    # when it still sends a request and a heartbeat
    await communicator.send_json_to({"class": "user", "action": "friendList", "content": {}})
    await communicator.send_to(text_data="ping")

    # then nothing answers
    assert await communicator.receive_nothing(timeout=0.2)
    await communicator.disconnect()


# --- Origin -------------------------------------------------------------------------------------


@synchronously
async def test_a_handshake_without_origin_is_accepted(alice):
    communicator = socket(f"/?token={token_for(alice)}", headers=[])

    connected, _ = await communicator.connect()

    assert connected
    await communicator.disconnect()


@synchronously
async def test_a_handshake_from_a_foreign_origin_is_refused(alice):
    communicator = socket(f"/?token={token_for(alice)}", headers=[(b"origin", b"https://evil.example.net")])

    connected, _ = await communicator.connect()

    assert not connected


@synchronously
async def test_a_handshake_with_an_unparsable_origin_is_refused(alice):
    communicator = socket(f"/?token={token_for(alice)}", headers=[(b"origin", b"http://[broken")])

    connected, _ = await communicator.connect()

    assert not connected


def fresh_socket_stack():
    """imchat.asgi's websocket stack, built now: the origin lists are read when it is built."""
    return SocketAuthStack(URLRouter(websocket_urlpatterns))


@synchronously
async def test_the_default_application_accepts_an_origin_from_allowed_hosts(alice):
    # The default ALLOWED_HOSTS (localhost, 127.0.0.1, [::1]), as imchat.asgi was built with.
    if "localhost" not in django_settings.ALLOWED_HOSTS and "*" not in django_settings.ALLOWED_HOSTS:
        pytest.skip("ALLOWED_HOSTS was changed by the environment")
    communicator = socket(f"/?token={token_for(alice)}", headers=[(b"origin", b"http://localhost:8080")])

    connected, _ = await communicator.connect()

    assert connected
    assert await logged_in_as(communicator) == alice.pk
    await communicator.disconnect()


@pytest.mark.parametrize(
    "origin, accepted",
    [
        (b"https://chat.example.com", True),
        (b"http://chat.example.com:8080", True),
        (b"https://chat.example.com.evil.net", False),
        (b"https://example.com", False),
    ],
)
@synchronously
async def test_an_origin_is_accepted_when_its_host_is_in_allowed_hosts(alice, settings, origin, accepted):
    settings.ALLOWED_HOSTS = ["chat.example.com"]
    settings.CORS_ALLOWED_ORIGINS = []
    communicator = socket(f"/?token={token_for(alice)}", headers=[(b"origin", origin)],
                          application=fresh_socket_stack())

    connected, _ = await communicator.connect()

    assert connected is accepted
    if connected:
        await communicator.disconnect()


@pytest.mark.parametrize(
    "origin, accepted",
    [
        (b"https://shop.example.org", True),
        (b"http://shop.example.org", False),
        (b"https://shop.example.org:8443", False),
        (b"https://other.example.org", False),
    ],
)
@synchronously
async def test_an_origin_is_accepted_when_the_whole_origin_is_in_cors_allowed_origins(
    alice, settings, origin, accepted
):
    settings.ALLOWED_HOSTS = ["localhost"]
    settings.CORS_ALLOWED_ORIGINS = ["https://shop.example.org"]
    communicator = socket(f"/?token={token_for(alice)}", headers=[(b"origin", origin)],
                          application=fresh_socket_stack())

    connected, _ = await communicator.connect()

    assert connected is accepted
    if connected:
        assert await logged_in_as(communicator) == alice.pk
        await communicator.disconnect()


# --- Host ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "host, accepted",
    [
        (b"chat.example.com", True),
        (b"chat.example.com:9504", True),
        (b"evil.example.net", False),
        (b"chat.example.com.evil.net:9504", False),
        (b"", False),
        (b"[broken", False),
    ],
)
@synchronously
async def test_the_handshake_host_must_be_one_of_allowed_hosts_as_for_http(alice, settings, host, accepted):
    settings.ALLOWED_HOSTS = ["chat.example.com"]
    communicator = socket(f"/?token={token_for(alice)}", headers=[(b"host", host)], application=fresh_socket_stack())

    connected, _ = await communicator.connect()

    assert connected is accepted
    if connected:
        await communicator.disconnect()


@synchronously
async def test_a_forged_host_cannot_reach_the_urls_other_users_receive(alice, bob, settings):
    # given a server without IM_PUBLIC_URL, whose URLs follow the handshake's host
    settings.ALLOWED_HOSTS = ["chat.example.com"]
    settings.IM_PUBLIC_URL = ""
    forged = socket(f"/?token={token_for(alice)}", headers=[(b"host", b"evil.example.net")],
                    application=fresh_socket_stack())
    honest = socket(f"/?token={token_for(alice)}", headers=[(b"host", b"chat.example.com")],
                    application=fresh_socket_stack())

    # when alice tries both
    forged_connected, _ = await forged.connect()
    honest_connected, _ = await honest.connect()

    # then only the honest one is in, and her avatar's URL names the real host
    assert not forged_connected and honest_connected
    reply = await request(honest, "user", "friendList")
    assert reply["result"]["mine"]["avatar"].startswith("http://chat.example.com/")
    await honest.disconnect()


# --- An account closed while its sockets are open ------------------------------------------------


async def run_account_check() -> list[int]:
    """What every server process does every IM_ACCOUNT_CHECK_SECONDS (chat.handlers.BACKGROUND_JOBS)."""
    from channels.db import database_sync_to_async

    from chat import background, realtime, sockets

    pushes = await database_sync_to_async(background._collect)(sockets.sockets_close_of_inactive_users)
    await realtime.deliver(pushes)
    return sorted({push.group for push in pushes})


@pytest.mark.parametrize("how", ["deactivated", "deleted"])
@synchronously
async def test_an_account_closed_while_its_sockets_are_open_loses_them_at_the_next_check(alice, bob, how):
    # given alice on two devices and bob, all connected
    from channels.db import database_sync_to_async

    from accounts.models import User

    phone, laptop, bobs = await open_socket(alice), await open_socket(alice), await open_socket(bob)

    # when alice's account is closed behind the server's back (admin, shell, SQL)
    users = User.objects.filter(pk=alice.pk)
    await database_sync_to_async(users.update if how == "deactivated" else users.delete)(
        **({"is_active": False} if how == "deactivated" else {}))
    closed_groups = await run_account_check()

    # then both her sockets are told and closed 4401; bob's stays
    assert f"user.{alice.pk}" in closed_groups and f"user.{bob.pk}" not in closed_groups
    for device in (phone, laptop):
        frame, code = await refusal(device)
        assert frame == {"code": -200, "msg": "account deactivated", "result": None}
        assert code == 4401
    assert (await request(bobs, "user", "friendList"))["code"] == 100
    await bobs.disconnect()


@synchronously
async def test_a_closed_accounts_socket_handles_nothing_more_while_it_closes(alice, bob):
    from channels.db import database_sync_to_async

    from accounts.models import User
    from chat.models import Message

    phone = await open_socket(alice)
    await database_sync_to_async(User.objects.filter(pk=alice.pk).update)(is_active=False)
    await run_account_check()
    told = await phone.receive_json_from()  # the socket has taken the word: from here it is closing
    await phone.send_json_to({"class": "chat", "action": "sendMsg",
                              "content": {"to_uid": bob.pk, "chat_type": 1, "msg_type": 1, "msg": "too late"}})

    closed = await phone.receive_output()

    assert (told["code"], closed) == (-200, {"type": "websocket.close", "code": 4401})
    assert not await database_sync_to_async(Message.objects.filter(msg="too late").exists)()
