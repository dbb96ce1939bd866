"""Issue 18's targets in one run: `manage.py imbench --targets`.

Runs each scenario the targets are read from, each with the baseline it is compared with measured
just before it (as `imbench` always does), then prints one table: the figure, the baseline's, ours,
the ratio, the goal and whether it was met; and one JSON line with every scenario's full result.
About fourteen minutes; PostgreSQL and Redis from DATABASE_URL / REDIS_URL, as for any imbench run.

The targets that compare two runs of ours (two processes / one, customer service / private chat)
are read over ROUNDS rounds of those runs, one after the other (one process, two processes, the
control below, service; again), as the median of the rounds' ratios: on a shared machine the speed
drifts by up to 20 % between runs minutes apart, more than those targets' margins. Every round is
in the JSON.

A control runs in the same rounds: two processes with both users of each pair on one process, so
that nothing crosses Redis. Its row has no goal; set beside the two-process target, it tells what
crossing Redis costs from what two processes on this machine's shared cores cost.
"""

import gc
import os
import statistics
from collections.abc import Callable
from dataclasses import dataclass, replace

from bench import report
from bench.run import Config, run

# What every scenario starts from (the command's other options, --duration and the like, apply).
COMMON = {"rate": None, "processes": 1, "window": 1, "senders": None, "idle": 0, "pairs_together": False}
# The scenarios, as imbench options; "one" and "two" put both servers' processes on the same cores.
SCENARIOS: dict[str, dict] = {
    "private": {"mode": "private", "pairs": 100, "baseline": "naive"},
    "group 100": {"mode": "group", "group_size": 100, "baseline": "naive"},
    "group 500": {"mode": "group", "group_size": 500, "senders": 1, "baseline": "naive"},
    "2,000 msgs/s": {"mode": "private", "pairs": 100, "rate": 2000.0, "baseline": "none"},
    "idle": {"mode": "idle", "idle": 2000, "baseline": "naive"},
    "one process": {"mode": "private", "pairs": 100, "baseline": "none", "server_cpus": "0,1", "client_cpus": "none"},
    "two processes": {"mode": "private", "pairs": 100, "baseline": "none", "processes": 2, "server_cpus": "0,1",
                      "client_cpus": "none"},
    "two processes, pairs together": {"mode": "private", "pairs": 100, "baseline": "none", "processes": 2,
                                      "server_cpus": "0,1", "client_cpus": "none", "pairs_together": True},
    "service": {"mode": "service", "consumers": 100, "agents": 4, "baseline": "private"},
}
# Run in rounds (see the module's docstring).
REPEATED = ("one process", "two processes", "two processes, pairs together", "service")
ROUNDS = 3


@dataclass(frozen=True)
class Target:
    label: str
    scenario: str
    path: tuple[str, ...]  # the figure in the scenario's result (report.RATIO_FIGURES' paths)
    goal: str
    met: Callable[[float], bool] | None  # None: a control, read beside a target, with no goal of its own
    as_ratio: bool = False  # compared as ours / the baseline's
    against: str | None = None  # as_ratio against another scenario's own figure, not its baseline


TARGETS = [
    Target("private, 100 pairs: delivered msgs/s", "private", ("delivered_per_s",), ">= 10x naive",
           lambda x: x >= 10, as_ratio=True),
    Target("private: server CPU µs per delivery", "private", ("server", "cpu_us_per_delivery"), "<= 350",
           lambda x: x <= 350),
    Target("group of 100 all sending: deliveries/s", "group 100", ("delivered_per_s",), ">= 5x naive",
           lambda x: x >= 5, as_ratio=True),
    Target("group of 100: time to last delivery p99 ms", "group 100", ("fanout_ms", "p99"), "< 250",
           lambda x: x < 250),
    Target("group of 500, one sender: time to last delivery p99 ms", "group 500", ("fanout_ms", "p99"), "< 100",
           lambda x: x < 100),
    Target("2,000 msgs/s offered, private: send->deliver p99 ms", "2,000 msgs/s", ("latency_ms", "p99"), "< 50",
           lambda x: x < 50),
    Target("idle socket: RSS KB", "idle", ("idle", "rss_per_socket_kb"), "<= 35", lambda x: x <= 35),
    Target("two processes, every message across Redis: CPU µs per delivery", "two processes",
           ("server", "cpu_us_per_delivery"), "<= 1.2x one process", lambda x: x <= 1.2, as_ratio=True,
           against="one process"),
    Target("control: two processes, each pair on one process (nothing crosses Redis)", "two processes, pairs together",
           ("server", "cpu_us_per_delivery"), "-", None, as_ratio=True, against="one process"),
    Target("customer service (guide): delivered msgs/s", "service", ("delivered_per_s",), ">= 0.8x private",
           lambda x: x >= 0.8, as_ratio=True),
]


