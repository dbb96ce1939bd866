"""Metrics and logs of real daphne processes (PostgreSQL, Redis, two processes), as an operator reads them.

Each process serves its own `/metrics` to the scraper's token only (here IM_METRICS_NETWORKS is empty:
the token is the only way in); its counts go up with the traffic it serves; the queue gauge reads the
database. With LOG_FORMAT=json every line a process writes is one JSON object, and the lines logged
for a request or a socket carry its id (the proxy's X-Request-ID when it sends one).
"""

import json
import secrets
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.harness import Client, Server, Site, postgres_redis_deployment, run, send_msg_frame

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.redis]

TOKEN = secrets.token_hex(24)


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    with postgres_redis_deployment(2, LOG_FORMAT="json", LOG_LEVEL="INFO", IM_METRICS_TOKEN=TOKEN,
                                   IM_METRICS_NETWORKS="") as site:
        yield site


def scrape(server: Server, token: str | None = TOKEN, **headers: str) -> httpx.Response:
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    # A scraper asks by address: the Host is not one of ALLOWED_HOSTS.
    return httpx.get(server.http_url + "/metrics", headers={"Host": "10.1.2.3:9601", **headers}, timeout=10,
                     trust_env=False)


def samples(server: Server) -> dict[tuple[str, tuple], float]:
    response = scrape(server)
    assert response.status_code == 200, response.text
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(response.text) for sample in family.samples}


def value(figures: dict, name: str, **labels: str) -> float:
    return figures.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_are_refused_without_the_token(site: Site):
    server = site.servers[0]

    assert scrape(server, token=None).status_code == 403
    assert scrape(server, token="wrong" + TOKEN).status_code == 403
    assert scrape(server, token=None, **{"X-Forwarded-For": "127.0.0.1"}).status_code == 403
    refused = scrape(server, token=None)
    assert "imchat_" not in refused.text and refused.headers["Cache-Control"] == "no-store"


def test_each_process_counts_the_sockets_frames_messages_and_pushes_it_serves(site: Site):
    first, second = site.servers
    alice, bob = site.users(2)
    before = [samples(first), samples(second)]

    async def chat() -> list[dict]:
        async with await Client.as_user(first, alice) as a, await Client.as_user(second, bob) as b:
            for index in range(5):
                await a.send(send_msg_frame(bob.id, f"hello {index}", client_msg_id=f"obs-{index}"))
                assert (await a.reply())["code"] == 1
                await b.expect_code(200)
            during = [samples(first), samples(second)]
            await a.send({"class": "chat", "action": "noSuchThing"})
            assert (await a.reply())["code"] == 0
        return during

    during = run(chat())
    after = samples(first)

    assert value(during[0], "imchat_sockets_open") == value(before[0], "imchat_sockets_open") + 1
    assert value(during[1], "imchat_sockets_open") == value(before[1], "imchat_sockets_open") + 1
    grew = {name: value(after, name, **labels) - value(before[0], name, **labels) for name, labels in [
        ("imchat_messages_total", {"kind": "private"}), ("imchat_frames_total", {"kind": "chat.sendmsg"}),
        ("imchat_frames_total", {"kind": "ping"}), ("imchat_frames_total", {"kind": "unknown"}),
        ("imchat_errors_total", {"code": "0"}), ("imchat_send_batch_size_sum", {}),
        ("imchat_send_batch_seconds_count", {}), ("imchat_send_batch_hops_seconds_count", {}),
        ("imchat_store_seconds_count", {}), ("imchat_push_seconds_count", {}), ("imchat_pushes_total", {}),
        ("imchat_sockets_opened_total", {})]}
    assert grew["imchat_messages_total"] == 5, grew
    assert grew["imchat_send_batch_size_sum"] == 5, grew
    assert grew["imchat_sockets_opened_total"] == 1, grew
    assert grew["imchat_errors_total"] == 1, grew
    assert 1 <= grew["imchat_send_batch_seconds_count"] <= 5, grew
    assert grew["imchat_send_batch_hops_seconds_count"] == grew["imchat_send_batch_seconds_count"], grew
    # One store statement a batch, and one more for the first message of a conversation (opened, then stored)
    batches = grew["imchat_send_batch_seconds_count"]
    assert batches <= grew["imchat_store_seconds_count"] <= 2 * batches, grew
    assert grew["imchat_push_seconds_count"] >= 5 and grew["imchat_pushes_total"] >= 10, grew  # 200 + 307
    assert value(after, "imchat_dependency_up", dependency="redis") == 1
    assert value(after, "imchat_dependency_up", dependency="database") == 1
    assert value(after, "process_resident_memory_bytes") > 0


def test_the_queue_gauge_reads_the_queued_sessions_of_each_shop(site: Site):
    owner, consumer = site.users(2)
    shop_id = int(site.manage("createshop", f"obs{secrets.token_hex(3)}", "--owner", owner.name).strip()
                  .splitlines()[-1])

    async def ask() -> None:
        async with await Client.as_user(site.servers[1], consumer) as client:
            await client.send(send_msg_frame(shop_id, "anyone there?", chat_type=4))
            assert (await client.reply())["code"] == 1

    run(ask())
    figures = samples(site.servers[0])  # the other process reads the same database

    assert value(figures, "imchat_queue_length", shop_id=str(shop_id)) == 1
    assert value(figures, "imchat_queue_length_all") >= 1
    assert value(figures, "imchat_queue_oldest_seconds", shop_id=str(shop_id)) >= 0
    assert ("imchat_webhook_backlog", ()) in figures


def test_with_log_format_json_every_line_is_json_and_carries_its_request_or_socket_id(site: Site):
    server = site.servers[0]
    [user] = site.users(1)
    missing = httpx.get(server.http_url + "/no-such-page/", headers={"X-Request-ID": "req-e2e-42"}, timeout=10,
                        trust_env=False)

    async def open_socket() -> None:
        async with await Client.as_user(server, user, additional_headers={"X-Request-ID": "sock-e2e-7"}):
            pass

    run(open_socket())
    lines = [line for line in server.log_path.read_text().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # fails on any line that is not JSON

    assert missing.status_code == 404 and missing.headers["X-Request-ID"] == "req-e2e-42"
    assert {"timestamp", "level", "logger", "message"} <= set(records[0])
    assert any(record["logger"] == "django.request" and record.get("request_id") == "req-e2e-42"
               for record in records), lines[-20:]
    assert any(record["message"] == f"socket opened: user {user.id}, 2 push groups"
               and record.get("socket_id") == "sock-e2e-7" for record in records), lines[-20:]
    assert any(record["logger"] == "daphne.access" for record in records)  # the access log too
