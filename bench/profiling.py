"""Where a server's time goes: py-spy on one process during the measured window, summarized.

Optional: needs the `py-spy` executable (`pip install py-spy`; not a requirement of the project).
The raw collapsed stacks are kept beside the summary so a flame graph can be drawn from them later.
"""

import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

# Buckets of the summary: the first rule whose fragment is in a frame's file decides.
AREAS = [
    ("imchat code", ("chat/", "accounts/", "customer_service/", "imchat/", "bench/naive/")),
    ("django ORM / db", ("django/db/",)),
    ("psycopg", ("psycopg",)),
    ("sqlite3", ("sqlite3",)),
    ("channels", ("channels/",)),
    ("channels_redis", ("channels_redis",)),
    ("redis-py", ("redis/",)),
    ("asgiref (sync/async hops)", ("asgiref/",)),
    ("daphne / twisted / autobahn", ("daphne/", "twisted/", "autobahn/", "txaio/")),
    ("asyncio", ("asyncio/",)),
    ("threading / concurrent", ("threading.py", "concurrent/")),
    ("json", ("json/", "orjson")),
    ("django (other)", ("django/",)),
]


def py_spy() -> str | None:
    here = Path(sys.executable).parent / "py-spy"
    return str(here) if here.exists() else shutil.which("py-spy")


def start(pid: int, seconds: float, raw_path: Path, gil: bool = False) -> subprocess.Popen | None:
    """Sample `pid` for `seconds` at 250 Hz into a raw collapsed-stack file; None without py-spy.

    With `gil`, only the thread holding the GIL is sampled: where the CPU goes, without the time
    threads spend waiting for the GIL or for I/O."""
    binary = py_spy()
    if binary is None:
        return None
    return subprocess.Popen(
        [binary, "record", "--pid", str(pid), "--duration", str(max(1, int(round(seconds)))), "--rate", "250",
         "--format", "raw", "--output", str(raw_path), "--nonblocking", "--threads", "--nolineno", *(["--gil"] if gil else [])],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )


def finish(process: subprocess.Popen | None, raw_path: Path, seconds: float, top: int = 15) -> dict:
    if process is None:
        return {"error": "py-spy not found (pip install py-spy)"}
    try:
        _, err = process.communicate(timeout=seconds + 30)
    except subprocess.TimeoutExpired:
        process.kill()
        return {"error": "py-spy did not finish"}
    if not raw_path.exists():
        return {"error": f"py-spy wrote nothing: {err.decode(errors='replace')[-500:]}"}
    return summarize(raw_path, seconds, top)


def _area(frame: str) -> str:
    for name, fragments in AREAS:
        if any(fragment in frame for fragment in fragments):
            return name
    return "other"


def summarize(raw_path: Path, seconds: float, top: int = 15) -> dict:
    """Busy time per thread, per area (by the innermost frame) and the hottest functions."""
    self_time: Counter = Counter()
    inclusive: Counter = Counter()
    areas: Counter = Counter()
    threads: Counter = Counter()
    total = 0
    for line in raw_path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples = int(count)
        frames = stack.split(";")
        thread = frames[0] if frames[0].startswith("thread") else "?"
        frames = frames[1:] if thread != "?" else frames
        total += samples
        threads[thread] += samples
        leaf = frames[-1] if frames else "?"
        self_time[leaf] += samples
        areas[_area(leaf)] += samples
        for frame in set(frames):
            inclusive[frame] += samples
    rate = 250.0
    busy = total / rate

    def share(samples: int) -> float:
        return round(100 * samples / total, 1) if total else 0.0

    return {
        "raw": str(raw_path),
        "seconds": seconds,
        "busy_seconds": round(busy, 2),
        "threads": {name: round(count / rate, 2) for name, count in threads.most_common()},
        "areas_pct": {name: share(count) for name, count in areas.most_common()},
        "self_pct": [(frame, share(count)) for frame, count in self_time.most_common(top)],
        "inclusive_pct": [(frame, share(count)) for frame, count in inclusive.most_common(top * 2)],
    }


def text(summary: dict) -> str:
    if "error" in summary:
        return f"profile: {summary['error']}"
    lines = [f"profile ({summary['raw']}): {summary['busy_seconds']}s of samples in {summary['seconds']:g}s; "
             f"busy seconds per thread: {summary['threads']}",
             "by area (innermost frame): " + ", ".join(f"{name} {pct}%" for name, pct in summary["areas_pct"].items()),
             "hottest functions (self):"]
    lines += [f"  {pct:5.1f}%  {frame}" for frame, pct in summary["self_pct"]]
    lines.append("hottest functions (inclusive):")
    lines += [f"  {pct:5.1f}%  {frame}" for frame, pct in summary["inclusive_pct"]]
    return "\n".join(lines)
