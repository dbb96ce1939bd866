"""One benchmark: the baseline first, then ours, under the same load; their figures and the ratios.

`manage.py imbench` parses its options into a `Config` and calls `run`; everything it starts is
stopped before `run` returns or raises (Ctrl-C included).
"""

import asyncio
import math
import os
import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from urllib.parse import urlsplit

from bench import profiling, report
from bench.fixtures import AGENT_EVERY, GROUPS_EACH
from bench.load import Plan, run_load
from bench.servers import SERVERS, BenchError, Deployment, Monitor, default_cpus, parse_cpus, pid_listening_on

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
BASELINE_MODES = {"naive": {"private", "group", "idle", "connect"}, "relay": {"private", "idle", "connect"},
                  "private": {"service", "group"}, "daphne": {"private", "group", "service", "idle", "connect"},
                  "none": set()}
# The app each baseline runs: "private" is our own, in private mode; "daphne" our own, same load, on daphne.
SERVER_OF = {"private": "imchat", "daphne": "imchat"}


@dataclass
class Config:
    mode: str = "private"
    pairs: int = 100
    group_size: int = 100
    senders: int | None = None
    consumers: int = 100
    agents: int = 4
    idle: int = 0
    connect: int = 2000
    concurrency: int = 50
    replies: bool = False
    window: int = 1
    rate: float | None = None
    duration: float = 10.0
    warmup: float = 2.0
    drain: float = 5.0
    gate: str = "deliver"
    msg_bytes: int = 64
    processes: int = 1
    pairs_together: bool = False
    target: str | None = None
    baseline: str = "naive"
    server: str = "daphne"  # what ours runs on: daphne (production) or uvicorn
    server_cpus: str = "auto"
    client_cpus: str = "auto"
    sync_check: bool = True
    progress: bool = True
    keep_logs: bool = False
    profile: str | None = None
    profile_gil: bool = False


def users_needed(config: Config) -> dict:
    if config.mode == "private":
        return {"users": 2 * config.pairs}
    if config.mode == "group":
        return {"users": config.group_size, "group": True}
    if config.mode == "service":
        return {"users": config.consumers, "agents": config.agents}
    if config.mode == "connect":
        return {"users": config.connect, "groups_each": GROUPS_EACH, "agent_every": AGENT_EVERY}
    return {"users": config.idle}


def senders_of(config: Config) -> int:
    if config.mode == "group":
        return min(config.senders or config.group_size, config.group_size)
    if config.mode == "service":
        return config.consumers
    return 2 * config.pairs


def private_baseline(config: Config) -> Config:
    """Our own server in private mode with as many senders as `config`; same window, rate, duration."""
    return replace(config, mode="private", pairs=math.ceil(senders_of(config) / 2))


def check(config: Config, env: dict[str, str]) -> None:
    if config.mode == "private" and config.pairs < 1:
        raise BenchError("--pairs must be at least 1")
    if config.mode == "group" and config.group_size < 2:
        raise BenchError("--group-size must be at least 2")
    if config.mode == "service" and (config.consumers < 1 or config.agents < 1):
        raise BenchError("--consumers and --agents must be at least 1")
    if config.mode == "connect" and config.connect < 2:
        raise BenchError("--connect must be at least 2")
    if config.window < 1 or config.processes < 1 or config.concurrency < 1:
        raise BenchError("--window, --processes and --concurrency must be at least 1")
    if config.server not in SERVERS:
        raise BenchError(f"--server must be one of {', '.join(SERVERS)}")
    if config.target and config.server != "daphne":
        raise BenchError("--server starts our server; with --target it is already running")
    if config.rate is not None and config.rate <= 0:
        raise BenchError("--rate must be positive")
    if config.target:
        parts = urlsplit(config.target)
        if parts.scheme != "ws" or parts.hostname not in LOOPBACK or not parts.port:
            raise BenchError("--target must be ws://127.0.0.1:PORT (the benchmark only talks to this machine)")
    if config.pairs_together and config.mode != "private":
        raise BenchError("--pairs-together is for private mode (it places each pair's two users)")
    messages = config.mode not in ("idle", "connect")
    if config.processes > 1 and messages and not env.get("REDIS_URL") and not config.target:
        raise BenchError("--processes > 1 needs REDIS_URL: the in-memory layer does not reach other processes")


def plan_of(config: Config) -> Plan:
    return Plan(
        mode=config.mode, window=config.window, rate=config.rate, warmup=config.warmup, duration=config.duration,
        drain=config.drain, gate=config.gate, msg_bytes=config.msg_bytes, senders=config.senders,
        replies=config.replies, pairs_together=config.pairs_together,
        connect_concurrency=config.concurrency, idle_hold=config.duration,
        sync_check=config.sync_check, progress=config.progress,
    )


def bound_seconds(config: Config, sockets: int) -> float:
    """How long one run may take before it is called stuck."""
    return 60 + sockets / 50 + config.warmup + config.duration + max(30.0, 10 * config.drain) + 60


