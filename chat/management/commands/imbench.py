"""Benchmark the chat server against the naive Channels baseline: `manage.py imbench --help`.

Starts its own server processes (daphne; ours on uvicorn with --server) with this command's
environment (DATABASE_URL / REDIS_URL decide PostgreSQL / Redis, as in production) or targets a
running server on this machine, drives real WebSocket clients with real tokens, and prints a table
plus one JSON line (docs/PERFORMANCE.md).
"""

import json
import signal
import sys

from django.core.management.base import BaseCommand, CommandError

from bench import profiling, report, targets
from bench.run import Config, run
from bench.servers import SERVERS, BenchError


class Command(BaseCommand):
    help = "Measure delivered msgs/s, latency, loss and server cost, as a ratio to a naive baseline."

    def add_arguments(self, parser):
        load = parser.add_argument_group("load")
        load.add_argument("--mode", choices=["private", "group", "service", "connect"], default="private",
                          help="private pairs (default), one group fanning out, consumers writing to a shop, "
                               "or sockets opened as fast as they get ready (see --connect)")
        load.add_argument("--idle", type=int, default=0, metavar="N",
                          help="instead: open N idle sockets, hold them --duration s, report server RSS per socket")
        load.add_argument("--connect", type=int, default=None, metavar="N",
                          help="instead (= --mode connect): open N sockets (default 2000) of users each in 3 groups, "
                               "every 10th an agent; report sockets ready/s, time to ready, server CPU per socket")
        load.add_argument("--targets", action="store_true",
                          help="instead: every scenario the performance targets are read from (each with its "
                               "baseline, ~12 minutes), then one table of the targets, met or not")
        load.add_argument("--concurrency", type=int, default=50,
                          help="sockets being opened at once, in every mode (default 50)")
        load.add_argument("--pairs", type=int, default=100, help="private mode: pairs of users (default 100)")
        load.add_argument("--group-size", type=int, default=100, help="group mode: members, all online (default 100)")
        load.add_argument("--senders", type=int, default=None,
                          help="group mode: how many members send (default all)")
        load.add_argument("--consumers", type=int, default=100, help="service mode: consumers (default 100)")
        load.add_argument("--agents", type=int, default=4, help="service mode: online agents of the shop (default 4)")
        load.add_argument("--replies", action="store_true",
                          help="service mode: agents answer every message; a consumer's message leaves the window "
                               "when the answer is back")
        load.add_argument("--window", type=int, default=1,
                          help="closed loop: messages in flight per sender (default 1)")
        load.add_argument("--rate", type=float, default=None,
                          help="open loop instead: messages per second offered in total")
        load.add_argument("--gate", choices=["deliver", "ack"], default="deliver",
                          help="closed loop: a message leaves the window when delivered and acked (default) "
                               "or when acked only")
        load.add_argument("--duration", type=float, default=10.0, help="measured seconds (default 10)")
        load.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds first (default 2)")
        load.add_argument("--drain", type=float, default=5.0,
                          help="seconds to wait for late deliveries before counting losses (default 5)")
        load.add_argument("--msg-bytes", type=int, default=64, help="message text length (default 64)")
        load.add_argument("--no-sync-check", dest="sync_check", action="store_false",
                          help="do not ask chat.sync for lost messages at the end")

        servers = parser.add_argument_group("servers")
        servers.add_argument("--processes", type=int, default=1,
                             help="server processes; clients are spread round-robin (default 1)")
        servers.add_argument("--pairs-together", action="store_true",
                             help="private mode, several processes: both users of each pair on the same process, "
                                  "so that no message crosses Redis (the control for --processes 2)")
        servers.add_argument("--target", default=None, metavar="ws://127.0.0.1:PORT",
                             help="use this running server instead of starting one (no baseline)")
        servers.add_argument("--server", choices=SERVERS, default="daphne",
                             help="what ours runs on: daphne on uvloop as in production (default), or uvicorn "
                                  "(uvloop, httptools) with the same app")
        servers.add_argument("--baseline", choices=["naive", "relay", "private", "daphne", "none"], default="naive",
                             help="run this first with the same load and give ratios to it (default naive); "
                                  "private (service and group modes): our own server in private mode, "
                                  "as many senders; daphne: our own server on daphne (with --server uvicorn)")
        servers.add_argument("--server-cpus", default="auto",
                             help='cores for the servers: "0", "0,1" or "none" (default: all but the last core)')
        servers.add_argument("--client-cpus", default="auto",
                             help='cores for the load generator (default: the last core, with 2+ cores)')
        servers.add_argument("--keep-logs", action="store_true", help="keep the servers' logs (path printed)")

        output = parser.add_argument_group("output")
        output.add_argument("--json", action="store_true", help="print only the JSON line on stdout")
        output.add_argument("--png", default=None, metavar="PATH", help="write a latency histogram (matplotlib)")
        output.add_argument("--profile", default=None, metavar="DIR",
                            help="py-spy each target's first server during the measured window (needs py-spy); "
                                 "raw stacks in DIR, summary printed")
        output.add_argument("--profile-gil", action="store_true",
                            help="with --profile: sample only the thread holding the GIL (where the CPU goes)")
        output.add_argument("--quiet", action="store_true", help="no progress line on stderr")

    def handle(self, *args, **options):
        mode = "idle" if options["idle"] else "connect" if options["connect"] else options["mode"]
        config = Config(
            mode=mode,
            pairs=options["pairs"], group_size=options["group_size"], senders=options["senders"],
            consumers=options["consumers"], agents=options["agents"], idle=options["idle"],
            connect=options["connect"] or Config.connect, concurrency=options["concurrency"],
            replies=options["replies"],
            window=options["window"], rate=options["rate"], duration=options["duration"], warmup=options["warmup"],
            drain=options["drain"], gate=options["gate"], msg_bytes=options["msg_bytes"],
            processes=options["processes"], pairs_together=options["pairs_together"], target=options["target"],
            baseline=options["baseline"],
            server=options["server"],
            server_cpus=options["server_cpus"], client_cpus=options["client_cpus"],
            sync_check=options["sync_check"], progress=not options["quiet"], keep_logs=options["keep_logs"],
            profile=options["profile"],
            profile_gil=options["profile_gil"],
        )
        previous = signal.signal(signal.SIGTERM, _interrupt)
        try:
            if options["targets"]:
                result = targets.run_targets(config)
                if not options["json"]:
                    self.stdout.write(targets.table(result))
                self.stdout.write(json.dumps(result, separators=(",", ":")))
                return
            result = run(config)
        except BenchError as error:
            raise CommandError(str(error)) from None
        except TimeoutError:
            raise CommandError("the benchmark did not finish in time; its servers were stopped") from None
        except KeyboardInterrupt:
            sys.stderr.write("\ninterrupted; servers stopped\n")
            sys.exit(130)
        finally:
            signal.signal(signal.SIGTERM, previous)
        latencies = result.pop("_latencies")
        if options["png"]:
            problem = report.histogram(options["png"], latencies)
            result["notes"].append(problem or f"latency histogram written to {options['png']}")
        if not options["json"]:
            self.stdout.write(report.table(result))
            for name in ("baseline", "imchat"):
                if result.get(name) and result[name].get("profile"):
                    self.stdout.write(f"--- {result[name]['target']} ---\n" + profiling.text(result[name]["profile"]))
        self.stdout.write(json.dumps(result, separators=(",", ":")))


def _interrupt(signum, frame):
    raise KeyboardInterrupt
