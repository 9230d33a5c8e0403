"""B1, 1:1 chat over sockets: K pairs connected; senders push `new_message` on `conversation:<id>`
at a fixed total rate (open loop), receivers get `new_message` on `user:<id>`.

Figures: p50/p95/p99 send->receive at 500, 1,000, 2,000, 5,000 msgs/s (and the rates between,
until one fails), the highest rate whose p99 stays <= 50 ms with nothing lost, and a closed-loop
run (each of C senders sends its next message when the previous one is acknowledged and received)
at 16 and 64 senders: the saturated rate, compared with Synapse (16) and the bare server (64).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bench.scenarios.common import P99_TARGET_MS, cpu_figures, median_of, merge_step, pair_jobs, phx_pairs

if TYPE_CHECKING:
    from bench.runner import Bench

SPEC_RATES = [500, 1000, 2000, 5000]
BETWEEN = [50, 100, 250, 1500, 2500, 3000, 7500, 10000]  # 2,500: issue 16's floor, measured as such
CLOSED = [16, 64]


def one_rate(
    bench: Bench,
    entries: list[dict[str, Any]],
    rate: float,
    duration: float,
    proto: str = "phx",
    ws_url: str | None = None,
    grace: float = 30.0,
    http: tuple[str, int] | None = None,
) -> dict[str, Any]:
    base: dict[str, Any] = {
        "proto": proto,
        "ws_url": ws_url or bench.require_service().ws_url,
        "steps": [{"rate": rate, "duration": duration}],
        "grace": grace,
    }
    if http is not None:
        base["http"] = list(http)
    results = bench.run_generators(
        pair_jobs(entries, bench.options.generators, base), f"{proto} {rate:.0f}/s", duration
    )
    step = merge_step(results, "s0")
    step["offered"] = rate
    step["achieved"] = step["received"] / duration
    step["generator_load"] = bench.generator_load(results)
    if proto == "phx":
        step.update(cpu_figures(results, step["received"]))
    p99 = step["latency"]["p99_ms"]
    step["generator_kept_up"] = step["sent"] >= 0.95 * rate * duration
    step["ok"] = (
        p99 is not None
        and p99 <= P99_TARGET_MS
        and step["lost"] == 0
        and step["errors"] == 0
        and step["generator_kept_up"]
    )
    return step


def combine(rate: float, runs: list[dict[str, Any]]) -> dict[str, Any]:
    ok_runs = sum(1 for r in runs if r["ok"])
    return {
        "rate": rate,
        "p50_ms": median_of(runs, "latency", "p50_ms"),
        "p95_ms": median_of(runs, "latency", "p95_ms"),
        "p99_ms": median_of(runs, "latency", "p99_ms"),
        "ack_p50_ms": median_of(runs, "ack", "p50_ms"),
        "ack_p99_ms": median_of(runs, "ack", "p99_ms"),
        "achieved": median_of(runs, "achieved"),
        "lost": max(r["lost"] for r in runs),
        "errors": max(r["errors"] for r in runs),
        "generator_load": max(r["generator_load"] for r in runs),
        "service_us_per_msg": median_of(runs, "service_us_per_item"),
        "postgres_us_per_msg": median_of(runs, "postgres_us_per_item"),
        "busy_cores": median_of(runs, "busy_cores"),
        "ok": ok_runs * 2 > len(runs),
        "runs": runs,
    }


def base_of(proto: str, ws_url: str | None, duration: float, http: tuple[str, int] | None) -> dict[str, Any]:
    base: dict[str, Any] = {"proto": proto, "ws_url": ws_url or "", "closed": {"duration": duration}, "grace": 10.0}
    if http is not None:
        base["http"] = list(http)
    return base


def profile_run(bench: Bench, entries: list[dict[str, Any]], duration: float, base: dict[str, Any]) -> dict[str, Any]:
    """One more closed-loop run (not counted), twice: py-spy's raw stacks, then its flame graph."""
    from bench import profile

    assert bench.service is not None
    out: dict[str, Any] = {}
    for fmt, name in (("raw", f"profile-b1-x{len(entries)}.txt"), ("flamegraph", f"profile-b1-x{len(entries)}.svg")):
        path = bench.run_dir / name
        spy: list[Any] = []

        def during(_: list[Any], fmt: str = fmt, path: Any = path, spy: list[Any] = spy) -> None:
            spy.append(profile.record(bench.service.pid, duration, path, fmt, subprocesses=bench.options.workers > 1))  # type: ignore[union-attr]

        bench.run_generators(
            pair_jobs(entries, bench.options.generators, base),
            f"profiling x{len(entries)} ({fmt})",
            duration,
            during=during,
        )
        for process in spy:
            process.wait(duration + 60)
        out[fmt] = str(path)
        if fmt == "raw" and path.exists():
            out["summary"] = profile.summarize(path)
    return out


