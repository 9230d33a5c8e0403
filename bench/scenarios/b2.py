"""B2, group fan-out: a group of M members, all connected (`user:<id>`), one of them sends.

Figures per group size: the p99 time until all M-1 other members have a message, at 50 msgs/s;
and deliveries/s at saturation (a burst sent as fast as the acks allow, 64 in flight).
The same measure against the bare server's broadcast is the transport ceiling (references.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bench.fixtures import new_user
from bench.runner import percentile, split
from bench.scenarios.common import cpu_figures, median_of

if TYPE_CHECKING:
    from bench.runner import Bench


def fanout_jobs(
    bench: Bench, members: list[dict[str, Any]], sender: dict[str, Any] | None, base: dict[str, Any], generators: int
) -> list[dict[str, Any]]:
    jobs = []
    for i, chunk in enumerate(split(members, generators)):
        jobs.append(
            {
                **base,
                "mode": "fanout",
                "members": chunk,
                "sender": sender if i == 0 else None,
                "expected_receivers": len(chunk),
            }
        )
    return jobs


def merge(results: list[dict[str, Any]], step: str, receivers: int) -> dict[str, Any]:
    sent: dict[str, int] = {}
    for r in results:
        sent.update(r["sent"].get(step, {}))
    counts: dict[str, int] = {}
    last: dict[str, int] = {}
    for r in results:
        for idx, (count, at) in r["recv"].get(step, {}).items():
            counts[idx] = counts.get(idx, 0) + count
            last[idx] = max(last.get(idx, 0), at)
    complete = [(last[i] - sent[i]) / 1e6 for i in sent if counts.get(i, 0) >= receivers]
    deliveries = sum(counts.values())
    span = (max(last.values()) - min(sent.values())) / 1e9 if last and sent else 0.0
    return {
        "messages": len(sent),
        "complete": len(complete),
        "incomplete": len(sent) - len(complete),
        "p50_ms": percentile(complete, 50),
        "p99_ms": percentile(complete, 99),
        "deliveries": deliveries,
        "deliveries_per_s": deliveries / span if span > 0 else None,
    }


def one_size(bench: Bench, size: int) -> dict[str, Any]:
    rest = bench.rest()
    try:
        owner = new_user()
        others = [new_user() for _ in range(size - 1)]
        conversation = rest.group(owner, others)
    finally:
        rest.close()
    members = [{"token": bench.mint(u), "user_id": u} for u in others]
    sender = {"token": bench.mint(owner), "user_id": owner}
    duration = 1.0 if bench.quick else 10.0
    burst = 50 if bench.quick else 1000
    base = {
        "proto": "phx",
        "ws_url": bench.require_service().ws_url,
        "conversation": conversation,
        "steps": [{"rate": 50, "duration": duration}, {"burst": burst, "window": 64}],
        "grace": 5.0 if bench.quick else 30.0,
    }
    runs = []
    for _ in range(bench.repeats):
        results = bench.run_generators(
            fanout_jobs(bench, members, sender, base, bench.options.generators), f"B2 group of {size}", duration + 5
        )
        at_50, saturated = merge(results, "s0", size - 1), merge(results, "s1", size - 1)
        deliveries = at_50["deliveries"] + saturated["deliveries"]
        cost = cpu_figures(results, deliveries)
        service_s = (cost["cpu"] or {}).get("service_s")
        runs.append(
            {
                "at_50": at_50,
                "burst": saturated,
                "generator_load": bench.generator_load(results),
                "errors": sum(r.get("errors", 0) for r in results),
                **cost,
                "deliveries_per_cpu_s": deliveries / service_s if service_s else None,
            }
        )
    return {
        "members": size,
        "p50_ms": median_of(runs, "at_50", "p50_ms"),
        "p99_ms": median_of(runs, "at_50", "p99_ms"),
        "incomplete": max(r["at_50"]["incomplete"] + r["burst"]["incomplete"] for r in runs),
        "deliveries_per_s": median_of(runs, "burst", "deliveries_per_s"),
        "burst_p99_ms": median_of(runs, "burst", "p99_ms"),
        "generator_load": max(r["generator_load"] for r in runs),
        "errors": max(r["errors"] for r in runs),
        "deliveries_per_cpu_s": median_of(runs, "deliveries_per_cpu_s"),
        "service_us_per_delivery": median_of(runs, "service_us_per_item"),
        "postgres_us_per_delivery": median_of(runs, "postgres_us_per_item"),
        "runs": runs,
    }


def run(bench: Bench) -> dict[str, Any]:
    sizes = bench.options.sizes.get("B2", [100])
    out = []
    for size in sizes:
        result = one_size(bench, size)
        out.append(result)
        bench.progress.log(
            f"B2 {size} members: p99 {result['p99_ms']} ms at 50/s, "
            f"{result['deliveries_per_s']} deliveries/s at saturation"
        )
    return {"sizes": out, "target_members": 100, "p99_target_ms": 100.0}
