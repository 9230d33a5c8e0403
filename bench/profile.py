"""py-spy on the service while B1 saturates it (`--profile`): a flame graph (SVG) and the raw
stacks, summed here into the top frames per thread kind (event loop, worker threads, group-commit
thread), by own time and by inclusive time. The profiled run is an extra one, never counted."""

from __future__ import annotations

import collections
import subprocess
import sys
from pathlib import Path
from typing import Any

IDLE = ("Condition.wait", "EpollSelector.select", "Queue.get", "Event.wait", "_wait_for_tstate_lock")
# waiting for PostgreSQL (GIL released): psycopg's C wait, seen as its Python caller; pg8000's socket I/O
DB_WAIT = {"Connection.wait": "psycopg", "SocketIO.readinto": "pg8000", "SocketIO.write": "pg8000"}


def py_spy() -> str:
    return str(Path(sys.executable).parent / "py-spy")


def record(
    pid: int, seconds: float, out: Path, fmt: str, *, gil: bool = False, subprocesses: bool = False
) -> subprocess.Popen[bytes]:
    """Start py-spy for `seconds` on `pid` (`fmt`: raw or flamegraph); the caller waits for it.
    `gil`: only the samples of the thread holding the GIL, i.e. where the Python CPU goes.
    `subprocesses`: its worker processes too (`dev --workers N`)."""
    return subprocess.Popen(
        [
            py_spy(),
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(max(1, round(seconds))),
            "--rate",
            "100",
            "--threads",
            "--format",
            fmt,
            "--output",
            str(out),
            *(["--gil"] if gil else []),
            *(["--subprocesses"] if subprocesses else []),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _kind(stack: list[str]) -> str:
    text = ";".join(stack)
    if "run_forever" in text or "Runner.run" in text:
        return "event loop"
    if "batch_send" in text or "batching" in text:
        return "group commit"
    if "WorkerThread" in text:
        return "worker threads"
    return "other threads"


def summarize(raw: Path, top: int = 25) -> dict[str, Any]:
    """Samples per thread kind (busy vs idle), and the busiest frames by own and inclusive time."""
    busy: collections.Counter[str] = collections.Counter()
    idle: collections.Counter[str] = collections.Counter()
    db_wait: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total_busy = 0
    for line in raw.read_text().splitlines():
        stack_text, _, count_text = line.rstrip().rpartition(" ")
        if not stack_text or not count_text.isdigit():
            continue
        count = int(count_text)
        stack = [f for f in stack_text.split(";") if f and not f.startswith("process ")]
        frames = [f for f in stack if not f.startswith("thread ")]
        if not frames:
            continue
        kind = _kind(frames)
        leaf = frames[-1].split(" (")[0]
        if leaf in DB_WAIT and DB_WAIT[leaf] in frames[-1] + " ".join(frames[-3:]):
            db_wait[kind] += count
        if leaf in IDLE:
            idle[kind] += count
            continue
        busy[kind] += count
        total_busy += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    kinds = {
        k: {
            "busy": busy[k],
            "idle": idle[k],
            "waiting_on_postgresql": db_wait[k],
            "busy_share": busy[k] / (busy[k] + idle[k]) if busy[k] + idle[k] else 0.0,
        }
        for k in sorted(set(busy) | set(idle))
    }
    return {
        "busy_samples": total_busy,
        "threads": kinds,
        "own": [(f, n / total_busy) for f, n in own.most_common(top)] if total_busy else [],
        "inclusive": [(f, n / total_busy) for f, n in inclusive.most_common(top * 2)] if total_busy else [],
    }
