"""HTTP rate limits (imchat/throttling.py): REST sends at about the socket's rate, other calls per user
or per address, the compat endpoints behind the same throttles, 429 in the protocol's shape."""

import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client
from rest_framework.test import APIClient
from rest_framework.throttling import SimpleRateThrottle

from chat.models import Message
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def frozen_clock(monkeypatch):
    """Every request in the same instant: a rate is then a count, whatever the machine's speed."""
    monkeypatch.setattr(SimpleRateThrottle, "timer", staticmethod(lambda: 1_000_000.0))


def assert_rate_limited(response, *, wait: int | None = None) -> int:
    """429, Retry-After, and `{code: -429, msg, result: {retry_after}}`; the wait in seconds."""
    assert response.status_code == 429, response.content
    seconds = int(response["Retry-After"])
    assert seconds >= 1 and (wait is None or seconds == wait)
    assert response.json() == {"code": -429, "msg": f"too many requests, try again in {seconds} s",
                               "result": {"retry_after": seconds}}
    return seconds


def test_a_hundred_rest_sends_at_once_store_what_a_users_sockets_may_send_and_refuse_the_rest(
        alice, bob, api, settings, frozen_clock):
    # given: the socket's per-user rate, IM_USER_RATE_LIMIT (30) a second
    assert settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["send"] == f"{settings.IM_USER_RATE_LIMIT}/second"
    client = api(alice)

    # when
    replies = [client.post("/api/v1/messages/", factories.send_content(bob.pk, f"m{n}"), format="json")
               for n in range(100)]

    # then
    assert [reply.status_code for reply in replies] == [201] * 30 + [429] * 70
    assert_rate_limited(replies[-1], wait=1)
    assert Message.objects.filter(sender=alice).count() == 30


def test_sending_into_a_conversation_counts_against_the_send_rate_and_reading_it_does_not(alice, bob, api, rates):
    rates(send="2/minute")
    client = api(alice)
    chat_id = client.post("/api/v1/messages/", factories.send_content(bob.pk), format="json").json()["result"]["chat_id"]

    second = client.post(f"/api/v1/conversations/{chat_id}/messages/", {"msg_type": 1, "msg": "again"}, format="json")
    third = client.post(f"/api/v1/conversations/{chat_id}/messages/", {"msg_type": 1, "msg": "more"}, format="json")
    history = client.get(f"/api/v1/conversations/{chat_id}/messages/")

    assert second.status_code == 201
    assert_rate_limited(third)
    assert history.status_code == 200 and len(history.json()["result"]["messages"]) == 2
    assert api(bob).post("/api/v1/messages/", factories.send_content(alice.pk), format="json").status_code == 201


def test_other_calls_are_counted_per_user(alice, bob, api, rates):
    rates(user="3/minute")

    replies = [api(alice).get("/api/v1/me/") for _ in range(4)]

    assert [reply.status_code for reply in replies[:3]] == [200, 200, 200]
    assert_rate_limited(replies[3])
    assert api(bob).get("/api/v1/me/").status_code == 200


def test_anonymous_calls_are_counted_per_client_address(db, rates):
    rates(anon="2/minute")
    first, other = APIClient(REMOTE_ADDR="198.51.100.7"), APIClient(REMOTE_ADDR="198.51.100.8")

    replies = [first.get("/api/schema/", HTTP_ACCEPT="application/json") for _ in range(3)]

    assert [reply.status_code for reply in replies[:2]] == [200, 200]
    assert_rate_limited(replies[2])
    assert other.get("/api/schema/", HTTP_ACCEPT="application/json").status_code == 200


def test_x_forwarded_for_is_ignored_unless_the_server_is_behind_a_trusted_proxy(db, rates, settings):
    # given: no trusted proxy (the default); a client that makes up a new address each time
    rates(anon="2/minute")
    client = APIClient(REMOTE_ADDR="203.0.113.5")

    def get(forwarded_for: str):
        return client.get("/api/schema/", HTTP_ACCEPT="application/json", HTTP_X_FORWARDED_FOR=forwarded_for)

    # then: still one address
    assert [get(f"10.0.0.{n}").status_code for n in range(3)] == [200, 200, 429]

    # given: one trusted proxy, which appends the address it saw to what the client sent
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}

    # then: the address the proxy saw counts, whatever the client put before it
    assert [get(f"10.0.0.{n}, 192.0.2.1").status_code for n in range(3)] == [200, 200, 429]
    assert get("192.0.2.2").status_code == 200


def test_the_compat_endpoints_count_against_the_per_user_rate_and_answer_code_0_with_retry_after(alice, bob, rates):
    # given
    rates(user="2/minute")
    client = Client(HTTP_AUTHORIZATIONS=f"bear {factories.token_for(alice)}")

    # when
    replies = [client.post("/user/index", "", content_type="application/json") for _ in range(3)]

    # then: HTTP 200 and code 0 (the compat client reads any truthy code, -429 too, as success)
    assert [reply.json()["code"] for reply in replies[:2]] == [1, 1]
    refused = replies[2]
    seconds = int(refused["Retry-After"])
    assert refused.status_code == 200
    assert refused.json() == {"code": 0, "msg": f"too many requests, try again in {seconds} s", "result": None}
    other = Client(HTTP_AUTHORIZATIONS=f"bear {factories.token_for(bob)}")
    assert other.post("/user/index", "", content_type="application/json").json()["code"] == 1


def test_the_malls_bulk_sync_is_not_throttled(db, rates, settings):
    rates(user="1/minute", anon="1/minute")
    settings.IM_MALL_API_KEY = "mall-key-" + "k" * 24
    client = APIClient(HTTP_X_IMCHAT_API_KEY=settings.IM_MALL_API_KEY)

    replies = [client.post("/api/v1/mall/users/", {"users": [{"id": 9000 + n}]}, format="json") for n in range(3)]

    assert [reply.status_code for reply in replies] == [200, 200, 200]


def test_a_cache_that_cannot_be_reached_lets_requests_through(alice, api, settings, rates, caplog):
    # given: nothing listens on port 1
    rates(user="1/minute")
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                                   "LOCATION": "redis://127.0.0.1:1/0",
                                   "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1}}}

    # when
    replies = [api(alice).get("/api/v1/me/") for _ in range(2)]

    # then
    assert [reply.status_code for reply in replies] == [200, 200]
    assert "the cache cannot be reached" in caplog.text


def test_a_rate_that_is_not_one_fails_at_startup_not_at_the_first_request(tmp_path):
    done = subprocess.run([sys.executable, "-c", "import imchat.settings"], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[2], timeout=60,
                          env={"IM_API_SEND_RATE": "lots/second", "IM_VAR_DIR": str(tmp_path), "PATH": "/usr/bin:/bin",
                               "DJANGO_DEBUG": "1"})

    assert done.returncode != 0
    assert "IM_API_SEND_RATE must look like 10/minute" in done.stderr
