"""B4, history: `GET /conversations/<id>/messages?limit=50` over 10 k conversations holding 100 k,
1 M and 10 M messages (equal per conversation), to show how latency grows with the table.

The fixture is bulk-loaded with COPY (bench/fixtures.py), growing the same conversations from one
size to the next. Reads are closed loop over 8 keep-alive connections, a random conversation of a
1,000-conversation sample each time, each as one of its members; a 2 s warm-up is not counted.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from bench.fixtures import bulk_directs, bulk_messages
from bench.scenarios.common import cpu_figures, median_of

if TYPE_CHECKING:
    from bench.runner import Bench

CONVERSATIONS = 10_000


def read_load(
    bench: Bench, requests: list[dict[str, Any]], duration: float, connections: int, http: tuple[str, int], label: str
) -> dict[str, Any]:
    from bench.runner import latency_summary, split

    jobs = [
        {
            "mode": "http",
            "http": list(http),
            "requests": chunk,
            "duration": duration,
            "connections": max(1, connections // bench.options.generators),
            "seed": i,
        }
        for i, chunk in enumerate(split(requests, bench.options.generators))
    ]
    results = bench.run_generators(jobs, label, duration)
    lat = [v for r in results for v in r["lat_us"]]
    status: dict[str, int] = {}
    for r in results:
        for code, n in r["status"].items():
            status[code] = status.get(code, 0) + n
    elapsed = max(r["elapsed"] for r in results)
    return {
        **latency_summary(lat),
        "requests_per_s": len(lat) / elapsed if elapsed else None,
        "status": status,
        "generator_load": bench.generator_load(results),
        **cpu_figures(results, len(lat)),
    }


def run(bench: Bench) -> dict[str, Any]:
    service = bench.require_service()
    conversations = 1_000 if bench.quick else CONVERSATIONS
    conn = bench.pg()
    try:
        made = bulk_directs(conn, conversations, prefix=bench.next_bulk_prefix())
        sample = made[: min(1_000, len(made))]
        requests = [
            {
                "method": "GET",
                "path": f"/messaging/api/v1/conversations/{c.id}/messages?limit=50",
                "token": bench.mint(c.a),
            }
            for c in sample
        ]
        duration = 1.0 if bench.quick else 10.0
        have = 0
        sizes = []
        for size in bench.options.sizes.get("B4", [1_000_000]):
            want = max(1, size // conversations)
            rows = conversations * (want - have)
            bench.progress.step(f"B4 loading {size:,} messages (COPY)", rows)
            started = time.monotonic()
            bulk_messages(conn, made, have=have, want=want, on_rows=bench.progress.update)
            load_s = time.monotonic() - started
            bench.progress.log(f"B4 loaded {rows:,} rows in {load_s:.1f} s ({rows / max(load_s, 1e-9):,.0f} rows/s)")
            have = want
            read_load(
                bench, requests, 0.5 if bench.quick else 2.0, 8, ("127.0.0.1", service.port), f"B4 {size:,} warm-up"
            )
            runs = [
                read_load(bench, requests, duration, 8, ("127.0.0.1", service.port), f"B4 {size:,} rows")
                for _ in range(bench.repeats)
            ]
            result = {
                "rows": conversations * want,
                "per_conversation": want,
                "load_s": load_s,
                "load_rows_per_s": rows / load_s if load_s else None,
                "p50_ms": median_of(runs, "p50_ms"),
                "p99_ms": median_of(runs, "p99_ms"),
                "requests_per_s": median_of(runs, "requests_per_s"),
                "generator_load": max(r["generator_load"] for r in runs),
                "service_us_per_request": median_of(runs, "service_us_per_item"),
                "postgres_us_per_request": median_of(runs, "postgres_us_per_item"),
                "status": runs[-1]["status"],
                "runs": runs,
            }
            sizes.append(result)
            bench.progress.log(
                f"B4 {size:,}: p50 {result['p50_ms']} p99 {result['p99_ms']} ms, {result['requests_per_s']} req/s"
            )
    finally:
        conn.close()
    return {"conversations": conversations, "sizes": sizes, "p99_target_ms": 20.0}
