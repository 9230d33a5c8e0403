"""The side-by-side references, measured in the same run as B1-B6.

- `ceilings`: pgbench (one row per commit, ten rows per commit) on the same durable cluster, and
  the bare WebSocket server (`bench.ceilings`) driven exactly like B1 (pairs: the same open-loop
  rates and the same closed loop) and like B2 (a 100-receiver broadcast burst).
- `synapse`: Matrix Synapse on the same PostgreSQL: B1 as `PUT /send` + `/sync` long-poll (closed
  loop with 16 senders, and open-loop rates), B4 as `/messages?dir=b&limit=50` over rooms filled
  through its API.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from bench import ceilings as ceiling_tools
from bench import synapse as synapse_tools
from bench.scenarios.b1 import SPEC_RATES, closed_loop, sweep
from bench.scenarios.b2 import fanout_jobs, merge
from bench.scenarios.b4 import read_load
from bench.scenarios.common import median_of
from shared.devtools.postgres import free_port

if TYPE_CHECKING:
    from bench.runner import Bench

BARE_RATES = [500, 1000, 2000, 5000, 10000, 20000, 35000]


def _wait_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


def pgbench_figures(bench: Bench) -> dict[str, Any]:
    cluster = bench.cluster
    ceiling_tools.create_database(cluster.bin_dir, cluster.port, "ceiling")
    seconds = 1.0 if bench.quick else 10.0
    out: dict[str, Any] = {}
    for rows in (1, 10):
        bench.progress.step(f"pgbench {rows} row(s) per commit", seconds * bench.repeats)
        runs = []
        for i in range(bench.repeats):
            result = ceiling_tools.pgbench(
                cluster.bin_dir, cluster.port, "ceiling", rows=rows, clients=8, seconds=seconds
            )
            runs.append({"tps": result.tps, "rows_per_s": result.rows_per_s, "latency_ms": result.latency_ms})
            bench.progress.update((i + 1) * seconds)
        out["single" if rows == 1 else "batched"] = {
            "rows_per_commit": rows,
            "clients": 8,
            "rows_per_s": median_of(runs, "rows_per_s"),
            "commits_per_s": median_of(runs, "tps"),
            "latency_ms": median_of(runs, "latency_ms"),
            "runs": runs,
        }
        bench.progress.log(
            f"pgbench {rows} row(s)/commit: {out['single' if rows == 1 else 'batched']['rows_per_s']} rows/s"
        )
    return out


def ceilings(bench: Bench) -> dict[str, Any]:
    out: dict[str, Any] = {"pgbench": pgbench_figures(bench), "event_loop": ceiling_tools.loop_name()}
    port = free_port()
    log = open(bench.workdir / "bare-ws.log", "ab")  # noqa: SIM115 - closed below
    server = subprocess.Popen(
        [sys.executable, "-m", "bench.ceilings", "serve-ws", "--port", str(port)],
        stdout=log,
        stderr=log,
        cwd=Path(__file__).resolve().parents[2],
        start_new_session=True,
    )
    try:
        _wait_port(port)
        url = f"ws://127.0.0.1:{port}"
        entries = [{"pair": i} for i in range(8 if bench.quick else 64)]
        duration = 1.0 if bench.quick else 10.0
        rates = [1000] if bench.quick else BARE_RATES
        steps, sustained = sweep(bench, entries, rates, SPEC_RATES, duration, proto="bare", ws_url=url)
        closed = {
            str(c): closed_loop(bench, entries, c, duration, proto="bare", ws_url=url)
            for c in ([4] if bench.quick else [16, 64])
        }
        out["bare_pairs"] = {"steps": steps, "sustained": sustained, "closed": closed}
        receivers = 10 if bench.quick else 100
        burst = 100 if bench.quick else 5000
        base = {"proto": "bare", "ws_url": url, "steps": [{"burst": burst}], "grace": 10.0}
        members = [{"i": i} for i in range(receivers)]
        runs = []
        for _ in range(bench.repeats):
            results = bench.run_generators(
                fanout_jobs(bench, members, {"bare": True}, base, bench.options.generators),
                f"bare broadcast to {receivers}",
                5.0,
            )
            runs.append({**merge(results, "s0", receivers), "generator_load": bench.generator_load(results)})
        out["bare_broadcast"] = {
            "receivers": receivers,
            "burst": burst,
            "deliveries_per_s": median_of(runs, "deliveries_per_s"),
            "p99_ms": median_of(runs, "p99_ms"),
            "generator_load": max(r["generator_load"] for r in runs),
            "runs": runs,
        }
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
    return out


def synapse(bench: Bench) -> dict[str, Any]:
    cache = bench.options.out.resolve() / "cache"
    try:
        python = synapse_tools.ensure_installed(cache, cache / "synapse-install.log")
    except synapse_tools.SynapseUnavailable as error:
        return {"unavailable": str(error)}
    cluster = bench.cluster
    synapse_tools.create_database(cluster.bin_dir, cluster.port)
    server = synapse_tools.Synapse(python, bench.workdir / "synapse", free_port(), cluster.port)
    bench.progress.step("starting Synapse")
    try:
        server.start()
    except synapse_tools.SynapseUnavailable as error:
        return {"unavailable": str(error)}
    try:
        return _drive_synapse(bench, server)
    finally:
        server.stop()


def _drive_synapse(bench: Bench, server: synapse_tools.Synapse) -> dict[str, Any]:
    concurrency = 2 if bench.quick else 16
    http = ("127.0.0.1", server.port)
    bench.progress.step("Synapse: registering users, creating rooms", concurrency)
    entries = []
    with httpx.Client(timeout=60) as client:
        for i in range(concurrency):
            a = server.register(client, f"a{i}")
            b = server.register(client, f"b{i}")
            room = server.direct_room(client, a, b)
            entries.append(
                {"sender": a.token, "receiver": b.token, "conversation": room, "pair": i, "sender_user": a.user_id}
            )
            bench.progress.update(i + 1)
    duration = 2.0 if bench.quick else 10.0
    closed = closed_loop(
        bench, entries, concurrency, duration, proto="matrix", http=http, label=f"Synapse closed x{concurrency}"
    )
    bench.progress.log(f"Synapse closed x{concurrency}: {closed['throughput']} msgs/s, p99 {closed['p99_ms']} ms")
    rates = [10] if bench.quick else [25, 50, 100, 200, 400]
    steps, sustained = sweep(bench, entries, rates, [], duration, proto="matrix", http=http)
    # B4: rooms filled through the API, then /messages
    rooms = entries[: 2 if bench.quick else 16]
    per_room = 60 if bench.quick else 250
    bench.progress.step(f"Synapse: filling {len(rooms)} rooms with {per_room} messages", len(rooms) * per_room)
    done = 0

    def fill(entry: dict[str, Any]) -> int:
        with httpx.Client(timeout=60) as client:
            user = synapse_tools.User(entry["sender_user"], entry["sender"])
            for n in range(per_room):
                server.send(client, user, entry["conversation"], f"history {n} " + "x" * 110, f"fill-{n}")
        return per_room

    with ThreadPoolExecutor(8) as pool:
        for count in pool.map(fill, rooms):
            done += count
            bench.progress.update(done)
    requests = [
        {
            "method": "GET",
            "token": e["receiver"],
            "path": f"/_matrix/client/v3/rooms/{e['conversation']}/messages?dir=b&limit=50",
        }
        for e in rooms
    ]
    read_load(bench, requests, 0.5 if bench.quick else 2.0, 8, http, "Synapse /messages warm-up")
    runs = [
        read_load(bench, requests, 1.0 if bench.quick else 10.0, 8, http, "Synapse /messages")
        for _ in range(bench.repeats)
    ]
    return {
        "version": synapse_tools.VERSION,
        "b1": {"closed": closed, "steps": steps, "sustained": sustained},
        "b4": {
            "rooms": len(rooms),
            "events_per_room": per_room,
            "p50_ms": median_of(runs, "p50_ms"),
            "p99_ms": median_of(runs, "p99_ms"),
            "requests_per_s": median_of(runs, "requests_per_s"),
            "status": runs[-1]["status"],
            "runs": runs,
        },
    }
