"""Figures from a run's observations, ratios to the baseline, the human table, the JSON line, the PNG."""

import math

from bench.fixtures import AGENT_EVERY, GROUPS_EACH
from bench.load import Outcome

# Figures given as a ratio to the baseline: (label in the table, path in the figures dict).
RATIO_FIGURES = [
    ("delivered msgs/s", ("delivered_per_s",)),
    ("messages fully delivered/s", ("messages_per_s",)),
    ("send->deliver p50 ms", ("latency_ms", "p50")),
    ("send->deliver p90 ms", ("latency_ms", "p90")),
    ("send->deliver p99 ms", ("latency_ms", "p99")),
    ("send->deliver max ms", ("latency_ms", "max")),
    ("time to last delivery p50 ms", ("fanout_ms", "p50")),
    ("time to last delivery p99 ms", ("fanout_ms", "p99")),
    ("time to last delivery max ms", ("fanout_ms", "max")),
    ("ack p50 ms", ("ack_ms", "p50")),
    ("ack p90 ms", ("ack_ms", "p90")),
    ("ack p99 ms", ("ack_ms", "p99")),
    ("ack max ms", ("ack_ms", "max")),
    ("server CPU % (100 = 1 core)", ("server", "cpu_pct")),
    ("  of which kernel (system) %", ("server", "cpu_system_pct")),
    ("server CPU us per delivery", ("server", "cpu_us_per_delivery")),
    ("messages stored per batch", ("server", "messages_per_batch")),
    ("batches/s", ("server", "batches_per_s")),
    ("batch: database thread ms", ("server", "batch_ms", "database_thread")),
    ("  of which the store statement ms", ("server", "batch_ms", "store")),
    ("batch: hops to that thread and back ms", ("server", "batch_ms", "hops")),
    ("server RSS MB", ("server", "rss_mb")),
    ("PostgreSQL CPU %", ("server", "db_cpu_pct")),
    ("Redis CPU %", ("server", "redis_cpu_pct")),
    ("load generator CPU %", ("generator_cpu_pct",)),
    ("idle sockets alive", ("idle", "alive")),
    ("idle: RSS per socket KB", ("idle", "rss_per_socket_kb")),
    ("idle: sockets opened/s", ("idle", "connect_per_s")),
    ("connect: sockets ready/s", ("connect", "ready_per_s")),
    ("connect: time to ready p50 ms", ("connect", "ready_ms", "p50")),
    ("connect: time to ready p99 ms", ("connect", "ready_ms", "p99")),
    ("connect: time to ready max ms", ("connect", "ready_ms", "max")),
    ("connect: server CPU us per socket", ("server", "cpu_us_per_socket")),
    ("connect: sockets that failed to open", ("connect", "failed_to_open")),
    ("connect: alive when the last was ready", ("connect", "alive")),
]
COUNT_FIGURES = ["sent", "answers", "acked", "delivered", "lost", "lost_messages", "late", "duplicates", "needed_sync",
                 "unrecovered", "errors", "unanswered", "timed_out", "stray", "closed_sockets"]
# Shown in every mode, without a ratio: a server that logged tracebacks did not do what its figures say.
LOG_FIGURES = [("server log errors", ("server_log", "errors")), ("server log tracebacks", ("server_log", "tracebacks"))]


def percentiles(seconds: list[float]) -> dict | None:
    if not seconds:
        return None
    ordered = sorted(seconds)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))] * 1000, 2)

    return {"p50": at(0.50), "p90": at(0.90), "p99": at(0.99), "max": round(ordered[-1] * 1000, 2),
            "mean": round(sum(ordered) / len(ordered) * 1000, 2), "count": len(ordered)}


def summarize(name: str, outcome: Outcome, server: dict, log_counts: dict) -> dict:
    """The figures of one target (ours or a baseline)."""
    window = outcome.window_seconds or 0
    figures: dict = {"target": name, "mode": outcome.mode, "sockets": outcome.sockets, "senders": outcome.senders}
    traffic = outcome.mode not in ("idle", "connect")
    if traffic:
        figures["delivered_per_s"] = round(outcome.delivered_in_window / window, 1) if window else None
        figures["messages_per_s"] = round(outcome.completed_in_window / window, 1) if window else None
        figures["sent_in_window"] = outcome.sent_in_window
        for name_ in COUNT_FIGURES:
            figures[name_] = getattr(outcome, name_)
        figures["error_codes"] = dict(outcome.error_codes)
        figures["latency_ms"] = percentiles(outcome.latencies)
        figures["ack_ms"] = percentiles(outcome.acks)
        figures["fanout_ms"] = percentiles(outcome.fanout) if outcome.expected_per_msg > 1 else None
        figures["fanout_receivers"] = outcome.expected_per_msg
        figures["other_pushes"] = outcome.other_pushes
        figures["echoes"] = outcome.echoes
        figures["generator_lag_ms"] = round(outcome.generator_lag_ms, 1)
        figures["generator_cpu_pct"] = outcome.generator_cpu_pct
    elif outcome.mode == "idle":
        figures["idle"] = outcome.idle
    else:
        figures["connect"] = {**outcome.connect, "ready_ms": percentiles(outcome.ready)}
    server = dict(server)
    if server.get("cpu_seconds") is not None and traffic and outcome.delivered_in_window:
        server["cpu_us_per_delivery"] = round(server["cpu_seconds"] / outcome.delivered_in_window * 1e6, 1)
    if server.get("cpu_seconds") is not None and outcome.mode == "connect" and outcome.ready:
        server["cpu_us_per_socket"] = round(server["cpu_seconds"] / len(outcome.ready) * 1e6, 1)
    figures["server"] = server
    figures["server_log"] = log_counts
    return figures


