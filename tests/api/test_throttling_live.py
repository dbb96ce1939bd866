"""Rate limits across processes: two real daphne processes sharing Redis (REDIS_URL) count together."""

import secrets
import tempfile
from collections.abc import Iterator

import httpx
import pytest
import redis

from tests.e2e.harness import WAIT_SECONDS, Site, base_env
from tests.services import REDIS_URL, require_redis

pytestmark = [pytest.mark.e2e, pytest.mark.redis]

PASSWORD = "correct-horse-battery-9"


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    """SQLite, Redis under a prefix of its own, two processes; small limits."""
    require_redis()
    prefix = f"imchat_throttle_{secrets.token_hex(6)}"
    try:
        with tempfile.TemporaryDirectory(prefix="imchat-throttle-") as var_dir:
            site = Site(env=base_env(var_dir, REDIS_URL=REDIS_URL, IM_REDIS_PREFIX=prefix,
                                     IM_LOGIN_FREE_FAILURES="3", IM_API_SEND_RATE="5/minute"))
            site.migrate()
            try:
                site.start(2)
                yield site
            finally:
                site.stop()
    finally:
        store = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
        keys = list(store.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            store.delete(*keys)
        store.close()


def post(site: Site, server: int, path: str, body: dict, token: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.post(site.servers[server].http_url + path, json=body, headers=headers, timeout=WAIT_SECONDS,
                      trust_env=False)


def test_failed_logins_on_either_process_count_toward_one_backoff(site):
    # given: three wrong passwords, over both processes
    site.createimuser("dora", "--password", PASSWORD)
    for server in (0, 1, 0):
        assert post(site, server, "/login", {"username": "dora", "password": "wrong"}).json()["code"] == 0

    # when: the right password at once, on each process
    refused = [post(site, server, "/login", {"username": "dora", "password": PASSWORD}) for server in (1, 0)]

    # then
    for reply in refused:
        assert reply.status_code == 200 and reply.headers["Retry-After"] == "1"
        assert reply.json() == {"code": 0, "msg": "too many failed logins for this username, try again in 1 s",
                                "result": None}


def test_rest_sends_on_either_process_count_toward_one_rate(site):
    # given: a sender and a receiver
    sender, receiver = site.users(2)

    def send(server: int, text: str) -> httpx.Response:
        return post(site, server, "/api/v1/messages/",
                    {"to_uid": receiver.id, "chat_type": 1, "msg_type": 1, "msg": text}, token=sender.token)

    # when: five a minute allowed; three on one process, two on the other, then one more on each
    allowed = [send(server, f"m{n}") for n, server in enumerate((0, 0, 0, 1, 1))]
    refused = [send(server, "one too many") for server in (0, 1)]

    # then
    assert [reply.status_code for reply in allowed] == [201] * 5
    for reply in refused:
        assert reply.status_code == 429 and reply.json()["code"] == -429
        assert int(reply.headers["Retry-After"]) == reply.json()["result"]["retry_after"] >= 1