def closed_loop(
    bench: Bench,
    entries: list[dict[str, Any]],
    concurrency: int,
    duration: float,
    proto: str = "phx",
    ws_url: str | None = None,
    http: tuple[str, int] | None = None,
    label: str | None = None,
) -> dict[str, Any]:
    runs = []
    for _ in range(bench.repeats):
        base = base_of(proto, ws_url, duration, http)
        results = bench.run_generators(
            pair_jobs(entries[:concurrency], bench.options.generators, base),
            label or f"{proto} closed x{concurrency}",
            duration,
        )
        step = merge_step(results, "closed")
        step["throughput"] = step["received"] / duration
        step["generator_load"] = bench.generator_load(results)
        if proto == "phx":
            step.update(cpu_figures(results, step["received"]))
        runs.append(step)
    profile = None
    profiled = 4 if bench.quick else max(CLOSED)  # the saturated case, once
    if bench.options.profile and proto == "phx" and bench.service is not None and concurrency == profiled:
        profile = profile_run(bench, entries[:concurrency], duration, base_of(proto, ws_url, duration, http))
    return {
        "profile": profile,
        "concurrency": concurrency,
        "throughput": median_of(runs, "throughput"),
        "p50_ms": median_of(runs, "latency", "p50_ms"),
        "p99_ms": median_of(runs, "latency", "p99_ms"),
        "ack_p50_ms": median_of(runs, "ack", "p50_ms"),
        "ack_p99_ms": median_of(runs, "ack", "p99_ms"),
        "errors": max(r["errors"] for r in runs),
        "generator_load": max(r["generator_load"] for r in runs),
        "service_us_per_msg": median_of(runs, "service_us_per_item"),
        "postgres_us_per_msg": median_of(runs, "postgres_us_per_item"),
        "busy_cores": median_of(runs, "busy_cores"),
        "runs": runs,
    }


def sweep(
    bench: Bench,
    entries: list[dict[str, Any]],
    rates: list[int],
    spec_rates: list[int],
    duration: float,
    proto: str = "phx",
    ws_url: str | None = None,
    http: tuple[str, int] | None = None,
) -> tuple[list[dict[str, Any]], float | None]:
    """Rates in order, up to the first one that fails (p99 over 50 ms, a loss or an error): the
    higher ones are recorded as not reached."""
    steps = []
    failed = False
    sustained: float | None = None
    for rate in rates:
        if failed:  # past saturation the latency only grows with the run's length: not a figure
            steps.append({"rate": rate, "not_reached": True})
            continue
        runs = [
            one_rate(bench, entries, rate, duration, proto, ws_url, grace=3.0 if bench.quick else 30.0, http=http)
            for _ in range(bench.repeats)
        ]
        step = combine(rate, runs)
        steps.append(step)
        bench.progress.log(
            f"{proto} {rate}/s: p50 {step['p50_ms']} p99 {step['p99_ms']} ms, "
            f"lost {step['lost']}, {'ok' if step['ok'] else 'over'}"
        )
        if step["ok"] and not failed:
            sustained = float(rate)
        else:
            failed = True
    return steps, sustained


def run(bench: Bench) -> dict[str, Any]:
    pairs_count = 8 if bench.quick else 64
    rest = bench.rest()
    try:
        pairs = rest.pairs(pairs_count)
    finally:
        rest.close()
    entries = phx_pairs(bench, pairs)
    rates = [200] if bench.quick else sorted(SPEC_RATES + BETWEEN)
    steps, sustained = sweep(bench, entries, rates, SPEC_RATES, 1.0 if bench.quick else 10.0)
    ws_url = bench.require_service().ws_url
    closed = {
        str(c): closed_loop(bench, entries, c, 1.0 if bench.quick else 10.0, ws_url=ws_url)
        for c in ([4] if bench.quick else CLOSED)
    }
    return {
        "pairs": pairs_count,
        "steps": steps,
        "sustained": sustained,
        "closed": closed,
        "p99_target_ms": P99_TARGET_MS,
    }
