"""Logins and registrations over every door (compat `login`, `POST /api/v1/auth/token/`, the web
page, the admin): per-address rates, a per-username backoff after failures, and answers that do not
tell which usernames exist."""

import pytest
from django.contrib.auth.hashers import MD5PasswordHasher
from django.test import Client
from django.urls import reverse

from accounts.services import user_create
from tests.factories import PASSWORD, make_user

pytestmark = pytest.mark.django_db

WRONG = "not-the-password-1"


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def clock(monkeypatch):
    """The backoff's clock, moved by hand: `clock.advance(seconds)`."""

    class Clock:
        now = 1_000_000.0

        def __call__(self) -> float:
            return self.now

        def advance(self, seconds: float) -> None:
            self.now += seconds

    fake = Clock()
    monkeypatch.setattr("accounts.throttling.clock", fake)
    return fake


def compat_login(username: str, password: str, *, address: str = "192.0.2.10"):
    response = Client(REMOTE_ADDR=address).post("/login", {"username": username, "password": password},
                                                content_type="application/json")
    assert response.status_code == 200
    return response


def rest_login(username: str, password: str, *, address: str = "192.0.2.10"):
    return Client(REMOTE_ADDR=address).post("/api/v1/auth/token/", {"username": username, "password": password},
                                            content_type="application/json")


def web_login(username: str, password: str, *, address: str = "192.0.2.10", path: str | None = None):
    return Client(REMOTE_ADDR=address).post(path or reverse("login"), {"username": username, "password": password})


def wait_of(response) -> int:
    """The seconds a compat login says to wait (0 when it was not refused for trying too often)."""
    return int(response["Retry-After"]) if "Retry-After" in response else 0


# --- Backoff per username ------------------------------------------------------------------------


def test_after_the_free_failures_each_attempt_waits_twice_as_long_up_to_the_cap(settings, clock):
    # given
    settings.IM_LOGIN_FREE_FAILURES = 3
    settings.IM_LOGIN_BACKOFF_MAX = 8
    make_user(username="dora", password=PASSWORD)
    for _ in range(3):
        assert compat_login("dora", WRONG).json() == {"code": 0, "msg": "用户名或密码错误", "result": None}

    # when: each time the wait is over, one more wrong password
    waits = []
    for _ in range(5):
        refused = compat_login("dora", PASSWORD)  # refused unchecked, even with the right password
        waits.append(wait_of(refused))
        assert refused.json() == {"code": 0, "result": None,
                                  "msg": f"too many failed logins for this username, try again in {waits[-1]} s"}
        clock.advance(waits[-1])
        assert compat_login("dora", WRONG).json()["msg"] == "用户名或密码错误"

    # then
    assert waits == [1, 2, 4, 8, 8]


def test_a_success_starts_the_count_over(settings, clock):
    settings.IM_LOGIN_FREE_FAILURES = 2
    make_user(username="dora", password=PASSWORD)
    compat_login("dora", WRONG), compat_login("dora", WRONG)
    clock.advance(1)

    assert compat_login("dora", PASSWORD).json()["code"] == 1
    assert compat_login("dora", WRONG).json()["msg"] == "用户名或密码错误"
    assert compat_login("dora", PASSWORD).json()["code"] == 1


def test_a_waiting_attempt_does_not_count_as_a_failure(settings, clock):
    settings.IM_LOGIN_FREE_FAILURES = 2
    make_user(username="dora", password=PASSWORD)
    compat_login("dora", WRONG), compat_login("dora", WRONG)

    for _ in range(5):
        assert wait_of(compat_login("dora", WRONG)) == 1  # hammering while waiting changes nothing

    clock.advance(1)
    assert compat_login("dora", PASSWORD).json()["code"] == 1


def test_the_backoff_holds_on_every_login_door_and_for_that_name_only(settings, clock):
    # given: two failures over the compat endpoint
    settings.IM_LOGIN_FREE_FAILURES = 2
    user_create(username="dora", password=PASSWORD, is_staff=True)
    make_user(username="erin", password=PASSWORD)
    compat_login("Dora", WRONG), compat_login("dora ", WRONG)  # one name, however it is spelled

    # when
    rest = rest_login("dora", PASSWORD)
    web = web_login("dora", PASSWORD)
    admin = web_login("dora", PASSWORD, path="/admin/login/")

    # then
    assert rest.status_code == 429 and rest["Retry-After"] == "1"
    assert rest.json() == {"code": -429, "msg": "too many failed logins for this username, try again in 1 s",
                           "result": {"retry_after": 1}}
    assert web.status_code == 429 and web["Retry-After"] == "1"
    assert "Too many attempts. Try again in 1 s." in web.content.decode()
    assert "_auth_user_id" not in web.client.session
    assert admin.status_code == 200 and "too many failed logins for this username" in admin.content.decode()
    assert rest_login("erin", PASSWORD).status_code == 200
    clock.advance(1)
    assert rest_login("dora", PASSWORD).status_code == 200


