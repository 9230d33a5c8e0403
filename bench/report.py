"""The results as a table (Markdown), the ratios measured within the run, and a PNG chart:
latency percentiles vs offered rate (B1, the bare server, Synapse), memory vs sockets (B3),
history latency vs rows (B4), and fan-out p99 vs group size (B2)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _get(data: Any, *path: Any) -> Any:
    for key in path:
        if isinstance(data, dict):
            data = data.get(key)
        elif isinstance(data, list) and isinstance(key, int) and -len(data) <= key < len(data):
            data = data[key]
        else:
            return None
    return data


def _ratio(a: Any, b: Any) -> float | None:
    if isinstance(a, int | float) and isinstance(b, int | float) and b:
        return float(a) / float(b)
    return None


def _closed(section: Any, preferred: str) -> Any:
    """A closed-loop figure at `preferred` senders, else the first there is (quick runs use fewer)."""
    closed = _get(section, "closed") or {}
    if preferred in closed:
        return closed[preferred]
    return next(iter(closed.values()), None)


def ratios(data: dict[str, Any]) -> dict[str, Any]:
    r = data.get("results", {})
    b1, ceilings, synapse = r.get("B1", {}), r.get("ceilings", {}), r.get("synapse", {})
    ours16, ours64 = _closed(b1, "16"), _closed(b1, "64")
    syn = _get(synapse, "b1", "closed")
    bare64 = _closed(_get(ceilings, "bare_pairs"), "64")
    durable = [
        v
        for v in (
            _get(ours16, "throughput"),
            _get(ours64, "throughput"),
            _get(b1, "sustained"),
            _get(r, "B5", "requests_per_s"),
        )
        if isinstance(v, int | float)
    ]
    best_durable = max(durable) if durable else None
    b2_100 = next((s for s in _get(r, "B2", "sizes") or [] if s.get("members") == 100), None) or (
        _get(r, "B2", "sizes", -1) or None
    )
    b4 = _get(r, "B4", "sizes") or []
    out: dict[str, Any] = {
        "b1_vs_synapse_throughput": _ratio(_get(ours16, "throughput"), _get(syn, "throughput")),
        "b1_vs_synapse_p99": _ratio(_get(ours16, "p99_ms"), _get(syn, "p99_ms")),
        "b4_vs_synapse_p99": _ratio(_get(b4, 0, "p99_ms"), _get(synapse, "b4", "p99_ms")),
        "relay_vs_bare_pairs": _ratio(_get(ours64, "throughput"), _get(bare64, "throughput")),
        "relay_vs_bare_sustained": _ratio(_get(b1, "sustained"), _get(ceilings, "bare_pairs", "sustained")),
        "relay_vs_bare_broadcast": _ratio(
            _get(b2_100, "deliveries_per_s"), _get(ceilings, "bare_broadcast", "deliveries_per_s")
        ),
        "durable_sends_per_s": best_durable,
        "durable_vs_pgbench_batched": _ratio(best_durable, _get(ceilings, "pgbench", "batched", "rows_per_s")),
        "durable_vs_pgbench_single": _ratio(best_durable, _get(ceilings, "pgbench", "single", "rows_per_s")),
        "b4_growth_p99": _ratio(_get(b4, -1, "p99_ms"), _get(b4, 0, "p99_ms")) if len(b4) > 1 else None,
    }
    return out


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        if abs(value) >= 100:
            return f"{value:,.0f}"
        return f"{value:.{digits}f}"
    return str(value)


def _x(value: Any) -> str:
    if value is None:
        return "-"
    if value >= 10:
        return f"{value:.0f}x"
    return f"{value:.2f}x" if value >= 0.1 else f"{value:.3f}x ({value * 100:.1f} %)"


def _step(step: dict[str, Any]) -> str:
    if step.get("not_reached"):
        return "not run: a lower rate already failed"
    return f"{_fmt(step['p50_ms'])} / {_fmt(step['p95_ms'])} / {_fmt(step['p99_ms'])} ({step['lost']})"


def rows(data: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(scenario, what, figure) for every measured figure."""
    r = data.get("results", {})
    out: list[tuple[str, str, str]] = []
    b1 = r.get("B1")
    if b1 and "error" not in b1:
        out.append(("B1", "sustained msgs/s at p99 <= 50 ms", _fmt(b1.get("sustained"))))
        for step in b1.get("steps", []):
            out.append(("B1", f"{step['rate']:,} msgs/s: p50 / p95 / p99 ms (lost)", _step(step)))
        for key, c in b1.get("closed", {}).items():
            out.append(
                (
                    "B1",
                    f"closed loop x{key}: msgs/s, p50 / p99 ms",
                    f"{_fmt(c['throughput'])}, {_fmt(c['p50_ms'])} / {_fmt(c['p99_ms'])}",
                )
            )
            out.append(
                (
                    "B1",
                    f"closed loop x{key}: CPU per message, service / PostgreSQL us; busy cores",
                    f"{_fmt(c.get('service_us_per_msg'))} / {_fmt(c.get('postgres_us_per_msg'))}; "
                    f"{_fmt(c.get('busy_cores'), 2)}",
                )
            )
        sustained = next(
            (s for s in b1.get("steps", []) if s.get("rate") == b1.get("sustained") and not s.get("not_reached")), None
        )
        if sustained is not None:
            out.append(
                (
                    "B1",
                    f"at {_fmt(sustained['rate'])} msgs/s: CPU per message, service / PostgreSQL us",
                    f"{_fmt(sustained.get('service_us_per_msg'))} / {_fmt(sustained.get('postgres_us_per_msg'))}",
                )
            )
    b2 = r.get("B2")
    if b2 and "error" not in b2:
        for s in b2.get("sizes", []):
            out.append(
                (
                    "B2",
                    f"{s['members']} members: p99 all delivered at 50/s; deliveries/s saturated",
                    f"{_fmt(s['p99_ms'])} ms; {_fmt(s['deliveries_per_s'])}",
                )
            )
            out.append(
                (
                    "B2",
                    f"{s['members']} members: deliveries per service CPU-second; service / PostgreSQL us per delivery",
                    f"{_fmt(s.get('deliveries_per_cpu_s'))}; {_fmt(s.get('service_us_per_delivery'))} / "
                    f"{_fmt(s.get('postgres_us_per_delivery'))}",
                )
            )
    b3 = r.get("B3")
    if b3 and "error" not in b3:
        for s in b3.get("sizes", []):
            if "skipped" in s:
                out.append(("B3", f"{s['sockets']:,} sockets", s["skipped"]))
                continue
            out.append(
                (
                    "B3",
                    f"{s['sockets']:,} sockets: connected, KB/socket, probe p99 ms",
                    f"{s['connected']:,}, {_fmt(s['kb_per_socket'])}, {_fmt(s['probe_p99_ms'])}",
                )
            )
    b4 = r.get("B4")
    if b4 and "error" not in b4:
        for s in b4.get("sizes", []):
            out.append(
                (
                    "B4",
                    f"{s['rows']:,} rows: p50 / p99 ms, req/s",
                    f"{_fmt(s['p50_ms'])} / {_fmt(s['p99_ms'])}, {_fmt(s['requests_per_s'])}",
                )
            )
    b5 = r.get("B5")
    if b5 and "error" not in b5:
        out.append(
            (
                "B5",
                "REST send: req/s, p50 / p99 ms",
                f"{_fmt(b5['requests_per_s'])}, {_fmt(b5['p50_ms'])} / {_fmt(b5['p99_ms'])}",
            )
        )
        out.append(
            (
                "B5",
                "REST send: CPU per request, service / PostgreSQL us",
                f"{_fmt(b5.get('service_us_per_request'))} / {_fmt(b5.get('postgres_us_per_request'))}",
            )
        )
    b6 = r.get("B6")
    if b6 and "error" not in b6:
        out.append(
            (
                "B6",
                f"catch-up of {b6['messages']:,} messages: s (path, in order)",
                f"{_fmt(b6['seconds'], 3)} ({b6['path']}, {_fmt(b6['all_in_order'])})",
            )
        )
    ce = r.get("ceilings")
    if ce and "error" not in ce:
        for key in ("single", "batched"):
            pg = _get(ce, "pgbench", key)
            if pg:
                out.append(
                    ("ceiling", f"pgbench {pg['rows_per_commit']} row(s)/commit: rows/s", _fmt(pg["rows_per_s"]))
                )
        bare = ce.get("bare_pairs") or {}
        out.append(("ceiling", "bare WS pairs: sustained msgs/s at p99 <= 50 ms", _fmt(bare.get("sustained"))))
        for key, c in (bare.get("closed") or {}).items():
            out.append(
                (
                    "ceiling",
                    f"bare WS pairs closed x{key}: msgs/s, p99 ms",
                    f"{_fmt(c['throughput'])}, {_fmt(c['p99_ms'])}",
                )
            )
        bb = ce.get("bare_broadcast") or {}
        out.append(
            ("ceiling", f"bare WS broadcast to {bb.get('receivers')}: deliveries/s", _fmt(bb.get("deliveries_per_s")))
        )
    syn = r.get("synapse")
    if syn and "unavailable" in syn:
        out.append(("Synapse", "unavailable", syn["unavailable"]))
    elif syn and "error" not in syn:
        c = _get(syn, "b1", "closed") or {}
        out.append(
            (
                "Synapse",
                f"B1 closed x{c.get('concurrency')}: msgs/s, p50 / p99 ms (send->sync)",
                f"{_fmt(c.get('throughput'))}, {_fmt(c.get('p50_ms'))} / {_fmt(c.get('p99_ms'))}",
            )
        )
        for step in _get(syn, "b1", "steps") or []:
            out.append(("Synapse", f"B1 {step['rate']:,} msgs/s: p50 / p95 / p99 ms (lost)", _step(step)))
        b4s = syn.get("b4") or {}
        out.append(
            (
                "Synapse",
                f"B4 /messages ({b4s.get('rooms')} rooms x {b4s.get('events_per_room')}): p50 / p99 ms, req/s",
                f"{_fmt(b4s.get('p50_ms'))} / {_fmt(b4s.get('p99_ms'))}, {_fmt(b4s.get('requests_per_s'))}",
            )
        )
    for name, section in r.items():
        if isinstance(section, dict) and "error" in section:
            out.append((name, "FAILED", section["error"]))
    ratio = data.get("ratios") or ratios(data)
    labels = {
        "b1_vs_synapse_throughput": "B1 vs Synapse, throughput (x16 senders)",
        "b1_vs_synapse_p99": "B1 vs Synapse, p99 send->receive",
        "b4_vs_synapse_p99": "B4 (smallest size) vs Synapse /messages, p99",
        "relay_vs_bare_pairs": "relay vs bare WS, closed loop x64 msgs/s",
        "relay_vs_bare_sustained": "relay vs bare WS, sustained rate at p99 <= 50 ms",
        "relay_vs_bare_broadcast": "relay vs bare WS, broadcast deliveries/s",
        "durable_vs_pgbench_batched": "durable sends vs pgbench 10-row batches",
        "durable_vs_pgbench_single": "durable sends vs pgbench single-row commits",
        "b4_growth_p99": "B4 p99, largest / smallest size",
    }
    for key, label in labels.items():
        if ratio.get(key) is not None:
            out.append(("ratio", label, _x(ratio[key])))
    return out


