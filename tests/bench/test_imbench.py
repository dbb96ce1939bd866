"""`manage.py imbench` end to end: its own daphne on SQLite + the in-memory layer, a short run, one JSON line."""

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


def test_a_short_private_run_reports_every_figure_and_loses_nothing():
    # given a clean environment: SQLite in a throwaway directory, the in-memory layer
    env = {name: value for name, value in os.environ.items() if name not in SCRUBBED}

    # when two pairs chat for two seconds
    done = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "imbench", "--pairs", "2", "--duration", "2", "--warmup", "1",
         "--drain", "3", "--baseline", "none", "--json", "--quiet"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )

    # then stdout is exactly one JSON line with the figures, and nothing was lost or duplicated
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1, done.stdout
    result = json.loads(lines[0])
    ours = result["imchat"]
    assert result["tool"] == "imbench" and result["mode"] == "private"
    assert result["config"]["database"] == "sqlite" and result["config"]["layer"] == "in-memory"
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
