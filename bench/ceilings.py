"""The two ceilings the relay is measured against, in the same run.

- The disk: PostgreSQL's own insert rate for a message-sized row, `pgbench` with custom scripts,
  one row per commit and ten rows per commit, on the same (durable) cluster.
- The transport: a bare WebSocket server on the relay's own library (`websockets`, on the event
  loop uvicorn would pick for the relay: uvloop when installed, else asyncio). It forwards frames
  as they are: `/pair/<id>/sender` -> `/pair/<id>/receiver` (1:1), `/room/<id>/sender` -> every
  `/room/<id>/receiver` (broadcast with the library's `broadcast()`). No JSON parsing, no store.

`python -m bench.ceilings serve-ws --port P` runs the bare server (the runner starts it as a
subprocess and stops it).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from typing import Any

from websockets.asyncio.server import ServerConnection, broadcast, serve

SINGLE_SCRIPT = """\\set c random(1, 10000)
INSERT INTO bench_messages
    (id, conversation_id, seq, sender_id, client_random, message_type, content, metadata, sent_at)
VALUES (gen_random_uuid()::text, 'conversation-' || :c, nextval('bench_seq'), 'sender-' || :c,
        (random() * 1e15)::bigint, 'text', convert_to(repeat('x', {size}), 'UTF8'), '{{}}', now());
"""

BATCH_SCRIPT = """\\set c random(1, 10000)
INSERT INTO bench_messages
    (id, conversation_id, seq, sender_id, client_random, message_type, content, metadata, sent_at)
SELECT gen_random_uuid()::text, 'conversation-' || :c, nextval('bench_seq'), 'sender-' || :c,
       (random() * 1e15)::bigint, 'text', convert_to(repeat('x', {size}), 'UTF8'), '{{}}', now()
FROM generate_series(1, {rows});
"""

SCHEMA = """
DROP TABLE IF EXISTS bench_messages;
DROP SEQUENCE IF EXISTS bench_seq;
CREATE SEQUENCE bench_seq;
CREATE TABLE bench_messages (
    id varchar(36) PRIMARY KEY,
    conversation_id varchar(36) NOT NULL,
    seq bigint NOT NULL,
    sender_id varchar(36) NOT NULL,
    client_random bigint NOT NULL,
    message_type varchar(10) NOT NULL,
    content bytea NOT NULL,
    metadata text NOT NULL,
    sent_at timestamptz NOT NULL,
    UNIQUE (conversation_id, seq)
);
CREATE INDEX ON bench_messages (conversation_id, sender_id, client_random);
"""


@dataclass
class PgbenchResult:
    rows_per_commit: int
    clients: int
    tps: float
    latency_ms: float

    @property
    def rows_per_s(self) -> float:
        return self.tps * self.rows_per_commit


def pgbench(
    bin_dir: str,
    port: int,
    database: str,
    *,
    rows: int,
    clients: int,
    seconds: float,
    size: int = 128,
    user: str = "whispr",
) -> PgbenchResult:
    """One pgbench run of the single-row (`rows=1`) or batched insert script."""
    psql = shutil.which("psql") or os.path.join(bin_dir, "psql")
    subprocess.run(
        [psql, "-q", "-h", "127.0.0.1", "-p", str(port), "-U", user, "-d", database, "-c", SCHEMA],
        check=True,
        capture_output=True,
        timeout=60,
    )
    script = SINGLE_SCRIPT.format(size=size) if rows == 1 else BATCH_SCRIPT.format(size=size, rows=rows)
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as handle:
        handle.write(script)
        path = handle.name
    try:
        done = subprocess.run(
            [
                os.path.join(bin_dir, "pgbench"),
                "-n",
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-U",
                user,
                "-c",
                str(clients),
                "-j",
                str(min(clients, 2)),
                "-T",
                str(max(1, round(seconds))),
                "-f",
                path,
                database,
            ],
            check=True,
            capture_output=True,
            text=True,
            timeout=seconds + 120,
        )
    finally:
        os.unlink(path)
    tps = re.search(r"tps = ([0-9.]+)", done.stdout)
    latency = re.search(r"latency average = ([0-9.]+) ms", done.stdout)
    if tps is None:
        raise RuntimeError(f"pgbench printed no tps:\n{done.stdout}\n{done.stderr}")
    return PgbenchResult(rows, clients, float(tps.group(1)), float(latency.group(1)) if latency else 0.0)


def create_database(bin_dir: str, port: int, database: str, user: str = "whispr") -> None:
    psql = shutil.which("psql") or os.path.join(bin_dir, "psql")
    subprocess.run(
        [
            psql,
            "-q",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-U",
            user,
            "-d",
            "postgres",
            "-c",
            f'DROP DATABASE IF EXISTS "{database}"',
            "-c",
            f'CREATE DATABASE "{database}"',
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )


# -- the bare WebSocket server ----------------------------------------------------------------


def loop_name() -> str:
    """The loop uvicorn's `loop="auto"` gives the relay: uvloop when importable."""
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "asyncio"
    return "uvloop"


async def serve_bare(port: int) -> None:
    receivers: dict[str, set[ServerConnection]] = {}

    async def handler(ws: ServerConnection) -> None:
        path = ws.request.path if ws.request is not None else "/"
        parts = path.strip("/").split("/")
        if len(parts) != 3 or parts[0] not in ("pair", "room") or parts[2] not in ("sender", "receiver"):
            await ws.close(1008, "unknown path")
            return
        key = f"{parts[0]}:{parts[1]}"
        if parts[2] == "receiver":
            receivers.setdefault(key, set()).add(ws)
            try:
                await ws.wait_closed()
            finally:
                receivers[key].discard(ws)
            return
        async for frame in ws:
            targets = receivers.get(key, ())
            if parts[0] == "pair":
                for target in targets:
                    await target.send(frame)
            else:
                broadcast(targets, frame)

    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set_result, None)
    async with serve(handler, "127.0.0.1", port, compression=None, ping_interval=None, max_queue=None):
        print(f"bare websocket server on 127.0.0.1:{port} ({loop_name()})", flush=True)
        await stop


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ceilings")
    sub = parser.add_subparsers(dest="command", required=True)
    ws = sub.add_parser("serve-ws", help="the bare WebSocket pair/broadcast server")
    ws.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    if args.command == "serve-ws":
        runner: Any = asyncio.run
        if loop_name() == "uvloop":
            import uvloop

            runner = uvloop.run
        runner(serve_bare(args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
