"""What a message costs PostgreSQL, by statement, row and index (docs/performance.md, issue 16):
the group commit driven directly, in one process, against a fresh durable database, for one
or more source trees side by side (interleaved, medians). A diagnostic, not a test.

    .venv/bin/python -m bench.pg_cost --variant base=/tmp/base --variant new=.
    .venv/bin/python -m bench.pg_cost --variant new=. --rounds 100 --repeats 1 --statements 12
    .venv/bin/python -m bench.pg_cost --variant a=. --variant 'b=.:ALTER TABLE events SET (fillfactor = 90)'

A variant is `name=path`, optionally `:SQL` run once the database is migrated (a schema
change measured before it is written as a migration).

B1's rates (and so its batch sizes, and so PostgreSQL's CPU per message) move 2x with the
machine's other load; this takes the relay, the sockets and the load generator out so the
schema's cost is what moves. For each variant and repeat, a child process running from the
variant's tree (PYTHONPATH) migrates a fresh database on one durable cluster, makes
`--senders` direct conversations with every receiver online (in B1 nobody is pushed), then runs
`--warmup` rounds unmeasured and `--rounds` measured ones: a round is one `send_batch` of one
128-byte text per conversation, B1's body (and B1's worst case for the per-conversation work:
one `seq` UPDATE, lock and member list per message), and every third round the push planner's passes
(`notifications.run_once`, as the dev process's worker runs them once a second over B1's
~200 events).

Per message, over the measured rounds:

- CPU (from /proc): the PostgreSQL backends serving the database (the child's connections),
  PostgreSQL's whole process tree (adds the checkpointer, WAL writer and autovacuum, which grow
  with wall time), and the child's own Python;
- WAL bytes (the WAL position's advance: the whole cluster's, autovacuum's included);
- rows written, by table and event name (counted), the share of updates that were HOT, and the
  bytes each table and index grew by;
- with `--statements N` (`pg_stat_statements` loaded into the cluster, which costs a little CPU
  in every variant alike): the N statements that took longest, each with its calls, rows,
  execution and planning time and WAL bytes per message, and the WAL records, full-page images and commits
  they add up to. Execution time is wall time inside the server:
  the COMMIT's includes the wait for the WAL flush.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
CHILD_LIMITS = {
    "WHISPR_MESSAGES_PER_MINUTE": "1000000000",
    "WHISPR_MESSAGES_BURST": "10000000",
    "WHISPR_GROUP_CREATIONS_PER_DAY": "10000000",
}
TABLES = ("messages", "events", "event_targets", "conversations", "notification_queue", "outbox_cursors")


# --- the child: runs from the variant's tree; imports nothing from bench/ ---------------------


def _ticks(pid: int, children: bool = False) -> int:
    """utime + stime of a process (with `children`: also of its reaped children), in clock ticks."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    own = int(fields[11]) + int(fields[12])
    return own + (int(fields[13]) + int(fields[14]) if children else 0)


