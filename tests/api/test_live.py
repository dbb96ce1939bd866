"""The API on a real daphne: schemathesis against the served schema, HTTP sends reaching real sockets,
and webhooks delivered by the server's own periodic job to a receiver on 127.0.0.1."""

import json
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.api.receiver import Receiver, webhook_receiver
from tests.e2e.harness import BIN, WAIT_SECONDS, Client, Site, base_env, run

pytestmark = pytest.mark.e2e

MALL_KEY = "live-mall-key-" + "k" * 24
WEBHOOK_SECRET = "live-webhook-secret-0123456789"
# Bounded: the coverage phase (every operation's boundary and wrong-type inputs) takes ~25 s here,
# then fuzzing fills the budget; the subprocess is killed (and the test fails) past SCHEMATHESIS_SECONDS.
SCHEMATHESIS_EXAMPLES = 15
SCHEMATHESIS_BUDGET = 35
SCHEMATHESIS_SECONDS = 90
# Rate limits high enough that fuzzing reaches the endpoints instead of their 429 (the limits have
# tests of their own: test_throttling.py, test_throttling_live.py).
UNTHROTTLED = {name: "100000/minute" for name in ("IM_API_RATE", "IM_API_ANON_RATE", "IM_API_SEND_RATE",
                                                  "IM_UPLOAD_RATE", "IM_LOGIN_RATE", "IM_REPORT_RATE")}

PEOPLE = """
import json
from accounts.services import user_create
from accounts.tokens import token_mint
from customer_service.services import agent_add, shop_create
owner = user_create(username="owner", nickname="Owner", is_staff=True)
owner.is_superuser = True
owner.save(update_fields=["is_superuser"])
agent = user_create(username="agent", nickname="Agent")
shop = shop_create(name="Live Shop", owner=owner)
agent_add(shop=shop, user=agent, status="offline")
people = {name: user_create(username=name, nickname=name.title()) for name in ("alice", "bob", "cora")}
people.update(owner=owner, agent=agent)
print(json.dumps({"shop": shop.pk, **{name: {"id": u.pk, "token": token_mint(user_id=u.pk)}
                                       for name, u in people.items()}}))
"""


@dataclass
class Live:
    site: Site
    receiver: Receiver
    people: dict

    @property
    def url(self) -> str:
        return self.site.servers[0].http_url

    def token(self, name: str) -> str:
        return self.people[name]["token"]

    def uid(self, name: str) -> int:
        return self.people[name]["id"]

    def post(self, name: str, path: str, body: dict) -> httpx.Response:
        return httpx.post(self.url + path, json=body, headers={"Authorization": f"Bearer {self.token(name)}"},
                          timeout=WAIT_SECONDS, trust_env=False)


@pytest.fixture(scope="module")
def live() -> Iterator[Live]:
    with webhook_receiver(secret=WEBHOOK_SECRET) as receiver, tempfile.TemporaryDirectory(prefix="imchat-api-") as var_dir:
        site = Site(env=base_env(var_dir, IM_MALL_API_KEY=MALL_KEY, IM_WEBHOOK_URL=receiver.url,
                                 IM_WEBHOOK_EVENTS="session.created,message.unattended",
                                 IM_WEBHOOK_SECRET=WEBHOOK_SECRET, IM_WEBHOOK_POLL_SECONDS="1", **UNTHROTTLED))
        site.migrate()
        people = json.loads(site.manage("shell", "-c", PEOPLE).strip().splitlines()[-1])
        try:
            site.start(1)
            yield Live(site, receiver, people)
        finally:
            site.stop()


def test_a_message_sent_over_http_reaches_the_receivers_socket(live):
    async def scenario():
        bob = await Client.open(live.site.servers[0].socket_url(live.token("bob")), label="bob")
        await bob.ready()
        sent = live.post("alice", "/api/v1/messages/", {"to_uid": live.uid("bob"), "chat_type": 1, "msg_type": 1,
                                                         "msg": "over http"})
        assert sent.status_code == 201, sent.text
        push = await bob.expect_code(200)
        await bob.close()
        return sent.json()["result"], push["result"]

    reply, pushed = run(scenario())
    assert (pushed["msg"], pushed["msg_id"], pushed["seq"], pushed["from_uid"]) == (
        "over http", reply["msg_id"], reply["seq"], live.uid("alice"))


def test_the_server_delivers_webhooks_by_itself_signed(live):
    async def scenario():
        # a socket makes the process start its periodic jobs; nobody serves the shop, so cora is queued
        cora = await Client.open(live.site.servers[0].socket_url(live.token("cora")), label="cora")
        await cora.ready()
        sent = live.post("cora", "/api/v1/messages/", {"to_uid": live.people["shop"], "chat_type": 4,
                                                        "msg_type": 1, "msg": "anyone?"})
        assert sent.status_code == 201, sent.text
        await cora.close()
        return sent.json()["result"]

    reply = run(scenario())
    mine = []
    for _ in range(2):
        received = live.receiver.wait_for(len(mine) + 2, timeout=10)
        mine = [r for r in received if r.json["data"].get("chat_id") == reply["chat_id"]]
        if len(mine) >= 2:
            break
    assert [r.json["event"] for r in mine] == ["session.created", "message.unattended"]
    assert mine[1].json["data"]["msg_id"] == reply["msg_id"]
    assert [request.signature_ok for request in mine] == [True, True]  # the documented check, at the receiver


def test_the_mall_endpoint_takes_the_key_over_real_http(live):
    response = httpx.post(live.url + "/api/v1/mall/users/", json={"users": [{"id": 424242, "nickname": "Mall"}]},
                          headers={"X-Imchat-Api-Key": MALL_KEY}, timeout=WAIT_SECONDS, trust_env=False)
    refused = httpx.post(live.url + "/api/v1/mall/users/", json={"users": [{"id": 1}]},
                         headers={"X-Imchat-Api-Key": "guess"}, timeout=WAIT_SECONDS, trust_env=False)

    assert response.json()["result"]["created"] == [424242]
    assert refused.status_code == 401


def test_schemathesis_finds_no_server_error_in_the_served_schema(live):
    command = [
        str(BIN / "st"), "run", live.url + "/api/schema/",
        "--checks", "not_a_server_error",
        "--header", f"Authorization: Bearer {live.token('owner')}",
        "--header", f"X-Imchat-Api-Key: {MALL_KEY}",
        "--phases", "examples,coverage,fuzzing",
        "--max-examples", str(SCHEMATHESIS_EXAMPLES),
        "--max-time", str(SCHEMATHESIS_BUDGET),
        "--seed", "1",
        # one worker: hypothesis' lambda descriptions call ast.parse, which is not thread-safe on 3.11
        "--workers", "1",
        "--request-timeout", "10",
        "--no-color",
    ]
    try:
        # run in the site's temporary directory: schemathesis keeps a cache where it runs
        done = subprocess.run(command, cwd=live.site.env["IM_VAR_DIR"], capture_output=True, text=True,
                              timeout=SCHEMATHESIS_SECONDS, env=live.site.env)
    except subprocess.TimeoutExpired as expired:
        partial = expired.stdout or b""
        partial = partial.decode(errors="replace") if isinstance(partial, bytes) else partial
        pytest.fail(f"schemathesis ran past {SCHEMATHESIS_SECONDS}s:\n{partial[-4000:]}")
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-8000:]
    assert "generated" in output and "passed" in output
    server_log = live.site.servers[0].log_path.read_text(errors="replace")
    assert "Internal Server Error" not in server_log and "Traceback" not in server_log, server_log[-8000:]