def table(data: dict[str, Any]) -> str:
    lines = ["| scenario | figure | value |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows(data)]
    m = data.get("machine", {})
    loads = m.get("loadavg_samples") or {}
    lines.append("")
    lines.append(
        f"Machine: {m.get('cpus')} CPUs ({m.get('cpu', '?')}), {m.get('memory_gb')} GB, "
        f"Python {m.get('python')}, {m.get('postgresql', 'PostgreSQL')}, websockets {m.get('websockets')} "
        f"on {m.get('event_loop')}; load average during the run: min {_fmt(loads.get('min'), 2)}, "
        f"median {_fmt(loads.get('median'), 2)}, max {_fmt(loads.get('max'), 2)}."
    )
    return "\n".join(lines)


def rebuild(results_json: Path, folder: Path) -> str:
    """The table and the chart again from a results.json (e.g. the published run)."""
    import json

    data = json.loads(results_json.read_text())
    folder.mkdir(parents=True, exist_ok=True)
    text = table(data)
    (folder / "table.md").write_text(text + "\n")
    chart(data, folder / "chart.png")
    return text


def chart(data: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    r = data.get("results", {})
    fig, axes = plt.subplots(2, 2, figsize=(13, 9))
    ax = axes[0][0]
    series = [
        ("relay", _get(r, "B1", "steps")),
        ("bare WS", _get(r, "ceilings", "bare_pairs", "steps")),
        ("Synapse", _get(r, "synapse", "b1", "steps")),
    ]
    styles = {"p50_ms": ":", "p95_ms": "--", "p99_ms": "-"}
    plotted = False
    for (name, steps), color in zip(series, ("tab:blue", "tab:gray", "tab:red"), strict=True):
        if not steps:
            continue
        for key, style in styles.items():
            points = [(s["rate"], s[key]) for s in steps if s.get(key)]
            if points:
                ax.plot(*zip(*points, strict=True), style, marker="o", color=color, label=f"{name} {key[:3]}")
                plotted = True
    closed_series = [
        ("relay", _get(r, "B1", "closed")),
        ("bare WS", _get(r, "ceilings", "bare_pairs", "closed")),
        ("Synapse", {"16": _get(r, "synapse", "b1", "closed")}),
    ]
    for (name, closed), color in zip(closed_series, ("tab:blue", "tab:gray", "tab:red"), strict=True):
        for key, c in (closed or {}).items():
            if isinstance(c, dict) and c.get("throughput") and c.get("p99_ms"):
                ax.plot([c["throughput"]], [c["p99_ms"]], marker="*", markersize=12, color=color, linestyle="none")
                ax.annotate(
                    f"{name} closed x{key} p99",
                    (c["throughput"], c["p99_ms"]),
                    fontsize=6,
                    textcoords="offset points",
                    xytext=(4, 4),
                )
                plotted = True
    ax.axhline(50, color="black", linewidth=0.8, linestyle="-.")
    if plotted:
        ax.set_xscale("log")
        ax.set_yscale("log")
    ax.set_xlabel("offered rate (msgs/s); stars: closed loop at its achieved rate")
    ax.set_ylabel("send -> receive latency (ms)")
    ax.set_title("B1: latency percentiles vs offered rate")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, ncol=2)

    ax = axes[0][1]
    b3 = [s for s in _get(r, "B3", "sizes") or [] if "skipped" not in s]
    if b3:
        xs = [s["connected"] for s in b3]
        ax.plot(xs, [s["rss_connected_mb"] for s in b3], marker="o", label="relay RSS (MB)")
        ax.plot(xs, [s["rss_baseline_mb"] for s in b3], linestyle="--", label="baseline RSS (MB)")
        ax2 = ax.twinx()
        ax2.plot(xs, [s["kb_per_socket"] or 0 for s in b3], marker="s", color="tab:orange", label="KB per socket")
        ax2.set_ylabel("KB per socket")
        ax2.legend(loc="lower right", fontsize=7)
    ax.set_xlabel("connected idle sockets")
    ax.set_ylabel("resident memory (MB)")
    ax.set_title("B3: memory vs sockets")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", fontsize=7)

    ax = axes[1][0]
    b4 = _get(r, "B4", "sizes") or []
    if b4:
        xs = [s["rows"] for s in b4]
        ax.plot(xs, [s["p50_ms"] for s in b4], marker="o", linestyle=":", label="p50")
        ax.plot(xs, [s["p99_ms"] for s in b4], marker="o", label="p99")
        if all(x > 0 for x in xs):
            ax.set_xscale("log")
    syn_b4 = _get(r, "synapse", "b4")
    if syn_b4 and syn_b4.get("p99_ms"):
        ax.axhline(syn_b4["p99_ms"], color="tab:red", linestyle="--", label="Synapse /messages p99")
    ax.axhline(20, color="black", linewidth=0.8, linestyle="-.", label="target p99")
    ax.set_xlabel("messages in the table")
    ax.set_ylabel("GET messages?limit=50 latency (ms)")
    ax.set_title("B4: history latency vs rows")
    ax.legend(fontsize=7)

    ax = axes[1][1]
    b2 = _get(r, "B2", "sizes") or []
    if b2:
        xs = [s["members"] for s in b2]
        ax.plot(xs, [s["p99_ms"] for s in b2], marker="o", label="p99 until all have it, 50 msgs/s")
        ax.plot(xs, [s["p50_ms"] for s in b2], marker="o", linestyle=":", label="p50")
        ax.axhline(100, color="black", linewidth=0.8, linestyle="-.", label="target p99 (100 members)")
        if len(set(xs)) > 1:
            ax.set_xscale("log")
    ax.set_xlabel("group members")
    ax.set_ylabel("fan-out latency (ms)")
    ax.set_title("B2: group fan-out")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)

    m = data.get("machine", {})
    loads = m.get("loadavg_samples") or {}
    fig.suptitle(
        f"Whispr messaging benchmark: {m.get('cpus')} CPUs, load avg median {_fmt(loads.get('median'), 2)}"
        f"{' (quick smoke run)' if _get(data, 'options', 'quick') else ''}"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
