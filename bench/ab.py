"""Side-by-side A/B of B1's closed loop: the same load against two or more variants of the service
(source trees and/or environment variables), on one durable PostgreSQL, runs interleaved,
medians printed. The figure to steer by is CPU per message (the service's process tree and
PostgreSQL's), which stays put on a noisy machine where rates move 2x.

    .venv/bin/python -m bench.ab --variant base=/tmp/base --variant new=.         # two trees
    .venv/bin/python -m bench.ab --variant a=. --variant 'b=.:WHISPR_SEND_BATCH_MAX=16'
    .venv/bin/python -m bench.ab --variant new=. --senders 64 --seconds 10 --repeats 3 --profile
    .venv/bin/python -m bench.ab --variant new=. --repeats 1 --statements 15   # PostgreSQL's side, by statement

Each run gets a fresh database and a freshly started `whispr-messaging dev` from the variant's
tree (`python -m shared.cli dev`, PYTHONPATH pointing at it), `--senders` direct pairs made
through REST, and one closed-loop run per repeat (each sender sends its next message once the
previous one is acknowledged and received) by `bench.loadgen` processes. With `--rate`, an open
loop at that rate instead. Nothing here asserts anything: it prints.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from bench.fixtures import Rest
from bench.runner import RAISED_LIMITS, CpuMeter, Generator, exit_on_sigterm
from bench.scenarios.common import merge_step, pair_jobs
from shared.devtools.postgres import free_port, start_cluster

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Variant:
    name: str
    source: Path
    env: dict[str, str]

    @classmethod
    def parse(cls, spec: str) -> Variant:
        """`name=path[:VAR=value,VAR=value]`."""
        name, _, rest = spec.partition("=")
        path, _, assignments = rest.partition(":")
        env = dict(a.split("=", 1) for a in assignments.split(",") if a)
        return cls(name, Path(path or ".").resolve(), env)


STATEMENTS = (
    "SELECT left(regexp_replace(query, '\\s+', ' ', 'g'), 150), calls, total_exec_time, wal_bytes "
    "FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) "
    "ORDER BY total_exec_time DESC"
)


def statements(database_url: str, reset: bool = False) -> list[tuple[str, int, float, int]]:
    """`pg_stat_statements` of the database (`--statements`): query, calls, execution ms, WAL
    bytes, slowest first; or, with `reset`, start counting afresh."""
    engine = sa.create_engine(database_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            if reset:
                conn.exec_driver_sql("SELECT pg_stat_statements_reset()")
                return []
            return [(str(r[0]), int(r[1]), float(r[2]), int(r[3])) for r in conn.exec_driver_sql(STATEMENTS)]
    finally:
        engine.dispose()


def batches(url: str) -> dict[str, float]:
    """The group commit's counters from the service's /metrics: batches, sends in them, seconds."""
    wanted = {
        "whispr_send_batch_size_count": "count",
        "whispr_send_batch_size_sum": "sends",
        "whispr_send_commit_duration_seconds_sum": "seconds",
    }
    found = dict.fromkeys(wanted.values(), 0.0)
    for family in text_string_to_metric_families(httpx.get(f"{url}/metrics", timeout=10).text):
        for sample in family.samples:
            if sample.name in wanted:
                found[wanted[sample.name]] = sample.value
    return found


def fresh_database(admin_url: str, name: str) -> str:
    engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}"')
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    engine.dispose()
    return sa.engine.make_url(admin_url).set(database=name).render_as_string(hide_password=False)


class Service:
    def __init__(self, variant: Variant, database_url: str, key_path: str, log: Path, workers: int | None):
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("WHISPR_")}
        env.update(RAISED_LIMITS)
        env.update(
            {
                "DATABASE_URL": database_url,
                "WHISPR_DEV_KEY_PATH": key_path,
                "WHISPR_LOG_LEVEL": "warning",
                "PYTHONPATH": str(variant.source),
                "PYTHONUNBUFFERED": "1",
                **variant.env,
            }
        )
        command = [sys.executable, "-m", "shared.cli", "dev", "--host", "127.0.0.1", "--port", str(self.port)]
        if workers is not None:
            command += ["--workers", str(workers)]
        self.log = open(log, "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            command, cwd=variant.source, env=env, stdout=self.log, stderr=self.log, start_new_session=True
        )
        deadline = time.monotonic() + 120
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"{variant.name}: the service exited; see {log}")
            try:
                if httpx.get(f"{self.url}/health/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{variant.name}: the service did not start")
            time.sleep(0.2)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, 15)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, 9)
                self.process.wait(10)
        self.log.close()


def mint(key_path: str, user_id: str) -> str:
    from shared.auth.tokens import mint_dev_token
    from shared.config import load_settings

    return mint_dev_token(load_settings({"WHISPR_DEV_KEY_PATH": key_path}), user_id, ttl_seconds=6 * 3600)


def run_once(
    variant: Variant, cluster: Any, key_path: str, workdir: Path, index: int, args: argparse.Namespace
) -> dict[str, Any]:
    database_url = fresh_database(cluster.url, f"ab_{index}")
    service = Service(variant, database_url, key_path, workdir / f"service-{variant.name}.log", args.workers)
    try:
        rest = Rest(service.url, lambda user: mint(key_path, user))
        try:
            pairs = rest.pairs(args.senders)
        finally:
            rest.close()
        entries = [
            {
                "sender": mint(key_path, p.sender_id),
                "receiver": mint(key_path, p.receiver_id),
                "receiver_id": p.receiver_id,
                "conversation": p.conversation_id,
                "pair": i,
            }
            for i, p in enumerate(pairs)
        ]
        ws_url = service.url.replace("http://", "ws://") + "/messaging/socket/websocket"
        base: dict[str, Any] = {"proto": "phx", "ws_url": ws_url, "grace": 10.0, "deadline": args.seconds + 600}
        if args.rate:
            base["steps"] = [{"rate": args.rate, "duration": args.seconds}]
        else:
            base["closed"] = {"duration": args.seconds}
        # a short warm-up (statements prepared, caches filled), not counted
        warm = {**base, "closed": {"duration": 1.0}}
        warm.pop("steps", None)
        _drive(pair_jobs(entries, args.generators, warm), workdir, f"{variant.name}-warm", None, None)
        profile = workdir / f"profile-{variant.name}-{index}.txt" if args.profile else None
        if args.statements:
            statements(database_url, reset=True)
        before = batches(service.url)
        results, cpu = _drive(
            pair_jobs(entries, args.generators, base),
            workdir,
            variant.name,
            (service.process.pid, cluster.postmaster_pid()),
            (profile, args.seconds),
        )
        top = statements(database_url) if args.statements else []
        after = batches(service.url)
    finally:
        service.stop()
    step = merge_step(results, "s0" if args.rate else "closed")
    received = step["received"]
    out = {
        "variant": variant.name,
        "msgs_per_s": received / args.seconds,
        "p50_ms": step["latency"]["p50_ms"],
        "p99_ms": step["latency"]["p99_ms"],
        "lost": step["lost"],
        "errors": step["errors"],
        "service_us": cpu["service_s"] / received * 1e6 if received else None,
        "postgres_us": cpu["postgres_s"] / received * 1e6 if received else None,
        "busy_cores": cpu.get("machine_busy_cores"),
        "service_system_share": cpu["service_system_s"] / cpu["service_s"] if cpu.get("service_s") else None,
        "load": os.getloadavg()[0],
    }
    count = after["count"] - before["count"]
    if count:  # one worker's batches only with --workers (the port reaches one of them)
        out["batch_size"] = (after["sends"] - before["sends"]) / count
        out["batch_ms"] = (after["seconds"] - before["seconds"]) / count * 1000
    if top and received:  # per message: calls, execution us, WAL bytes
        out["statements"] = [(q, calls / received, ms * 1000 / received, wal / received) for q, calls, ms, wal in top]
    if profile is not None and profile.exists():
        from bench import profile as prof

        out["profile"] = str(profile)
        out["profile_summary"] = prof.summarize(profile)
    return out


def batch_text(run: dict[str, Any]) -> str:
    if "batch_size" not in run:
        return ""
    return f", batches of {run['batch_size']:.1f} sends in {run['batch_ms']:.1f} ms"


def _drive(
    jobs: list[dict[str, Any]],
    workdir: Path,
    label: str,
    pids: tuple[int, int | None] | None,
    profile: tuple[Path | None, float] | None,
) -> tuple[list[dict[str, Any]], dict[str, float]]:
    gens = [Generator(job, workdir, f"{label}-{i}") for i, job in enumerate(jobs)]
    try:
        for g in gens:
            g.expect("ready", 300)
        meter = CpuMeter(*pids).start() if pids else None
        spy = None
        if profile is not None and profile[0] is not None and pids is not None:
            from bench import profile as prof

            spy = prof.record(pids[0], profile[1], profile[0], "raw", gil=True, subprocesses=True)
        for g in gens:
            g.tell("go")
        results = [g.expect("result", 900) for g in gens]
        cpu = meter.stop() if meter else {}
        if spy is not None:
            spy.wait(120)
        return results, cpu
    finally:
        for g in gens:
            g.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", action="append", required=True, help="name=path[:VAR=value,...]")
    parser.add_argument("--senders", type=int, default=64, help="pairs, one sender each (default 64)")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=float, help="an open loop at this many msgs/s instead of the closed loop")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--generators", type=int, default=2)
    parser.add_argument("--workers", type=int, help="pass --workers N to `dev`")
    parser.add_argument("--profile", action="store_true", help="py-spy each run (raw stacks, summed)")
    parser.add_argument("--json", type=Path, help="write every run here (and --profile's raw stacks beside it)")
    parser.add_argument(
        "--statements", type=int, default=0, help="load pg_stat_statements; print each run's top N per message"
    )
    parser.add_argument(
        "--pg-option", action="append", default=[], help="a PostgreSQL setting for the cluster, e.g. max_wal_size=4GB"
    )
    args = parser.parse_args(argv)
    variants = [Variant.parse(v) for v in args.variant]
    exit_on_sigterm()
    cluster = start_cluster(durable=True)
    runs: list[dict[str, Any]] = []
    try:
        extra = [f"-c {o}" for o in args.pg_option]
        if args.statements:  # the library loaded (a little CPU in every variant alike)
            extra += ["-c shared_preload_libraries=pg_stat_statements", "-c pg_stat_statements.track=all"]
        if extra:  # a restart with them
            cluster.stop_server("fast")
            cluster.options += " " + " ".join(extra)
            cluster.start_server()
        with tempfile.TemporaryDirectory(prefix="whispr-ab-") as tmp:
            workdir = Path(tmp)
            key_path = str(workdir / "dev-key.pem")
            from shared.auth.keys import load_or_create_dev_key

            load_or_create_dev_key(key_path)
            for repeat in range(args.repeats):
                for i, variant in enumerate(variants):
                    run = run_once(variant, cluster, key_path, workdir, repeat * len(variants) + i, args)
                    if args.json and "profile" in run:  # the raw stacks outlive the run's directory
                        kept = args.json.with_name(f"{args.json.stem}-{Path(run['profile']).name}")
                        shutil.copyfile(run["profile"], kept)
                        run["profile"] = str(kept)
                    runs.append(run)
                    print(
                        f"  {repeat + 1}/{args.repeats} {variant.name}: {run['msgs_per_s']:,.0f} msgs/s, "
                        f"p50 {run['p50_ms']:.1f} p99 {run['p99_ms']:.1f} ms, lost {run['lost']}, "
                        f"service {run['service_us']:,.0f} us/msg, postgres {run['postgres_us']:,.0f} us/msg, "
                        f"(system {run['service_system_share']:.0%}), "
                        f"busy cores {run['busy_cores']:.2f}, load {run['load']:.2f}"
                        f"{batch_text(run)}",
                        flush=True,
                    )
                    for query, calls, us, wal in run.get("statements", [])[: args.statements]:
                        print(f"    {us:6.1f} us {wal:7.1f} B WAL {calls:6.3f} calls/msg  {query}")
                    if "profile_summary" in run:
                        summary = run["profile_summary"]
                        print("    threads:", json.dumps(summary["threads"]))
                        for frame, share in summary["own"][:15]:
                            print(f"    {share * 100:5.1f}% {frame}")
    finally:
        cluster.stop()
    print(f"\nmedians of {args.repeats}, {args.senders} senders, {'rate ' + str(args.rate) if args.rate else 'closed'}")
    print(f"{'variant':16} {'msgs/s':>9} {'p50':>7} {'p99':>7} {'service us':>11} {'postgres us':>12} {'cores':>6}")
    for variant in variants:
        mine = [r for r in runs if r["variant"] == variant.name]

        def med(key: str, mine: list[dict[str, Any]] = mine) -> float:
            return float(statistics.median(r[key] for r in mine if r[key] is not None))

        print(
            f"{variant.name:16} {med('msgs_per_s'):>9,.0f} {med('p50_ms'):>7.1f} {med('p99_ms'):>7.1f} "
            f"{med('service_us'):>11,.0f} {med('postgres_us'):>12,.0f} {med('busy_cores'):>6.2f}"
        )
    if args.json:
        args.json.write_text(json.dumps(runs, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
