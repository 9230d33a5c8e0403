"""B3, idle sockets: N clients connected, each joined to `user:<id>` and to its direct
conversation, heartbeating every 30 s (as the Whispr client does).

Figures per N: how many connected (sockets per relay process), the relay's resident memory per
socket (RSS growth over a freshly started service, divided by N), and the p99 of sends between
four other pairs at 50 msgs/s while the N sockets are connected. The service is restarted before
each N so that every size starts from the same baseline.
"""

from __future__ import annotations

import math
import resource
import time
from typing import TYPE_CHECKING, Any

from bench.fixtures import bulk_directs
from bench.runner import Generator, rss_kb, split
from bench.scenarios.b1 import one_rate
from bench.scenarios.common import phx_pairs

if TYPE_CHECKING:
    from bench.runner import Bench

PER_GENERATOR = 10_000
MARGIN = 1_000  # descriptors the service needs besides its sockets (database, files, listeners)


def one_size(bench: Bench, size: int) -> dict[str, Any]:
    service = bench.restart_service()
    conn = bench.pg()
    try:
        made = bulk_directs(conn, math.ceil(size / 2), prefix=bench.next_bulk_prefix())
    finally:
        conn.close()
    members: list[dict[str, Any]] = []
    bench.progress.step(f"B3 {size}: minting tokens", size)
    for c in made:
        for user in (c.a, c.b):
            if len(members) < size:
                members.append({"token": bench.mint(user), "user_id": user, "conversation": c.id})
        bench.progress.update(len(members))
    rest = bench.rest()
    try:
        probe = phx_pairs(bench, rest.pairs(4))
    finally:
        rest.close()
    generators = max(bench.options.generators, math.ceil(size / PER_GENERATOR))
    jobs = [
        {
            "mode": "idle",
            "ws_url": service.ws_url,
            "members": chunk,
            "heartbeat": 30.0,
            "source_ips": [f"127.0.0.{10 + i}"],
            "hold_max": 900,
            "connect_concurrency": 64,
        }
        for i, chunk in enumerate(split(members, generators))
    ]
    time.sleep(1.0)
    baseline = rss_kb(service.pid)
    measured: dict[str, Any] = {}
    probe_seconds = 1.0 if bench.quick else 10.0

    def during(gens: list[Generator]) -> None:
        measured["connected_kb"] = rss_kb(service.pid)
        measured["probe"] = one_rate(bench, probe, 50, probe_seconds, grace=5.0)
        measured["after_probe_kb"] = rss_kb(service.pid)
        for g in gens:
            g.tell("stop")

    results = bench.run_generators(jobs, f"B3 {size} sockets", probe_seconds + 10, during=during, ready_timeout=900)
    connected = sum(r["connected"] for r in results)
    alive = sum(int(r.get("ready", {}).get("alive", r["connected"])) for r in results)
    failed = sum(r["failed"] for r in results)
    growth = measured["connected_kb"] - baseline
    probe_step = measured["probe"]
    return {
        "sockets": size,
        "connected": connected,
        "failed": failed,
        "closed_by_server": sum(r["closed_by_server"] for r in results),
        "alive_when_measured": alive,
        "connect_s": max(r["connect_s"] for r in results),
        "connects_per_s": connected / max(r["connect_s"] for r in results) if connected else None,
        "rss_baseline_mb": baseline / 1024,
        "rss_connected_mb": measured["connected_kb"] / 1024,
        "rss_after_probe_mb": measured["after_probe_kb"] / 1024,
        "kb_per_socket": growth / alive if alive else None,
        "probe_p50_ms": probe_step["latency"]["p50_ms"],
        "probe_p99_ms": probe_step["latency"]["p99_ms"],
        "probe_lost": probe_step["lost"],
        "errors": [r.get("ready", {}).get("errors") for r in results if r.get("ready", {}).get("errors")],
    }


def run(bench: Bench) -> dict[str, Any]:
    out: list[dict[str, Any]] = []
    files = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    for size in bench.options.sizes.get("B3", [1000]):
        if size + MARGIN > files:  # the service holds one descriptor per socket
            note = f"B3 at {size:,} sockets skipped: the open files limit here is {files:,} (ulimit -n)"
            bench.notes.append(note)
            bench.progress.log(note)
            out.append({"sockets": size, "skipped": note})
            continue
        result = one_size(bench, size)
        out.append(result)
        bench.progress.log(
            f"B3 {size}: {result['connected']} connected, {result['kb_per_socket']} KB/socket, "
            f"probe p99 {result['probe_p99_ms']} ms"
        )
    bench.restart_service()  # the next scenario starts from a clean process
    measured = [r for r in out if "skipped" not in r]
    out = measured + [r for r in out if "skipped" in r]
    full = [r["connected"] for r in measured if r["failed"] == 0 and r["closed_by_server"] == 0]
    return {
        "sizes": out,
        "max_connected_without_failure": max(full, default=0),
        "target_sockets": 50_000,
        "target_kb_per_socket": 20.0,
    }