def _tree_ticks(root: int) -> int:
    """CPU of a process and every live descendant, plus what their reaped children used."""
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    ppid = int(handle.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            kids.setdefault(ppid, []).append(int(entry))
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += _ticks(pid, children=True)
        todo.extend(kids.get(pid, []))
    return total


def _snapshot(conn: Any) -> dict[str, Any]:
    """Counted in the tables themselves (the cumulative statistics views lag by up to a second or
    more per backend): rows by table and event name, index sizes, the WAL position; HOT updates
    from `pg_stat_user_tables` (a ratio, which the lag barely moves)."""

    def rows(sql: str) -> list[Any]:
        return list(conn.exec_driver_sql(sql).all())

    counted = {
        str(r[0]): int(r[1])
        for r in rows(
            "SELECT 'events: ' || name, count(*) FROM events GROUP BY name "
            "UNION ALL SELECT 'messages', count(*) FROM messages "
            "UNION ALL SELECT 'event_targets', count(*) FROM event_targets "
            "UNION ALL SELECT 'notification_queue', count(*) FROM notification_queue"
        )
    }
    updates = {
        r[0]: {"upd": int(r[1]), "hot": int(r[2])}
        for r in rows(
            "SELECT relname, n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables "
            "WHERE relname IN ('conversations', 'events', 'messages', 'outbox_cursors')"
        )
    }
    indexes = {
        r[0]: int(r[1])
        for r in rows(
            "SELECT c.relname, pg_relation_size(c.oid) FROM pg_index i "
            "JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid "
            f"WHERE t.relname IN {TABLES!r}"
        )
    }
    heaps = {
        r[0]: int(r[1])
        for r in rows(f"SELECT relname, pg_relation_size(oid) FROM pg_class WHERE relname IN {TABLES!r}")
    }
    lsn = rows("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn")[0][0]
    return {"rows": counted, "updates": updates, "indexes": indexes, "heaps": heaps, "lsn": int(lsn)}


def child(args: argparse.Namespace) -> None:
    if sys.path and Path(sys.path[0]).resolve() == HERE.parent:
        del sys.path[0]  # this file's folder: its siblings are not modules of the variant's tree
    import secrets
    import uuid

    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    from shared.app import conversations, notifications
    from shared.app.batch_send import SendRequest, send_batch
    from shared.bootstrap import build_services
    from shared.config import load_settings
    from shared.domain.models import Actor, NewMessage
    from shared.storage.migrate import upgrade

    settings = load_settings({**CHILD_LIMITS, "DATABASE_URL": args.url, "WHISPR_DEV_KEY_PATH": args.key})
    upgrade(settings)
    if args.sql:
        ddl = create_engine(args.url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
        with ddl.connect() as conn:
            conn.exec_driver_sql(args.sql)
        ddl.dispose()
    svc = build_services(settings)
    assert svc.state is not None
    pairs = []
    for _ in range(args.senders):
        sender, receiver = Actor(str(uuid.uuid4())), str(uuid.uuid4())
        conversation_id = conversations.create_direct(svc, sender, receiver).view["id"]
        svc.state.connect(receiver, None)  # online: the planner pushes nobody, as in B1
        svc.state.connect(sender.user_id, None)
        pairs.append((sender, conversation_id))

    def content() -> str:  # B1's body (bench.loadgen.content): "<step>:<send time, ns>:xxx...", 128 bytes
        head = f"closed:{time.monotonic_ns()}:"
        return head + "x" * (128 - len(head))

    def round_(i: int) -> None:
        batch = [
            SendRequest(s, c, NewMessage(content=content(), message_type="text", client_random=secrets.randbits(32)))
            for s, c in pairs
        ]
        outcomes = send_batch(svc, batch)
        failed = [o for o in outcomes if isinstance(o, Exception)]
        if failed:
            raise RuntimeError(f"{len(failed)} sends failed: {failed[0]!r}")
        if i % 3 == 2:
            notifications.run_once(svc)

    # the probe's own connection, outside the service's pool (its CPU is not the service's)
    probe = create_engine(args.url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    with probe.connect() as conn:
        conn.exec_driver_sql("CHECKPOINT")
    for i in range(args.warmup):
        round_(i)
    notifications.run_once(svc)
    tick = os.sysconf("SC_CLK_TCK")
    with probe.connect() as conn:
        statements = bool(args.statements) and bool(
            conn.exec_driver_sql("SELECT count(*) FROM pg_extension WHERE extname = 'pg_stat_statements'").scalar()
        )
        time.sleep(1.5)  # the warm-up's table counters flushed
        mine = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
        if statements:
            conn.exec_driver_sql("SELECT pg_stat_statements_reset()")
        before = _snapshot(conn)
        backends = [
            int(r[0])
            for r in conn.execute(
                text("SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> :me"),
                {"me": mine},
            )
        ]
    cpu0 = {pid: _ticks(pid) for pid in backends}
    tree0 = _tree_ticks(args.postmaster)
    py0 = resource.getrusage(resource.RUSAGE_SELF)
    wall0 = time.perf_counter()
    for i in range(args.rounds):
        round_(i)
    notifications.run_once(svc)
    wall = time.perf_counter() - wall0
    py1 = resource.getrusage(resource.RUSAGE_SELF)
    tree1 = _tree_ticks(args.postmaster)
    cpu1 = {pid: _ticks(pid) for pid in backends}
    with probe.connect() as conn:
        late = [
            int(r[0])
            for r in conn.execute(
                text("SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> :me"),
                {"me": conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()},
            )
        ]
        time.sleep(1.5)  # the table counters flushed (an idle backend flushes within a second)
        after = _snapshot(conn)
        top: list[dict[str, Any]] = []
        if statements:
            top = [
                dict(r._mapping)
                for r in conn.exec_driver_sql(
                    "SELECT left(regexp_replace(query, '\\s+', ' ', 'g'), 160) AS query, calls, rows, "
                    "total_exec_time AS ms, total_plan_time AS plan_ms, wal_bytes, wal_records, wal_fpi "
                    "FROM pg_stat_statements "
                    "WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) "
                    "ORDER BY total_exec_time DESC",
                )
            ]
    svc.close()
    probe.dispose()
    n = args.rounds * args.senders
    per = 1e6 / n / tick
    result = {
        "messages": n,
        "seconds": wall,
        "pg_backends_us": sum(cpu1.get(p, 0) - cpu0[p] for p in backends) * per,
        "pg_tree_us": (tree1 - tree0) * per,
        "python_us": (py1.ru_utime + py1.ru_stime - py0.ru_utime - py0.ru_stime) / n * 1e6,
        "new_backends": sorted(set(late) - set(backends)),
        "wal_bytes": (after["lsn"] - before["lsn"]) / n,
        "wal_records": sum(float(t["wal_records"]) for t in top) / n if top else None,
        "wal_fpi": sum(float(t["wal_fpi"]) for t in top) / n if top else None,
        "commits_per_batch": sum(t["calls"] for t in top if t["query"] == "COMMIT") / args.rounds if top else None,
        "rows": {k: (v - before["rows"].get(k, 0)) / n for k, v in sorted(after["rows"].items())},
        "hot_share": {
            name: (u["hot"] - before["updates"][name]["hot"]) / (u["upd"] - before["updates"][name]["upd"])
            for name, u in sorted(after["updates"].items())
            if u["upd"] > before["updates"][name]["upd"]
        },
        "index_bytes": {k: (v - before["indexes"].get(k, 0)) / n for k, v in sorted(after["indexes"].items())},
        "heap_bytes": {k: (v - before["heaps"].get(k, 0)) / n for k, v in sorted(after["heaps"].items())},
        "statements": [
            {
                "query": s["query"],
                "calls": s["calls"] / args.rounds,
                "rows_per_msg": s["rows"] / n,
                "exec_us_per_msg": s["ms"] * 1000 / n,
                "plan_us_per_msg": s["plan_ms"] * 1000 / n,
                "wal_bytes_per_msg": float(s["wal_bytes"]) / n,
            }
            for s in top[: args.statements]
        ],
    }
    print("RESULT " + json.dumps(result), flush=True)


# --- the parent -------------------------------------------------------------------------------


def run_variant(
    name: str, source: Path, sql: str, cluster: Any, key: str, index: int, args: argparse.Namespace
) -> dict[str, Any]:
    import sqlalchemy as sa

    database = f"pgc_{index}"
    admin = sa.create_engine(cluster.url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{database}"')
        conn.exec_driver_sql(f'CREATE DATABASE "{database}"')
    admin.dispose()
    url = sa.engine.make_url(cluster.url).set(database=database).render_as_string(hide_password=False)
    if args.statements:
        engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        engine.dispose()
    env = {k: v for k, v in os.environ.items() if not k.startswith("WHISPR_") and k != "DATABASE_URL"}
    env["PYTHONPATH"] = str(source)
    command = [
        sys.executable,
        str(HERE),
        "--child",
        "--url",
        url,
        "--key",
        key,
        "--postmaster",
        str(cluster.postmaster_pid()),
        "--senders",
        str(args.senders),
        "--rounds",
        str(args.rounds),
        "--warmup",
        str(args.warmup),
        "--statements",
        str(args.statements),
        "--sql",
        sql,
    ]
    done = subprocess.run(command, cwd=source, env=env, capture_output=True, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{name}: the child failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(lines[-1].removeprefix("RESULT "))
    result["variant"] = name
    result["load"] = os.getloadavg()[0]
    return result


def show(run: dict[str, Any]) -> None:
    extra = ""
    if run["wal_records"] is not None:
        extra = (
            f" ({run['wal_records']:.1f} records, {run['wal_fpi']:.2f} FPI by statement), "
            f"{run['commits_per_batch']:.1f} commits/batch"
        )
    print(
        f"  {run['variant']}: PostgreSQL backends {run['pg_backends_us']:,.0f} us/msg, tree {run['pg_tree_us']:,.0f}, "
        f"Python {run['python_us']:,.0f}; WAL {run['wal_bytes']:,.0f} B/msg{extra}; "
        f"{run['messages'] / run['seconds']:,.0f} msgs/s, load {run['load']:.1f}",
        flush=True,
    )


def detail(run: dict[str, Any]) -> None:
    print(f"\n  {run['variant']}, per message: rows written")
    for name, count in run["rows"].items():
        if count:
            print(f"    {name:45} {count:7.3f}")
    print("  HOT share of updates: " + ", ".join(f"{k} {v:.0%}" for k, v in run["hot_share"].items()))
    print("  heap and index bytes grown per message")
    for name, grown in {**run["heap_bytes"], **run["index_bytes"]}.items():
        if grown:
            print(f"    {name:45} {grown:7.1f}")
    if run["statements"]:
        print("  statements by execution time (per message: exec and planning us, rows, WAL bytes; calls per batch)")
        for s in run["statements"]:
            print(
                f"    {s['exec_us_per_msg']:7.1f} us (+{s['plan_us_per_msg']:4.1f} planning) "
                f"{s['rows_per_msg']:5.2f} rows "
                f"{s['wal_bytes_per_msg']:7.1f} B "
                f"{s['calls']:6.2f}/batch  {s['query']}"
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", action="append", default=[], help="name=path (a source tree)")
    parser.add_argument("--senders", type=int, default=64, help="conversations, one send each per round")
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--statements", type=int, default=0, help="load pg_stat_statements; print the top N")
    parser.add_argument("--json", type=Path, help="write every run here")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--key", help=argparse.SUPPRESS)
    parser.add_argument("--postmaster", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--sql", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args)
        return 0
    sys.path.insert(0, str(HERE.parent.parent))
    from shared.devtools.postgres import start_cluster

    variants = []
    for spec in args.variant:
        name, _, rest = spec.partition("=")
        path, _, sql = rest.partition(":")
        variants.append((name, Path(path or ".").resolve(), sql))
    cluster = start_cluster(durable=True)
    runs: list[dict[str, Any]] = []
    try:
        if args.statements:  # a restart with the library loaded
            cluster.stop_server("fast")
            cluster.options += (
                " -c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=all"
                " -c pg_stat_statements.track_planning=on"
            )
            cluster.start_server()
        with tempfile.TemporaryDirectory(prefix="whispr-pgcost-") as tmp:
            key = str(Path(tmp) / "dev-key.pem")
            for repeat in range(args.repeats):
                for i, (name, source, sql) in enumerate(variants):
                    run = run_variant(name, source, sql, cluster, key, repeat * len(variants) + i, args)
                    runs.append(run)
                    show(run)
    finally:
        cluster.stop()
    for name, _, _ in variants:
        mine = [r for r in runs if r["variant"] == name]
        detail(min(mine, key=lambda r: r["pg_backends_us"]))
    print(f"\nmedians of {args.repeats} ({args.rounds} rounds of {args.senders} sends)")
    print(f"{'variant':12} {'pg backends us':>15} {'pg tree us':>11} {'python us':>10} {'WAL B':>8}")
    for name, _, _ in variants:
        mine = [r for r in runs if r["variant"] == name]

        def med(key: str, mine: list[dict[str, Any]] = mine) -> float:
            return float(statistics.median(r[key] for r in mine))

        print(
            f"{name:12} {med('pg_backends_us'):>15,.0f} {med('pg_tree_us'):>11,.0f} {med('python_us'):>10,.0f} "
            f"{med('wal_bytes'):>8,.0f}"
        )
    if args.json:
        args.json.write_text(json.dumps(runs, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
