"""`imbench --targets`: each target read from its scenario (bench/targets.py), met or not.

The scenarios themselves are imbench runs, tested end to end in test_imbench.py; here `run` hands
back the figures a run reports, so every row's reading is checked, the misses included.
"""

import pytest

from bench import targets
from bench.run import Config


def figures(**values) -> dict:
    """What one imbench run reports for the servers it measured (report.summarize's shape)."""
    return {"delivered_per_s": values.get("rate"), "lost": values.get("lost", 0), "duplicates": 0,
            "latency_ms": {"p99": values.get("p99")}, "fanout_ms": {"p99": values.get("fanout")},
            "idle": {"rss_per_socket_kb": values.get("kb")}, "server": {"cpu_us_per_delivery": values.get("cpu")}}


RUNS = {  # scenario -> (ours, the baseline's)
    "private": (figures(rate=5000.0, cpu=140.0), figures(rate=400.0, cpu=2000.0)),
    "group 100": (figures(rate=90000.0, fanout=230.0), figures(rate=5000.0, fanout=1800.0)),
    "group 500": (figures(rate=20000.0, fanout=120.0), figures(rate=4000.0, fanout=180.0)),
    "2,000 msgs/s": (figures(rate=2000.0, p99=9.0), None),
    "idle": (figures(kb=31.0), figures(kb=38.0)),
    # rounds of the runs compared with each other: (ours, the baseline's) in each round
    "one process": [(figures(rate=6000.0, cpu=130.0), None), (figures(rate=6000.0, cpu=100.0), None),
                    (figures(rate=6000.0, cpu=120.0), None)],
    "two processes": [(figures(rate=6000.0, cpu=150.0, lost=1), None), (figures(rate=6000.0, cpu=150.0), None),
                      (figures(rate=6000.0, cpu=132.0), None)],
    "two processes, pairs together": [(figures(rate=8000.0, cpu=120.0), None), (figures(rate=8000.0, cpu=95.0), None),
                                      (figures(rate=8000.0, cpu=130.0), None)],
    "service": [(figures(rate=4500.0), figures(rate=6000.0))] * 3,
}


@pytest.fixture
def result(monkeypatch) -> dict:
    seen = []

    def run(config: Config) -> dict:
        name = next(name for name, options in targets.SCENARIOS.items()
                    if all(getattr(config, key) == value for key, value in {**targets.COMMON, **options}.items()))
        runs = RUNS[name] if isinstance(RUNS[name], list) else [RUNS[name]]
        ours, baseline = runs[seen.count(name)]
        seen.append(name)
        return {"imchat": ours, "baseline": baseline, "lost": ours["lost"], "duplicates": 0, "_latencies": {}}

    monkeypatch.setattr(targets, "run", run)
    outcome = targets.run_targets(Config(progress=False))
    # every scenario in order, then the compared runs in rounds
    assert seen == list(targets.SCENARIOS) + list(targets.REPEATED) * (targets.ROUNDS - 1)
    return {row["target"]: row for row in outcome["targets"]} | {"table": targets.table(outcome)}


def test_each_target_is_read_from_its_scenario_as_a_figure_or_a_ratio(result):
    assert result["private, 100 pairs: delivered msgs/s"] == {
        "target": "private, 100 pairs: delivered msgs/s", "baseline": 400.0, "imchat": 5000.0, "ratio": 12.5,
        "goal": ">= 10x naive", "met": True}
    assert result["private: server CPU µs per delivery"]["met"]
    assert result["idle socket: RSS KB"]["met"]
    # two processes against one process's own figure in the same round, not a baseline: the
    # median of 150 / 130, 150 / 100 and 132 / 120, though each round's one process moved
    two = result["two processes, every message across Redis: CPU µs per delivery"]
    assert (two["rounds"], two["ratio"], two["met"]) == ([1.15, 1.5, 1.1], 1.15, True)
    assert (two["baseline"], two["imchat"]) == (120.0, 150.0)  # the medians of each, for the table
    assert "1.15 (1.15, 1.50, 1.10)" in result["table"]


def test_the_control_is_read_in_the_same_rounds_and_has_no_goal(result):
    # two processes with each pair on one process, against the same round's one process:
    # 120 / 130, 95 / 100 and 130 / 120
    control = result["control: two processes, each pair on one process (nothing crosses Redis)"]
    assert (control["rounds"], control["ratio"], control["goal"], control["met"]) == ([0.92, 0.95, 1.08], 0.95, "-",
                                                                                       None)
    line = next(line for line in result["table"].splitlines() if line.startswith("control:"))
    assert line.split()[-2:] == ["-", "-"] and "0.95 (0.92, 0.95, 1.08)" in line


def test_a_missed_target_and_a_lost_message_say_so(result):
    assert not result["group of 500, one sender: time to last delivery p99 ms"]["met"]  # 120 ms, goal < 100
    assert not result["customer service (guide): delivered msgs/s"]["met"]  # 0.75x private
    assert result["nothing lost or duplicated, every run"] == {
        "target": "nothing lost or duplicated, every run", "baseline": None, "imchat": 1, "ratio": None, "goal": "0",
        "met": False}
    assert result["table"].endswith("7 of 10 targets met\n")  # the control is no target
    assert "group of 500, one sender: time to last delivery p99 ms" in result["table"]