def run(config: Config) -> dict:
    env = dict(os.environ)
    check(config, env)
    notes: list[str] = []
    server_cpus, client_cpus = default_cpus()
    if config.server_cpus != "auto":
        server_cpus = parse_cpus(config.server_cpus)
    if config.client_cpus != "auto":
        client_cpus = parse_cpus(config.client_cpus)
    if client_cpus:
        os.sched_setaffinity(0, client_cpus)

    baseline = config.baseline
    if config.target and baseline != "none":
        notes.append("--target: no baseline (the baseline is started by imbench itself)")
        baseline = "none"
    if baseline != "none" and config.mode not in BASELINE_MODES[baseline]:
        hint = ""
        if config.mode in BASELINE_MODES["private"]:
            hint = " (--baseline private compares it to our private chat)"
        notes.append(f"the {baseline} baseline has no {config.mode} mode; ours only{hint}")
        baseline = "none"
    if baseline == "relay" and config.processes > 1:
        notes.append("relay processes do not share sockets; the relay baseline runs only with --processes 1")
        baseline = "none"
    phases = [("imchat", config)]
    if baseline == "private":
        base_config = private_baseline(config)
        phases.insert(0, ("private", base_config))
        notes.append(f"baseline: our own server, private chat, {base_config.pairs} pairs "
                     f"({2 * base_config.pairs} senders; ours {senders_of(config)}), same window, rate and duration")
    elif baseline != "none":
        phases.insert(0, (baseline, config))
    if baseline == "daphne":
        notes.append(f"baseline: our own server on daphne, same load; ours on {config.server}")

    deployment = Deployment(base_env=env, server_cpus=server_cpus if not config.target else None,
                            keep_logs=config.keep_logs, own_servers=not config.target)
    results: dict[str, dict] = {}
    latencies: dict[str, list[float]] = {}
    try:
        if not config.target:
            _say(config, "migrating")
            deployment.migrate(with_naive=baseline == "naive")
        for name, phase_config in phases:
            figures, series = _phase(name, phase_config, deployment)
            results[name] = figures
            latencies[name] = series
    finally:
        deployment.close()

    ours = results["imchat"]
    base = results.get(baseline)
    config_out = asdict(config)
    config_out.update(
        baseline=baseline,
        database="postgresql" if not deployment.uses_sqlite else "sqlite",
        layer="redis" if deployment.has_redis else "in-memory",
        server_cpus=sorted(server_cpus) if server_cpus and not config.target else None,
        client_cpus=sorted(client_cpus) if client_cpus else None,
        cores=os.cpu_count(),
    )
    result = {
        "tool": "imbench",
        "mode": config.mode,
        "delivered_per_s": ours.get("delivered_per_s"),
        "lost": ours.get("lost"),
        "duplicates": ours.get("duplicates"),
        "needed_sync": ours.get("needed_sync"),
        **({"ready_per_s": ours["connect"]["ready_per_s"]} if config.mode == "connect" else {}),
        "config": config_out,
        "imchat": ours,
        "baseline": base,
        "ratio": report.ratios(ours, base),
        "notes": notes,
    }
    result["_latencies"] = latencies
    return result


def _say(config: Config, text: str) -> None:
    if config.progress:
        sys.stderr.write(f"\r\033[K[imbench] {text}")
        sys.stderr.flush()


def _phase(name: str, config: Config, deployment: Deployment) -> tuple[dict, list[float]]:
    """Start target `name`'s servers (or use --target), run `config`'s load with fresh users, stop
    them; (figures, latencies)."""
    kind = SERVER_OF.get(name, name)
    _say(config, f"{name}: making fixtures")
    fixtures = deployment.fixtures(**users_needed(config))
    fixtures["tag"] = name[0]
    servers = []
    try:
        if config.target:
            parts = urlsplit(config.target)
            urls = [f"ws://{parts.hostname}:{parts.port}/"]
            pid = pid_listening_on(parts.port)
            monitor = Monitor([pid] if pid else [])
        else:
            _say(config, f"{name}: starting {config.processes} server process(es)")
            servers = deployment.start(kind, config.processes, group_members=config.group_size,
                                       server="daphne" if name == "daphne" else config.server)
            urls = [server.url for server in servers]
            monitor = Monitor([server.pid for server in servers],
                              [f"http://127.0.0.1:{server.port}/metrics" for server in servers if kind == "imchat"])
        sockets = len(fixtures["users"]) + len(fixtures.get("agents") or [])
        phase_plan = replace(plan_of(config), label=name)
        sampler: dict = {}
        profile_path = Path(config.profile) / f"{name}.raw" if config.profile and monitor.processes else None

        def start_profile() -> None:
            if profile_path is not None:
                profile_path.parent.mkdir(parents=True, exist_ok=True)
                sampler["process"] = profiling.start(monitor.processes[0].pid, config.duration, profile_path,
                                                     gil=config.profile_gil)

        try:
            outcome, server_figures = asyncio.run(
                run_load(phase_plan, urls, fixtures, monitor=monitor, supports_sync=kind == "imchat",
                         timeout=bound_seconds(config, sockets), on_measure=start_profile)
            )
        except ConnectionError as error:
            logs = "\n".join(server.log_tail(2000) for server in servers)
            raise BenchError(f"{name}: {error}\n{logs}") from None
        profiled = profiling.finish(sampler.get("process"), profile_path, config.duration) if profile_path else None
        log_counts: dict[str, int] = {}
        for server in servers:
            for what, count in server.log_counts().items():
                log_counts[what] = log_counts.get(what, 0) + count
        dead = [server for server in servers if server.process.poll() is not None]
        if dead:
            raise BenchError(f"{name} server exited during the run:\n{dead[0].log_tail()}")
    finally:
        deployment.stop(servers)
    figures = report.summarize(name, outcome, server_figures, log_counts)
    if profiled is not None:
        figures["profile"] = profiled
    return figures, outcome.latencies