def run_targets(base: Config) -> dict:
    """Every scenario, then the targets read from them."""
    affinity = os.sched_getaffinity(0)  # each run pins this process where its options say: start alike
    two_cores = len(affinity) >= 2
    rounds: dict[str, list[dict]] = {}
    order = list(SCENARIOS) + [name for _ in range(ROUNDS - 1) for name in REPEATED]
    for name in order:
        options = SCENARIOS[name]
        if not two_cores:  # one core: nothing to pin
            options = {key: value for key, value in options.items() if not key.endswith("_cpus")}
        os.sched_setaffinity(0, affinity)
        # The load generator is this process: what earlier scenarios left (a group run tracks a
        # million deliveries) must not cost a collection in the middle of a later one's latencies.
        gc.collect()
        gc.freeze()
        result = run(replace(base, **{**COMMON, **options}))
        result.pop("_latencies")
        rounds.setdefault(name, []).append(result)
    os.sched_setaffinity(0, affinity)
    rows = [_row(target, rounds) for target in TARGETS]
    every_run = [result for results in rounds.values() for result in results]
    rows.append({"target": "nothing lost or duplicated, every run", "baseline": None,
                 "imchat": sum((result["lost"] or 0) + (result["duplicates"] or 0) for result in every_run),
                 "ratio": None, "goal": "0",
                 "met": all(not result["lost"] and not result["duplicates"] for result in every_run)})
    runs = {name if number == 0 else f"{name}, round {number + 1}": result
            for name, results in rounds.items() for number, result in enumerate(results)}
    return {"tool": "imbench", "mode": "targets", "targets": rows, "runs": runs}


def _row(target: Target, rounds: dict[str, list[dict]]) -> dict:
    """The target's figure; over several rounds, the median of each (ratios: of the rounds' ratios)."""
    readings = []
    for number, result in enumerate(rounds[target.scenario]):
        ours = report.figure(result["imchat"], target.path)
        if target.against:
            theirs = report.figure(rounds[target.against][number]["imchat"], target.path)
        else:
            theirs = report.figure(result.get("baseline"), target.path)
        readings.append((ours, theirs, ours / theirs if ours is not None and theirs else None))
    row = {"target": target.label, "goal": target.goal}
    for key, values in zip(("imchat", "baseline", "ratio"), zip(*readings)):
        known = [value for value in values if value is not None]
        row[key] = round(statistics.median(known), 2) if len(known) == len(values) else None
    value = row["ratio"] if target.as_ratio else row["imchat"]
    row["met"] = None if target.met is None else value is not None and target.met(value)
    if len(readings) > 1:
        row["rounds"] = [round(ratio, 2) if target.as_ratio and ratio is not None else ours
                         for ours, _, ratio in readings]
    return {key: row[key] for key in ("target", "baseline", "imchat", "ratio", "goal", "met", "rounds") if key in row}


def table(result: dict) -> str:
    rows = [("target", "baseline", "imchat", "x baseline", "goal", "met")]
    rows += [(row["target"], report.cell(row["baseline"]), report.cell(row["imchat"]), _ratio_cell(row),
              row["goal"], {True: "yes", False: "NO", None: "-"}[row["met"]]) for row in result["targets"]]
    goals = [row["met"] for row in result["targets"] if row["met"] is not None]
    return "\n".join(report.aligned(rows)) + f"\n{sum(goals)} of {len(goals)} targets met\n"


def _ratio_cell(row: dict) -> str:
    """The ratio; over rounds, the median of those listed after it."""
    cell = report.cell(row["ratio"])
    if "rounds" in row:
        cell += f" ({', '.join(report.cell(value) for value in row['rounds'])})"
    return cell