def figure(figures: dict | None, path: tuple[str, ...]):
    value = figures
    for part in path:
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def ratios(ours: dict, baseline: dict | None) -> dict | None:
    """ours / baseline for every figure both have (> 1 is more: good for msgs/s, bad for latency)."""
    if baseline is None:
        return None
    found = {}
    for _, path in RATIO_FIGURES:
        mine, theirs = figure(ours, path), figure(baseline, path)
        if mine is not None and theirs:
            found[".".join(path)] = round(mine / theirs, 2)
    return found


def cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) >= 10 or value == 0 else f"{value:,.2f}"
    return f"{value:,}"


def table(result: dict) -> str:
    """The human table: every figure for the baseline, ours, and ours as a ratio to the baseline."""
    ours, baseline, ratio = result["imchat"], result.get("baseline"), result.get("ratio") or {}
    base_name = baseline["target"] if baseline else "baseline"
    server = result["config"].get("server", "daphne")
    rows = [("figure", base_name, "imchat" if server == "daphne" else f"imchat on {server}", "x baseline")]
    for label, path in RATIO_FIGURES:
        mine, theirs = figure(ours, path), figure(baseline, path)
        if mine is None and theirs is None:
            continue
        rows.append((label, cell(theirs), cell(mine), cell(ratio.get(".".join(path)))))
    if ours["mode"] not in ("idle", "connect"):
        for name in COUNT_FIGURES:
            mine, theirs = ours.get(name), baseline.get(name) if baseline else None
            if mine is None and theirs is None:
                continue
            rows.append((name.replace("_", " "), cell(theirs), cell(mine), ""))
    for label, path in LOG_FIGURES:
        rows.append((label, cell(figure(baseline, path)), cell(figure(ours, path)), ""))
    header = _describe(result)
    return "\n".join([header, *aligned(rows), *[f"note: {note}" for note in result.get("notes", [])]])


def aligned(rows: list[tuple[str, ...]]) -> list[str]:
    """A text table: the first row a header, then a rule; the first column left, the others right."""
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    lines = ["  ".join([row[0].ljust(widths[0])] + [text.rjust(width) for text, width in zip(row[1:], widths[1:])])
             for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return lines


def _describe(result: dict) -> str:
    config = result["config"]
    load = f"open loop {config['rate']:g} msgs/s" if config.get("rate") else f"closed loop, window {config['window']}"
    shape = {
        "private": f"{config.get('pairs')} pairs",
        "group": f"one group of {config.get('group_size')}, {result['imchat'].get('senders')} sending",
        "service": f"{config.get('consumers')} consumers -> 1 shop, {config.get('agents')} agents online"
                   + (", agents answer" if config.get("replies") else ""),
        "idle": f"{config.get('idle')} idle sockets",
        "connect": f"{config.get('connect')} sockets opened {config.get('concurrency')} at a time, "
                   f"users in {GROUPS_EACH} groups, every {AGENT_EVERY}th an agent",
    }[config["mode"]]
    stack = f"{config['database']} + {config['layer']}, {config['processes']} process(es)"
    if not config.get("target"):
        stack += f" of {config['server']}"
    if config["mode"] in ("idle", "connect"):
        return f"imbench {config['mode']}: {shape}, no traffic; {stack}"
    timing = f", {config['duration']:g}s after {config['warmup']:g}s warm-up"
    return f"imbench {config['mode']}: {shape}, {load}{timing}; {stack}"


def histogram(path: str, latencies: dict[str, list[float]]) -> str | None:
    """A PNG of send->deliver latency per target; None if matplotlib is missing (why is returned)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (pip install -r requirements.txt); no PNG written"
    figure, axis = plt.subplots(figsize=(9, 5))
    values = [value * 1000 for series in latencies.values() for value in series if value > 0]
    if not values:
        plt.close(figure)
        return "no latencies to plot"
    low, high = max(min(values), 0.05), max(values)
    bins = [low * (high / low) ** (step / 60) for step in range(61)] if high > low else 30
    for name, series in latencies.items():
        if series:
            axis.hist([value * 1000 for value in series], bins=bins, alpha=0.55, label=f"{name} (n={len(series):,})")
    axis.set_xscale("log")
    axis.set_xlabel("send -> deliver latency (ms, log scale)")
    axis.set_ylabel("messages")
    axis.set_title("imbench: send -> deliver latency")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return None