def test_the_web_login_page_says_how_long_to_wait_in_chinese_too(settings, clock):
    settings.IM_LOGIN_FREE_FAILURES = 1
    make_user(username="dora", password=PASSWORD)
    web_login("dora", WRONG)

    page = Client(HTTP_ACCEPT_LANGUAGE="zh-CN", REMOTE_ADDR="192.0.2.10").post(
        reverse("login"), {"username": "dora", "password": PASSWORD})

    assert page.status_code == 429 and "尝试次数过多，请 1 秒后再试。" in page.content.decode()


# --- Nothing tells which names exist -------------------------------------------------------------


@pytest.mark.parametrize("username, password", [("dora", WRONG), ("nobody", PASSWORD)])
def test_a_wrong_name_and_a_wrong_password_get_the_same_answer_on_every_door(username, password):
    make_user(username="dora", password=PASSWORD)

    assert compat_login(username, password).json() == {"code": 0, "msg": "用户名或密码错误", "result": None}
    rest = rest_login(username, password)
    assert rest.status_code == 400 and rest.json() == {"code": 0, "msg": "用户名或密码错误", "result": None}
    assert web_login(username, password).status_code == 200


class CountingHasher(MD5PasswordHasher):
    """MD5, counting how often a password is hashed."""

    algorithm = "counting_md5"
    hashed = 0

    def encode(self, password, salt):
        CountingHasher.hashed += 1
        return super().encode(password, salt)


def test_a_name_nobody_has_runs_the_password_hasher_as_a_wrong_password_does(settings):
    # given
    settings.PASSWORD_HASHERS = ["tests.accounts.test_login_limits.CountingHasher"]
    make_user(username="dora", password=PASSWORD)
    work = {}

    # when
    for username in ("dora", "nobody"):
        CountingHasher.hashed = 0
        compat_login(username, WRONG)
        work[username] = CountingHasher.hashed

    # then
    assert work == {"dora": 1, "nobody": 1}


def test_a_name_nobody_has_backs_off_exactly_like_a_real_one(settings, clock):
    settings.IM_LOGIN_FREE_FAILURES = 2
    make_user(username="dora", password=PASSWORD)

    def answers(username: str) -> list:
        replies = [compat_login(username, WRONG) for _ in range(4)]
        return [(reply.json(), wait_of(reply)) for reply in replies]

    assert answers("dora") == answers("nobody")


# --- Per client address --------------------------------------------------------------------------


def test_logins_are_counted_per_client_address_over_every_door(rates):
    # given: three attempts from one address, each at a different name (no backoff involved)
    rates(login="3/minute")
    for name in ("amy", "ben", "cal"):
        compat_login(name, WRONG)

    # when
    compat = compat_login("dan", WRONG)
    rest = rest_login("dan", WRONG)
    web = web_login("dan", WRONG)

    # then
    seconds = wait_of(compat)
    assert 1 <= seconds <= 60
    assert compat.json() == {"code": 0, "msg": f"too many requests, try again in {seconds} s", "result": None}
    assert rest.status_code == 429 and rest.json()["code"] == -429
    assert web.status_code == 429
    assert compat_login("dan", WRONG, address="192.0.2.99").json()["msg"] == "用户名或密码错误"


def test_registration_is_counted_per_client_address_and_still_refuses_a_taken_name(rates):
    # given
    rates(register="2/hour")
    make_user(username="Frank1", password=PASSWORD)
    client = Client(REMOTE_ADDR="192.0.2.20")

    def register(username: str):
        response = client.post("/login/register", {"username": username, "password": PASSWORD},
                               content_type="application/json")
        assert response.status_code == 200
        return response

    # when
    taken = register("frank1")
    created = register("Gina_2024")
    refused = register("Hank_2024")

    # then
    assert taken.json() == {"code": 0, "msg": "username: already taken", "result": None}
    assert created.json()["code"] == 1
    seconds = wait_of(refused)
    assert refused.json() == {"code": 0, "msg": f"too many requests, try again in {seconds} s", "result": None}
    assert 1 <= seconds <= 3600
