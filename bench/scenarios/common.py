"""Helpers the scenarios share: generator jobs for pairs, merging the generators' results."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bench.runner import latency_summary, median, per_item_us, split

if TYPE_CHECKING:
    from bench.fixtures import Pair
    from bench.runner import Bench

P99_TARGET_MS = 50.0


def phx_pairs(bench: Bench, pairs: list[Pair]) -> list[dict[str, Any]]:
    return [
        {
            "sender": bench.mint(p.sender_id),
            "receiver": bench.mint(p.receiver_id),
            "receiver_id": p.receiver_id,
            "conversation": p.conversation_id,
            "pair": i,
        }
        for i, p in enumerate(pairs)
    ]


def pair_jobs(entries: list[dict[str, Any]], generators: int, base: dict[str, Any]) -> list[dict[str, Any]]:
    """The pairs split over the generator processes; rates in `steps` are divided between them."""
    chunks = split(entries, generators)
    jobs = []
    for chunk in chunks:
        job = {**base, "mode": "pairs", "pairs": chunk}
        if "steps" in base:
            job["steps"] = [{**s, "rate": float(s["rate"]) / len(chunks)} for s in base["steps"]]
        jobs.append(job)
    return jobs


def merge_step(results: list[dict[str, Any]], name: str) -> dict[str, Any]:
    """One step of every generator as one: counts summed, latencies pooled."""
    steps = [r[name] for r in results]
    lat = [v for s in steps for v in s["lat_us"]]
    ack = [v for s in steps for v in s["ack_us"]]
    out: dict[str, Any] = {k: sum(s[k] for s in steps) for k in ("sent", "acked", "errors", "received")}
    out["lost"] = max(0, out["sent"] - out["errors"] - out["received"])
    out["latency"] = latency_summary(lat)
    out["ack"] = latency_summary(ack)
    out["send_span_s"] = max(s["send_span_s"] for s in steps)
    return out


def median_of(runs: list[dict[str, Any]], *path: str) -> float | None:
    values: list[float | None] = []
    for run in runs:
        value: Any = run
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        values.append(value if isinstance(value, int | float) else None)
    return median(values)


def cpu_figures(results: list[dict[str, Any]], items: int) -> dict[str, Any]:
    """What the run cost: the CPU seconds measured by the runner (the service's process tree,
    PostgreSQL's, the machine's busy cores) and the service's and PostgreSQL's CPU per item
    (message or delivery) in microseconds."""
    cpu = results[0].get("cpu") if results else None
    per = per_item_us(cpu, items)
    return {
        "cpu": cpu,
        "service_us_per_item": per["service_us"],
        "postgres_us_per_item": per["postgres_us"],
        "busy_cores": cpu.get("machine_busy_cores") if cpu else None,
    }
