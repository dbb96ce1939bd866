"""Faults under load (bench/faults.py) in CI: Redis restarted, a daphne killed, PostgreSQL refusing, a
rolling restart (SIGTERM, one process at a time), and a Sentinel failover.

50 clients chat through two daphne processes on a fresh PostgreSQL database and a redis-server of
the run's own (the Sentinel failover: a master, its replica and two Sentinels of the run's own); after
each fault every acked message reached its recipient exactly once and no client_msg_id is stored
twice, and an outage of Redis or PostgreSQL is a few log lines (it went, it came back), not a
traceback per request. Each run is bounded (about a minute and a half, and half a minute; it stops by itself,
everything it started is stopped and its database dropped); each fault is one test of the counts it
printed.
"""

import asyncio
import shutil

import pytest

from bench import faults
from tests.services import missing, require_postgres

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.redis]

RUN_SECONDS = 170


def fault_run(faults_to_run: tuple[str, ...]) -> dict:
    require_postgres()
    if not shutil.which(faults.REDIS_SERVER):
        missing("redis-server", "the fault run starts a Redis (and Sentinels) of its own; install redis-server")
    options = faults.Options(faults=faults_to_run, progress=False, limit=RUN_SECONDS)
    results, anomalies, logs = asyncio.run(faults.run(options))
    for counts in results:
        print(counts.line())
    return {"counts": {counts.fault: counts for counts in results}, "anomalies": anomalies, "logs": logs}


@pytest.fixture(scope="module")
def report() -> dict:
    return fault_run(faults.ONE_REDIS_FAULTS)


@pytest.fixture(scope="module")
def sentinel_report() -> dict:
    return fault_run(("sentinel",))


@pytest.fixture(params=faults.FAULTS)
def counts(request) -> "faults.Counts":
    run = request.getfixturevalue("sentinel_report" if request.param == "sentinel" else "report")
    return run["counts"][request.param]


def test_after_the_fault_every_acked_message_reached_its_recipient_exactly_once(counts):
    assert counts.sent > 100, counts.line()
    assert counts.unacked == 0 and counts.acked == counts.sent, counts.line()
    assert counts.lost == 0, counts.line()
    assert counts.duplicates == 0, counts.line()
    assert counts.stored_twice == 0 and counts.stored_unacked == 0, counts.line()
    assert counts.seq_gaps == 0, counts.line()


def test_the_fault_really_happened_to_the_clients(report, sentinel_report):
    counts = {**report["counts"], **sentinel_report["counts"]}

    assert counts["daphne"].closed_sockets >= 20, counts["daphne"].line()  # half the clients were on it
    assert counts["postgres"].server_faults > 0, counts["postgres"].line()  # -500, then resent
    assert counts["redis"].delivered_live < counts["redis"].delivered, counts["redis"].line()  # some by sync only
    old, new = counts["sentinel"].master_moved.split("->")
    assert old != new, counts["sentinel"].line()


def test_a_rolling_restart_closes_every_socket_with_4012_and_each_process_exits_0(report):
    counts = report["counts"]["restart"]
    closes = dict(item.split(":") for item in counts.server_closes.split(","))
    exits = [item.split("/")[0] for item in counts.exit_codes.split(",")]

    assert list(closes) == ["4012"] and int(closes["4012"]) >= 50, counts.line()  # 25, then all 50 on the other
    assert exits == ["0", "0"], counts.line()
    assert counts.closed_sockets == int(closes["4012"]), counts.line()


def test_presence_and_live_pushes_recover_after_the_fault(counts):
    live, connected = map(int, counts.presence.split("/"))
    pushed, after = map(int, counts.live_after_recovery.split("/"))

    assert live == connected == 50, counts.line()
    assert after > 0 and pushed >= 0.95 * after, counts.line()


def test_nothing_arrived_that_was_not_sent_and_no_ack_changed(report, sentinel_report):
    assert report["anomalies"] == [] and sentinel_report["anomalies"] == []


@pytest.mark.parametrize("fault", ["redis", "postgres"])
def test_an_outage_is_a_few_log_lines_and_counted_in_the_metrics(report, fault):
    counts = report["counts"][fault]
    written = "\n".join(report["logs"][fault])

    # before: 500-800 tracebacks per outage; now each process says it went and came back
    assert counts.server_tracebacks == 0, written
    assert counts.server_log_lines <= 5 * 2, written  # two processes
    assert "unavailable" in written and " back after " in written, written
    assert counts.outages_counted >= 1, counts.line()
