"""`manage.py imbench` end to end: its own daphne on SQLite + the in-memory layer, short runs, one JSON line.

Figures are checked for presence and consistency, never for speed.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e]

ROOT = Path(__file__).resolve().parents[2]
# What would point the benchmark at shared services or change its server's settings.
SCRUBBED = ("DATABASE_URL", "REDIS_URL", "IM_REDIS_PREFIX", "IM_VAR_DIR", "IM_PORT", "DJANGO_SETTINGS_MODULE")
SHORT = ["--duration", "1", "--warmup", "0.5", "--drain", "3", "--json", "--quiet"]


def imbench(*args: str) -> dict:
    """Run the command in a clean environment (throwaway SQLite, in-memory layer); its one JSON line."""
    env = {name: value for name, value in os.environ.items() if name not in SCRUBBED}
    done = subprocess.run([sys.executable, str(ROOT / "manage.py"), "imbench", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1, done.stdout
    result = json.loads(lines[0])
    assert result["tool"] == "imbench"
    assert result["config"]["database"] == "sqlite" and result["config"]["layer"] == "in-memory"
    return result


def test_a_short_private_run_reports_every_figure_and_loses_nothing():
    # when two pairs chat for a second
    result = imbench("--pairs", "2", "--baseline", "none", *SHORT)

    # then every figure is there, and nothing was lost or duplicated
    ours = result["imchat"]
    assert result["mode"] == "private"
    assert result["baseline"] is None and result["ratio"] is None
    for name in ("delivered_per_s", "messages_per_s", "sent", "acked", "delivered", "lost", "duplicates", "errors",
                 "latency_ms", "ack_ms", "server"):
        assert name in ours, name
    for name in ("p50", "p90", "p99", "max"):
        assert ours["latency_ms"][name] >= 0 and ours["ack_ms"][name] >= 0
    assert ours["sockets"] == 4
    assert ours["sent"] > 0 and ours["acked"] == ours["sent"] and ours["delivered"] == ours["acked"]
    assert ours["lost"] == 0 and ours["duplicates"] == 0 and ours["errors"] == 0
    assert result["lost"] == 0 and result["duplicates"] == 0
    assert {"cpu_pct", "rss_mb"} <= set(ours["server"])
    # and where a batch's time went: the database thread, the hops to it and back (SQLite stores row
    # by row: there is no one statement to time)
    assert ours["server"]["messages_per_batch"] >= 1
    batch = ours["server"]["batch_ms"]
    assert batch["database_thread"] > 0 and batch["hops"] > 0 and batch["store"] is None, batch


def test_service_with_answers_is_given_as_a_ratio_of_private_chat_with_as_many_senders():
    # when 4 consumers write to 2 agents who answer, after 2 private pairs as the baseline
    result = imbench("--mode", "service", "--consumers", "4", "--agents", "2", "--replies",
                     "--baseline", "private", *SHORT)

    # then the baseline is our own private chat with 4 senders, and the ratios are service / private
    ours, baseline = result["imchat"], result["baseline"]
    assert result["config"]["baseline"] == "private"
    assert baseline["target"] == "private" and baseline["mode"] == "private" and baseline["senders"] == 4
    assert ours["mode"] == "service" and ours["senders"] == 4 and ours["sockets"] == 6
    assert baseline["delivered_per_s"] > 0 and ours["delivered_per_s"] > 0
    assert result["ratio"]["delivered_per_s"] == round(ours["delivered_per_s"] / baseline["delivered_per_s"], 2)
    for figures in (ours, baseline):
        assert figures["server"]["cpu_us_per_delivery"] > 0
    # and every consumer message delivered before the stop was answered, each answer reaching its consumer
    questions = ours["sent"] - ours["answers"]
    assert ours["answers"] > 0 and 0 <= questions - ours["answers"] <= 4
    assert ours["delivered"] == ours["sent"] and ours["lost"] == 0 and ours["errors"] == 0


def test_connect_opens_every_socket_on_both_servers_and_gives_the_ratios():
    # when 30 users in 3 groups each (3 of them agents) open their sockets, naive server first
    result = imbench("--connect", "30", "--concurrency", "10", "--json", "--quiet")

    # then both servers had every socket ready, with the rate, the times and the CPU per socket
    assert result["mode"] == "connect" and result["config"]["baseline"] == "naive"
    for figures in (result["baseline"], result["imchat"]):
        connect = figures["connect"]
        assert connect["sockets"] == 30 and connect["failed_to_open"] == 0 and connect["concurrency"] == 10
        assert connect["alive"] == 30
        assert connect["ready_per_s"] > 0 and connect["ready_ms"]["count"] == connect["measured"]
        assert 0 <= connect["ready_ms"]["p50"] <= connect["ready_ms"]["p99"]
        assert figures["server"]["cpu_us_per_socket"] > 0
    assert result["ready_per_s"] == result["imchat"]["connect"]["ready_per_s"]
    assert {"connect.ready_per_s", "connect.ready_ms.p50", "connect.ready_ms.p99",
            "server.cpu_us_per_socket"} <= set(result["ratio"])


def test_ours_on_uvicorn_is_given_as_a_ratio_of_ours_on_daphne_under_the_same_load():
    # when two pairs chat on our server under uvicorn, after the same on daphne as the baseline
    result = imbench("--pairs", "2", "--server", "uvicorn", "--baseline", "daphne", *SHORT)

    # then both delivered everything they acked, and the ratios are uvicorn / daphne
    ours, baseline = result["imchat"], result["baseline"]
    assert result["config"]["server"] == "uvicorn" and result["config"]["baseline"] == "daphne"
    assert baseline["target"] == "daphne" and baseline["mode"] == ours["mode"] == "private"
    for figures in (ours, baseline):
        assert figures["sockets"] == 4 and figures["sent"] > 0
        assert figures["delivered"] == figures["acked"] == figures["sent"]
        assert figures["lost"] == 0 and figures["errors"] == 0 and figures["closed_sockets"] == 0
        assert figures["server_log"]["errors"] == 0 and figures["server_log"]["tracebacks"] == 0
    assert result["ratio"]["delivered_per_s"] == round(ours["delivered_per_s"] / baseline["delivered_per_s"], 2)
