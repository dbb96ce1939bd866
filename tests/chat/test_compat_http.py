"""The original's HTTP endpoints through the real URLs (PROTOCOL.md section 6): shapes, auth, CORS."""

import pytest
from asgiref.sync import async_to_sync
from django.test import Client

from accounts.models import User
from accounts.services import user_from_token
from chat import services
from customer_service import services as service_services
from customer_service.models import ServiceAgent
from tests.factories import PASSWORD, caller_of, make_user, open_socket, pyjwt_token, request, token_for

pytestmark = pytest.mark.django_db

NOT_LOGGED_IN = {"code": 401, "msg": "请登录", "result": None}
RECORD_ROW_KEYS = {"avatar", "nickname", "chat_id", "from_uid", "to_uid", "chat_type", "msg_type", "msg",
                   "createtime", "mine"}


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """The default PBKDF2 costs ~0.3 s a hash; these tests are about the endpoints, not the hasher."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def client() -> Client:
    return Client()


def post(client: Client, path: str, body=None, *, user=None, token: str | None = None, **headers):
    """POST as the compat client does: JSON (or an empty body), `authorizations: bear <jwt>`."""
    if user is not None:
        token = token_for(user)
    if token is not None:
        headers.setdefault("authorizations", f"bear {token}")
    response = client.post(path, data=body if body is not None else "", content_type="application/json",
                           headers=headers)
    assert response.status_code == 200, (path, response.status_code, response.content[:200])
    assert response["Content-Type"].startswith("application/json")
    return response.json()


def send(sender, receiver, msg="hello"):
    return services.private_message_send(caller=caller_of(sender), to_uid=receiver.pk, chat_id=None, msg_type=1,
                                         msg=msg, client_msg_id=None)


def chat_id_of(a, b) -> str:
    return f"{min(a.pk, b.pk)}_{max(a.pk, b.pk)}"


# --- login --------------------------------------------------------------------------------------


def test_login_with_the_right_password_answers_code_1_and_a_token_naming_the_user(client):
    # given
    dora = make_user(username="dora", password=PASSWORD)

    # when
    reply = post(client, "/login", {"username": "dora", "password": PASSWORD})

    # then
    assert reply["code"] == 1 and reply["msg"] == "登录成功"
    assert set(reply["result"]) == {"token"}
    assert user_from_token(reply["result"]["token"]) == dora


@pytest.mark.django_db(transaction=True)
def test_the_login_token_opens_a_socket(client):
    # given
    dora = make_user(username="dora", password=PASSWORD)
    token = post(client, "/login", {"username": "dora", "password": PASSWORD})["result"]["token"]

    # when
    async def friends_over_the_socket():
        communicator = await open_socket(path=f"/?token={token}")
        reply = await request(communicator, "user", "friendList")
        await communicator.disconnect()
        return reply

    reply = async_to_sync(friends_over_the_socket)()

    # then
    assert reply["code"] == 100 and reply["result"]["mine"]["id"] == dora.pk


@pytest.mark.parametrize("username, password", [("dora", "wrong password"), ("nobody", PASSWORD)])
def test_a_wrong_password_or_name_is_http_200_with_code_0(client, username, password):
    make_user(username="dora", password=PASSWORD)

    reply = post(client, "/login", {"username": username, "password": password})

    assert reply == {"code": 0, "msg": "用户名或密码错误", "result": None}


def test_a_user_without_a_password_cannot_log_in(client, alice):
    assert post(client, "/login", {"username": "alice", "password": ""})["code"] == 0
    assert post(client, "/login", {"username": "alice", "password": "anything"})["code"] == 0


def test_an_inactive_user_cannot_log_in(client):
    make_user(username="dora", password=PASSWORD, is_active=False)

    assert post(client, "/login", {"username": "dora", "password": PASSWORD})["code"] == 0


def test_login_accepts_a_form_encoded_body(client):
    make_user(username="dora", password=PASSWORD)

    response = client.post("/login", {"username": "dora", "password": PASSWORD})

    assert response.status_code == 200 and response.json()["code"] == 1


def test_a_get_is_answered_in_the_compat_shape_with_code_0(client):
    response = client.get("/login")

    assert response.status_code == 200
    assert response.json() == {"code": 0, "msg": "POST only", "result": None}


# --- login/register -----------------------------------------------------------------------------


def test_register_creates_the_user_and_answers_a_token(client):
    reply = post(client, "/login/register", {"username": "Erin_2024", "password": PASSWORD})

    assert reply["code"] == 1
    user = User.objects.get(username="Erin_2024")
    assert user_from_token(reply["result"]["token"]) == user
    assert user.check_password(PASSWORD)
    assert post(client, "/login", {"username": "Erin_2024", "password": PASSWORD})["code"] == 1


@pytest.mark.parametrize("username", ["abcde", "A1234", "a_b_c", "abcdefghijklmnop"])
def test_register_accepts_usernames_of_the_original_rule(client, username):
    assert post(client, "/login/register", {"username": username, "password": PASSWORD})["code"] == 1


@pytest.mark.parametrize("username", ["abcd", "1abcde", "_abcde", "abcdefghijklmnopq", "ab cde", "abc-de",
                                      "abcdé", ""])
def test_register_refuses_usernames_outside_the_original_rule(client, username):
    reply = post(client, "/login/register", {"username": username, "password": PASSWORD})

    assert reply["code"] == 0 and reply["msg"].startswith("username: ")
    assert not User.objects.exists()


def test_register_refuses_a_username_with_a_trailing_newline(client):
    # `$` also matches before a final newline, so ^...$ with re.match lets "abcde\n" through
    reply = post(client, "/login/register", {"username": "abcde\n", "password": PASSWORD})

    assert reply["code"] == 0 and reply["msg"].startswith("username: ")
    assert not User.objects.exists()


@pytest.mark.parametrize("password", ["short1", "password", "12345678901", "frankie_1"])
def test_register_applies_djangos_password_validators(client, password):
    reply = post(client, "/login/register", {"username": "frankie_1", "password": password})

    assert reply["code"] == 0 and reply["msg"].startswith("password: ")
    assert not User.objects.exists()


@pytest.mark.parametrize("second", ["Frank1", "frank1", "FRANK1"])
def test_register_refuses_a_name_already_taken_in_any_case(client, second):
    assert post(client, "/login/register", {"username": "Frank1", "password": PASSWORD})["code"] == 1

    reply = post(client, "/login/register", {"username": second, "password": PASSWORD})

    assert reply == {"code": 0, "msg": "username: already taken", "result": None}
    assert User.objects.count() == 1


def test_register_names_a_missing_field(client):
    assert post(client, "/login/register", {"password": PASSWORD})["msg"] == "username: required"
    assert post(client, "/login/register", {"username": "gina_1"})["msg"] == "password: required"


# --- user/index ---------------------------------------------------------------------------------


def test_user_index_with_an_empty_json_body_lists_the_people_you_chat_with_latest_first(client, alice, bob, carol):
    # given alice wrote to bob, then carol wrote to alice
    send(alice, bob)
    send(carol, alice)

    # when the compat client posts Content-Length 0 with Content-Type application/json
    reply = post(client, "/user/index", user=alice)

    # then
    assert reply["code"] == 1
    result = reply["result"]
    assert set(result) == {"mine", "friend"}
    assert result["mine"] == {"id": alice.pk, "nickname": "Alice",
                              "avatar": "http://testserver/media/avatars/alice.png"}
    [group] = result["friend"]
    assert set(group) == {"groupname", "id", "online", "list"}
    assert isinstance(group["groupname"], str) and isinstance(group["id"], int)
    assert group["online"] == 0
    assert group["list"] == [
        {"username": "Carol", "avatar": "http://testserver/static/img/avatar.png", "id": carol.pk, "sign": ""},
        {"username": "Bob", "avatar": "https://cdn.example.com/bob.png", "id": bob.pk, "sign": ""},
    ]


def test_user_index_gives_a_fresh_user_a_few_people_to_talk_to(client, alice, bob, carol):
    reply = post(client, "/user/index", user=alice)

    suggested = [friend["id"] for friend in reply["result"]["friend"][0]["list"]]
    assert set(suggested) == {bob.pk, carol.pk}


def test_user_index_suggests_at_most_ten_people(client, alice):
    for _ in range(12):
        make_user()

    reply = post(client, "/user/index", user=alice)

    suggested = [friend["id"] for friend in reply["result"]["friend"][0]["list"]]
    assert 1 <= len(suggested) <= 10 and alice.pk not in suggested


def test_user_index_accepts_the_authorization_bearer_header_and_the_session(client, alice):
    by_header = post(client, "/user/index", authorization=f"Bearer {token_for(alice)}")
    client.force_login(alice)
    by_session = post(client, "/user/index")

    assert by_header["result"]["mine"]["id"] == by_session["result"]["mine"]["id"] == alice.pk


def test_user_index_accepts_a_json_object_body_too(client, alice):
    assert post(client, "/user/index", {"anything": 1}, user=alice)["code"] == 1


@pytest.mark.parametrize("body", ["[1, 2]", "not json"])
def test_a_body_that_is_not_a_json_object_is_code_0(client, alice, body):
    assert post(client, "/user/index", body, user=alice)["code"] == 0


def test_avatars_are_built_from_im_public_url_when_set(client, alice, settings):
    settings.IM_PUBLIC_URL = "https://im.example.com"

    reply = post(client, "/user/index", user=alice)

    assert reply["result"]["mine"]["avatar"] == "https://im.example.com/media/avatars/alice.png"


# --- Not logged in ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/user/index", "/user/chatRecently", "/user/getChatRecord"])
def test_a_request_without_a_token_is_http_200_code_401(client, db, path):
    assert post(client, path) == NOT_LOGGED_IN


@pytest.mark.parametrize("header", ["bear not-a-token", "bear ", "Bearer a.b.c"])
def test_a_request_with_a_bad_token_is_code_401(client, db, header):
    assert post(client, "/user/index", authorizations=header) == NOT_LOGGED_IN


def test_a_request_with_an_expired_token_is_code_401(client, alice):
    assert post(client, "/user/index", token=token_for(alice, ttl=-1)) == NOT_LOGGED_IN


def test_a_request_with_a_token_for_a_missing_user_is_code_401(client, db):
    assert post(client, "/user/index", token=pyjwt_token(user_id=424242)) == NOT_LOGGED_IN


def test_a_bad_token_is_refused_even_with_a_logged_in_session(client, alice):
    client.force_login(alice)

    assert post(client, "/user/index", authorizations="bear not-a-token") == NOT_LOGGED_IN


# --- The session cookie needs the CSRF token -----------------------------------------------------


@pytest.fixture
def browser_of(alice):
    """A browser logged in to our pages as alice, which enforces CSRF as a real one is subject to it,
    holding the csrftoken cookie a page of ours gave it."""
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(alice)
    assert browser.get("/chat/").status_code == 200
    return browser


@pytest.mark.parametrize("path", ["/user/index", "/user/chatRecently", "/user/getChatRecord"])
def test_a_cross_site_post_riding_the_session_cookie_is_not_logged_in(browser_of, path):
    assert post(browser_of, path, {"chat_id": "1_2"}) == NOT_LOGGED_IN


def test_the_session_cookie_with_its_csrf_token_is_logged_in(browser_of, alice):
    token = browser_of.cookies["csrftoken"].value

    reply = post(browser_of, "/user/index", **{"X-CSRFToken": token})

    assert reply["result"]["mine"]["id"] == alice.pk


def test_an_upload_riding_the_session_cookie_without_the_csrf_token_is_refused(browser_of):
    response = browser_of.post("/user/upload", {"file": b"not read"})

    assert response.json() == NOT_LOGGED_IN


def test_a_token_needs_no_csrf_token_as_the_original_client_sends_none(alice):
    browser = Client(enforce_csrf_checks=True)

    assert post(browser, "/user/index", user=alice)["result"]["mine"]["id"] == alice.pk


# --- user/chatRecently --------------------------------------------------------------------------


def test_chat_recently_answers_code_1_with_the_recent_chat_result(client, alice, bob):
    send(bob, alice, "hi alice")

    reply = post(client, "/user/chatRecently", {"is_service": False}, user=alice)

    assert reply["code"] == 1
    assert reply["result"]["unread_count"] == 1
    [row] = reply["result"]["rows"]
    assert (row["chat_id"], row["friend_uid"], row["last_msg"], row["unread_count"]) == (
        chat_id_of(alice, bob), bob.pk, "hi alice", 1)
    assert row["friend_avatar"] == "https://cdn.example.com/bob.png"


def test_chat_recently_with_an_empty_body_lists_the_users_own_chats(client, alice):
    assert post(client, "/user/chatRecently", user=alice) == {"code": 1, "msg": None,
                                                              "result": {"rows": [], "unread_count": 0}}


def test_chat_recently_as_service_from_someone_who_is_no_agent_is_code_0(client, alice):
    reply = post(client, "/user/chatRecently", {"is_service": True}, user=alice)

    assert reply["code"] == 0 and reply["msg"]


# --- user/getChatRecord -------------------------------------------------------------------------


def test_chat_record_pages_twenty_newest_first_with_the_total(client, alice, bob):
    # given 25 messages
    for n in range(1, 26):
        send(alice if n % 2 else bob, bob if n % 2 else alice, f"m{n}")
    chat_id = chat_id_of(alice, bob)

    # when
    first = post(client, "/user/getChatRecord", {"chat_id": chat_id}, user=alice)
    second = post(client, "/user/getChatRecord", {"chat_id": chat_id, "page": 2}, user=alice)
    third = post(client, "/user/getChatRecord", {"chat_id": chat_id, "page": "3"}, user=alice)

    # then
    assert first["code"] == 1
    assert first["result"]["total"] == second["result"]["total"] == 25
    assert [row["msg"] for row in first["result"]["rows"]] == [f"m{n}" for n in range(25, 5, -1)]
    assert [row["msg"] for row in second["result"]["rows"]] == [f"m{n}" for n in range(5, 0, -1)]
    assert third["result"] == {"rows": [], "total": 25}


def test_chat_record_rows_have_the_compat_fields_with_json_types(client, alice, bob):
    # given
    stored = send(alice, bob, "hello bob")
    send(bob, alice, "hello alice")

    # when
    rows = post(client, "/user/getChatRecord", {"chat_id": chat_id_of(alice, bob)}, user=alice)["result"]["rows"]

    # then
    theirs, mine = rows
    assert RECORD_ROW_KEYS <= set(mine)
    assert {name: mine[name] for name in RECORD_ROW_KEYS} == {
        "avatar": "http://testserver/media/avatars/alice.png",
        "nickname": "Alice",
        "chat_id": chat_id_of(alice, bob),
        "from_uid": alice.pk,
        "to_uid": bob.pk,
        "chat_type": 1,
        "msg_type": 1,
        "msg": "hello bob",
        "createtime": stored.createtime,
        "mine": True,
    }
    assert theirs["mine"] is False and theirs["from_uid"] == bob.pk
    assert theirs["avatar"] == "https://cdn.example.com/bob.png"


def test_chat_record_by_to_uid_and_chat_type_finds_the_same_history(client, alice, bob):
    send(alice, bob, "one")
    send(bob, alice, "two")

    by_peer = post(client, "/user/getChatRecord", {"to_uid": bob.pk, "chat_type": 1}, user=alice)
    by_chat_id = post(client, "/user/getChatRecord", {"chat_id": chat_id_of(alice, bob)}, user=alice)

    assert by_peer == by_chat_id
    assert [row["msg"] for row in by_peer["result"]["rows"]] == ["two", "one"]


def test_chat_record_of_a_chat_not_started_yet_is_empty(client, alice, bob):
    reply = post(client, "/user/getChatRecord", {"to_uid": bob.pk, "chat_type": 1}, user=alice)

    assert reply == {"code": 1, "msg": None, "result": {"rows": [], "total": 0}}


def test_chat_record_of_someone_elses_chat_is_code_0(client, alice, bob, carol):
    send(bob, carol, "private")

    reply = post(client, "/user/getChatRecord", {"chat_id": chat_id_of(bob, carol)}, user=alice)

    assert reply["code"] == 0 and reply["result"] is None


def test_chat_record_without_a_chat_id_or_to_uid_is_code_0(client, alice):
    reply = post(client, "/user/getChatRecord", {}, user=alice)

    assert reply["code"] == 0 and reply["msg"].startswith("chat_id")



# --- user/getChatRecord of a customer-service chat, as the original client asks ------------------


@pytest.fixture
def tea_shop(db, alice, bob, carol):
    """Tea shop: owner carol, agent bob; alice asked (bob was away: the shop's notice), bob answered."""
    shop = service_services.shop_create(name="Tea shop", owner=carol)
    service_services.agent_add(shop=shop, user=bob, status=ServiceAgent.Status.ONLINE)
    service_services.consumer_message_send(caller=caller_of(alice), shop_id=shop.pk, msg_type=1,
                                           msg="is oolong in stock?", client_msg_id=None)
    service_services.agent_message_send(caller=caller_of(bob), shop_id=shop.pk, consumer_id=alice.pk, msg_type=1,
                                        msg="three left", client_msg_id=None)
    return shop


def records(reply: dict) -> list[tuple[str, bool]]:
    return [(row["msg"], row["mine"]) for row in reply["result"]["rows"]]


@pytest.mark.parametrize("who", ["bob", "carol"])
def test_an_agent_or_owner_asking_with_chat_id_alone_gets_the_shop_sides_history(client, tea_shop, alice, bob,
                                                                                  carol, who):
    # given: the original client sends an agent's request with chat_id alone, no role_type
    server_of_the_shop = {"bob": bob, "carol": carol}[who]

    # when
    reply = post(client, "/user/getChatRecord", {"chat_id": f"{tea_shop.pk}____{alice.pk}"},
                 user=server_of_the_shop)

    # then the shop's side, where whatever the shop said is "mine" (any agent's answer, its notice):
    # the original client draws it as the agent's own bubbles
    assert reply["code"] == 1 and reply["result"]["total"] == 3
    assert records(reply) == [("three left", True), (tea_shop.offline_notice, True),
                              ("is oolong in stock?", False)]
    assert reply == post(client, "/user/getChatRecord",
                         {"chat_id": f"{tea_shop.pk}____{alice.pk}", "role_type": 1}, user=server_of_the_shop)


def test_the_consumer_asking_with_chat_id_alone_gets_their_own_side(client, tea_shop, alice):
    reply = post(client, "/user/getChatRecord", {"chat_id": f"{tea_shop.pk}____{alice.pk}"}, user=alice)

    assert reply["code"] == 1
    assert records(reply) == [("three left", False), (tea_shop.offline_notice, False), ("is oolong in stock?", True)]


def test_an_agent_asking_for_their_own_chat_with_their_shop_gets_their_own_side(client, tea_shop, bob):
    # given: bob, an agent of the shop, also asked it something as a customer
    service_services.consumer_message_send(caller=caller_of(bob), shop_id=tea_shop.pk, msg_type=1,
                                           msg="bob, as a customer", client_msg_id=None)

    # when
    reply = post(client, "/user/getChatRecord", {"chat_id": f"{tea_shop.pk}____{bob.pk}"}, user=bob)

    # then
    assert reply["code"] == 1
    assert records(reply)[-1] == ("bob, as a customer", True)


@pytest.mark.parametrize("body", [{}, {"role_type": 0}, {"role_type": "user"}])
def test_someone_who_does_not_serve_the_shop_gets_nothing_of_another_users_chat_with_it(client, tea_shop, alice,
                                                                                       body):
    # given: dora serves another shop only
    dora = make_user(username="dora")
    other_shop = service_services.shop_create(name="Bike shop", owner=make_user(username="owner2"))
    service_services.agent_add(shop=other_shop, user=dora, status=ServiceAgent.Status.ONLINE)
    eve = make_user(username="eve")

    for stranger in (dora, eve):
        # when
        reply = post(client, "/user/getChatRecord", {"chat_id": f"{tea_shop.pk}____{alice.pk}", **body},
                     user=stranger)

        # then
        assert reply == {"code": 0, "msg": "chat_id: no such conversation", "result": None}


def test_an_agent_saying_role_type_user_still_gets_only_their_own_side(client, tea_shop, alice, bob):
    reply = post(client, "/user/getChatRecord", {"chat_id": f"{tea_shop.pk}____{alice.pk}", "role_type": 0},
                 user=bob)

    assert reply["code"] == 0 and reply["result"] is None


# --- Paths: with and without the trailing slash, never a redirect -------------------------------


@pytest.mark.parametrize("path", ["/user/index", "/user/index/", "/user/chatRecently", "/user/chatRecently/",
                                  "/user/getChatRecord", "/user/getChatRecord/"])
def test_user_paths_answer_with_and_without_a_trailing_slash(client, alice, bob, path):
    send(alice, bob)
    body = {"to_uid": bob.pk, "chat_type": 1} if "getChatRecord" in path else None

    reply = post(client, path, body, user=alice)

    assert reply["code"] == 1


@pytest.mark.parametrize("path", ["/login", "/login/", "/login/register", "/login/register/"])
def test_login_paths_answer_with_and_without_a_trailing_slash(client, db, path):
    reply = post(client, path, {"username": "henry_1", "password": PASSWORD})

    assert reply["code"] in (0, 1) and reply["msg"]


# --- CORS ---------------------------------------------------------------------------------------


def preflight(client: Client, path: str, origin: str):
    return client.options(path, headers={
        "origin": origin,
        "access-control-request-method": "POST",
        "access-control-request-headers": "authorizations,content-type",
    })


@pytest.mark.parametrize("path", ["/user/index", "/user/getChatRecord", "/login", "/login/register"])
def test_a_preflight_from_an_allowed_origin_is_answered_without_a_token(client, db, settings, path):
    # given
    settings.CORS_ALLOWED_ORIGINS = ["https://h5.example.com"]

    # when
    response = preflight(client, path, "https://h5.example.com")

    # then
    assert response.status_code == 200
    assert response["access-control-allow-origin"] == "https://h5.example.com"
    allowed = {name.strip().lower() for name in response["access-control-allow-headers"].split(",")}
    assert {"authorizations", "content-type"} <= allowed
    assert "POST" in response["access-control-allow-methods"]


def test_a_preflight_from_another_origin_gets_no_cors_grant(client, db, settings):
    settings.CORS_ALLOWED_ORIGINS = ["https://h5.example.com"]

    response = preflight(client, "/user/index", "https://evil.example.net")

    assert "access-control-allow-origin" not in response


def test_a_post_from_an_allowed_origin_carries_the_cors_grant(client, alice, settings):
    settings.CORS_ALLOWED_ORIGINS = ["https://h5.example.com"]

    response = client.post("/user/index", data="", content_type="application/json",
                           headers={"origin": "https://h5.example.com", "authorizations": f"bear {token_for(alice)}"})

    assert response.status_code == 200 and response.json()["code"] == 1
    assert response["access-control-allow-origin"] == "https://h5.example.com"
