"""`/metrics`: who may read it, what it counts, and the Grafana dashboard's names."""

import json
import re
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from chat import handlers
from chat.protocol import Envelope
from imchat import metrics
from imchat.errors import Code
from tests import factories

DASHBOARD = Path(__file__).resolve().parents[1] / "deploy" / "grafana" / "imchat.json"
TOKEN = "scrape-" + "7f3a9c" * 6
SCRAPER = {"HTTP_HOST": "10.0.0.5:9601"}  # a scraper asks by address, not by one of ALLOWED_HOSTS


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def token(settings):
    settings.IM_METRICS_TOKEN = TOKEN


@pytest.mark.django_db
def test_a_scraper_on_loopback_reads_the_metrics_by_address_without_a_session(client):
    response = client.get("/metrics", **SCRAPER)

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    assert "imchat_sockets_open " in response.content.decode()
    assert "Set-Cookie" not in response.headers and response["Cache-Control"] == "no-store"


@pytest.mark.django_db
def test_from_another_network_or_through_a_proxy_only_the_token_opens_the_metrics(client, token):
    outside = {**SCRAPER, "REMOTE_ADDR": "203.0.113.9"}

    assert client.get("/metrics", **outside).status_code == 403
    assert client.get("/metrics", **SCRAPER, HTTP_X_FORWARDED_FOR="203.0.113.9").status_code == 403  # relayed
    assert client.get("/metrics", **SCRAPER, HTTP_X_REAL_IP="127.0.0.1").status_code == 403
    assert client.get("/metrics", **outside, HTTP_AUTHORIZATION=f"Bearer {TOKEN}x").status_code == 403
    assert client.get("/metrics", **outside, HTTP_AUTHORIZATION=f"Basic {TOKEN}").status_code == 403
    assert client.get("/metrics", **outside, HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 200
    refused = client.get("/metrics", **outside)
    assert b"imchat_" not in refused.content


@pytest.mark.django_db
def test_without_a_token_and_networks_nobody_reads_them_and_they_can_be_turned_off(client, settings):
    settings.IM_METRICS_NETWORKS = []
    assert client.get("/metrics", **SCRAPER).status_code == 403

    settings.IM_METRICS = False
    assert client.get("/metrics").status_code == 404  # an ordinary path again


@pytest.mark.django_db
def test_stored_messages_and_error_replies_are_counted_by_kind_and_code(alice, bob,
                                                                       django_capture_on_commit_callbacks):
    private, errors = sample("imchat_messages_total", kind="private"), sample("imchat_errors_total", code="-404")
    caller = factories.caller_of(alice)

    with django_capture_on_commit_callbacks(execute=True):  # counted once committed
        handlers.run(caller, Envelope("chat", "sendMsg", factories.send_content(bob.pk)))
        handlers.run(caller, Envelope("chat", "sendMsg", factories.send_content(bob.pk)))
    frame, _ = handlers.run(caller, Envelope("chat", "setChatRead", {"chat_id": "1_999999999"}))

    assert frame["code"] == Code.NOT_FOUND
    assert sample("imchat_messages_total", kind="private") == private + 2
    assert sample("imchat_errors_total", code="-404") == errors + 1


def test_frame_kinds_are_the_handler_table_and_nothing_a_client_makes_up():
    assert handlers.FRAME_KINDS[("chat", "sendmsg")] == "chat.sendmsg"
    assert all(re.fullmatch(r"[a-z]+\.[a-z]+", kind) for kind in handlers.FRAME_KINDS.values())


def names_in_output(text: str) -> set[str]:
    """Every sample name the exposition can hold, from its families (labelled ones may have no sample yet)."""
    suffixes = {"counter": ["_total", "_created"], "histogram": ["_bucket", "_count", "_sum", "_created"],
                "gauge": [""], "summary": ["_count", "_sum", "_created"]}
    return {family.name + suffix for family in text_string_to_metric_families(text)
            for suffix in suffixes.get(family.type, [""])}


@pytest.mark.django_db
def test_every_metric_the_grafana_dashboard_names_is_in_the_metrics_output(client):
    dashboard = json.loads(DASHBOARD.read_text())
    expressions = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    named = {name for expr in expressions for name in re.findall(r"\b((?:imchat|process)_[a-z_]+)\b", expr)}
    text = client.get("/metrics", **SCRAPER).content.decode()
    families = {family.name for family in text_string_to_metric_families(text)
                if family.name.startswith("imchat_") and not family.name.endswith("_created")}

    assert len(dashboard["panels"]) >= 10 and len(named) >= 20
    assert named - names_in_output(text) == set()
    assert {family for family in families if not any(name.startswith(family) for name in named)} == set()  # all shown


@pytest.mark.django_db
def test_the_queue_gauges_read_the_database_when_scraped(client):
    exposed = client.get("/metrics", **SCRAPER).content.decode()

    assert "imchat_queue_length_all 0.0" in exposed
    assert "imchat_webhook_backlog 0.0" in exposed


def test_a_database_that_cannot_be_read_leaves_the_queue_gauges_out_of_the_scrape():
    # no django_db: any query raises; the scrape still answers, without those gauges
    assert list(metrics.Backlog().collect()) == []
