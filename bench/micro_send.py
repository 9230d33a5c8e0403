"""Micro-benchmark of the socket send path (group commit): N sends through the relay over real
sockets, against PostgreSQL, printing messages/s, send->reply p50/p99 and the service's CPU per
send for each variant, and the SQL statements / network round trips one send costs.

    .venv/bin/python bench/micro_send.py                      # group commit on vs off
    .venv/bin/python bench/micro_send.py --baseline /tmp/src  # also a tree without group commit

The service runs as `python -m shared.cli dev` in a subprocess (its own process, its own GIL),
from this tree or from `--baseline` (another checkout). PostgreSQL is started durable (fsync
on, synchronous_commit on) unless `--database-url` points at one. Every variant runs on a fresh
database; variants are interleaved and repeated, and each figure is the median of the repeats.
The load generator is one asyncio process: `--senders` sockets, each in its own conversation
(a direct conversation with a receiver that is not connected), each keeping `--inflight` pushes
outstanding until `--messages` sends are acknowledged. Statements and round trips are counted
in-process (the driver instrumented) for `send_message` and for `send_batch` at a few batch sizes.
The machine is shared and noisy: compare variants of the same run, not runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import sqlalchemy as sa
from websockets.asyncio.client import connect

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from shared.auth.tokens import mint_dev_token  # noqa: E402
from shared.config import Settings  # noqa: E402
from shared.devtools.postgres import free_port, start_cluster  # noqa: E402

API = "/messaging/api/v1"
SOCKET = "/messaging/socket/websocket"
FREE_LIMITS = {
    "WHISPR_MESSAGES_BURST": "10000000",
    "WHISPR_MESSAGES_PER_MINUTE": "100000000",
    "WHISPR_GROUP_CREATIONS_PER_DAY": "10000000",
    "WHISPR_WS_SOCKETS_PER_IP": "100000",
    "WHISPR_WS_PUSHES_PER_MINUTE": "100000000",
    "WHISPR_WS_PUSH_BURST": "10000000",
}


@dataclass
class Variant:
    name: str
    source: Path
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class Result:
    variant: str
    sends: int
    seconds: float
    latencies_ms: list[float]
    server_cpu_seconds: float  # user + system CPU of the service process during the run

    @property
    def rate(self) -> float:
        return self.sends / self.seconds

    @property
    def cpu_ms_per_send(self) -> float:
        return self.server_cpu_seconds / self.sends * 1000

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def fresh_database(admin_url: str, name: str) -> str:
    engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}"')
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    engine.dispose()
    return sa.engine.make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def service(variant: Variant, database_url: str, key_path: str) -> Iterator[tuple[str, int]]:
    port = free_port()
    env = {
        **os.environ,
        **FREE_LIMITS,
        "DATABASE_URL": database_url,
        "WHISPR_DEV_KEY_PATH": key_path,
        "WHISPR_LOG_LEVEL": "warning",
        "WHISPR_SCHEDULER": "none",
        "PYTHONPATH": str(variant.source),
        **variant.env,
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "shared.cli", "dev", "--port", str(port)],
        cwd=variant.source,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"service exited: {proc.stderr.read().decode() if proc.stderr else ''}")
            try:
                if httpx.get(url + API + "/health", timeout=1).status_code < 500:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("service did not start")
            time.sleep(0.1)
        yield url, proc.pid
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def arrange(url: str, settings: Settings, senders: int) -> list[tuple[str, str]]:
    """One direct conversation per sender: (sender token, conversation id)."""
    out = []
    with httpx.Client(base_url=url + API, timeout=30) as http:
        for _ in range(senders):
            alice, bob = str(uuid.uuid4()), str(uuid.uuid4())
            token = mint_dev_token(settings, alice)
            created = http.post(
                "/conversations",
                json={"type": "direct", "other_user_id": bob},
                headers={"Authorization": f"Bearer {token}"},
            )
            created.raise_for_status()
            out.append((token, created.json()["data"]["id"]))
    return out


async def sender(
    url: str,
    token: str,
    conversation_id: str,
    messages: int,
    inflight: int,
    latencies: list[float],
    start: asyncio.Event,
) -> None:
    ws_url = url.replace("http://", "ws://") + SOCKET + f"?vsn=2.0.0&token={token}"
    topic = f"conversation:{conversation_id}"
    async with connect(ws_url, max_size=None, compression=None) as ws:
        await ws.send(json.dumps(["1", "1", topic, "phx_join", {}]))
        while True:
            frame = json.loads(await ws.recv())
            if frame[1] == "1" and frame[3] == "phx_reply":
                assert frame[4]["status"] == "ok", frame
                break
        await start.wait()
        sent_at: dict[str, float] = {}
        next_ref = 2
        done = 0

        async def push() -> None:
            nonlocal next_ref
            ref = str(next_ref)
            next_ref += 1
            body = {"content": f"message {ref}", "message_type": "text", "client_random": secrets.randbits(31)}
            sent_at[ref] = time.perf_counter()
            await ws.send(json.dumps(["1", ref, topic, "new_message", body]))

        for _ in range(min(inflight, messages)):
            await push()
        pushed = min(inflight, messages)
        while done < messages:
            frame = json.loads(await ws.recv())
            if frame[3] != "phx_reply" or frame[1] not in sent_at:
                continue
            latencies.append((time.perf_counter() - sent_at.pop(frame[1])) * 1000)
            if frame[4]["status"] != "ok":
                raise RuntimeError(f"send failed: {frame[4]}")
            done += 1
            if pushed < messages:
                await push()
                pushed += 1


async def drive(url: str, arranged: list[tuple[str, str]], messages: int, inflight: int) -> tuple[float, list[float]]:
    latencies: list[float] = []
    start = asyncio.Event()
    tasks = [asyncio.create_task(sender(url, t, c, messages, inflight, latencies, start)) for t, c in arranged]
    await asyncio.sleep(1.0)  # every socket joined (a join failing raises in its task)
    for task in tasks:
        if task.done():
            task.result()
    began = time.perf_counter()
    start.set()
    await asyncio.gather(*tasks)
    return time.perf_counter() - began, latencies


def run_once(variant: Variant, admin_url: str, key_path: str, args: argparse.Namespace, index: int) -> Result:
    database_url = fresh_database(admin_url, f"micro_send_{index}")
    settings = Settings(database_url=database_url, dev_key_path=key_path)
    with service(variant, database_url, key_path) as (url, pid):
        arranged = arrange(url, settings, args.senders)
        asyncio.run(drive(url, arranged, max(1, args.warmup), args.inflight))  # warm-up
        cpu_before = cpu_seconds(pid)
        seconds, latencies = asyncio.run(drive(url, arranged, args.messages, args.inflight))
        cpu = cpu_seconds(pid) - cpu_before
    return Result(variant.name, args.senders * args.messages, seconds, latencies, cpu)


ROUND_TRIPS = """
import json, sys, uuid
count = [0]  # statements (BEGIN, COMMIT and pings included; an executemany counts its rows)
flushes = [0]  # network round trips: the driver waits for the server's answer
if "+pg8000" in sys.argv[1]:
    import pg8000.core as core
    for name in ("execute_simple", "execute_unnamed", "execute_named"):
        def wrap(self, *args, _orig=getattr(core.CoreConnection, name), **kwargs):
            count[0] += 1
            return _orig(self, *args, **kwargs)
        setattr(core.CoreConnection, name, wrap)
    _flush = core._flush
    def counted_flush(sock):
        flushes[0] += 1
        return _flush(sock)
    core._flush = counted_flush
else:  # psycopg 3: every exchange with the server goes through Connection.wait
    import psycopg
    _wait = psycopg.Connection.wait
    def wait(self, gen, *args, **kwargs):
        flushes[0] += 1
        return _wait(self, gen, *args, **kwargs)
    psycopg.Connection.wait = wait
    _execute, _executemany = psycopg.Cursor.execute, psycopg.Cursor.executemany
    _command = psycopg.Connection._exec_command
    def execute(self, *args, **kwargs):
        count[0] += 1
        return _execute(self, *args, **kwargs)
    def executemany(self, query, params, *args, **kwargs):
        params = list(params)
        count[0] += len(params)
        return _executemany(self, query, params, *args, **kwargs)
    def command(self, *args, **kwargs):  # BEGIN, COMMIT, ROLLBACK, SAVEPOINT
        count[0] += 1
        return _command(self, *args, **kwargs)
    psycopg.Cursor.execute, psycopg.Cursor.executemany, psycopg.Connection._exec_command = execute, executemany, command
from shared.app import conversations, messages
from shared.bootstrap import build_services
from shared.config import Limits, Settings
from shared.domain.models import Actor, NewMessage
from shared.storage.migrate import upgrade
url, key = sys.argv[1], sys.argv[2]
settings = Settings(database_url=url, dev_key_path=key, scheduler="none",
                    limits=Limits(messages_burst=10**9, messages_per_minute=10**9))
upgrade(settings)
svc = build_services(settings)
n = 64
actors = [Actor(str(uuid.uuid4()), "d") for _ in range(n)]
convs = [conversations.create_direct(svc, a, str(uuid.uuid4())).view["id"] for a in actors]
def new(i):
    return NewMessage(content=f"m{i}", message_type="text", client_random=i)
out = {}
start, trips = count[0], flushes[0]
for i, (a, c) in enumerate(zip(actors, convs)):
    messages.send_message(svc, a, c, new(i))
out["send_message (REST, one transaction per send)"] = ((count[0] - start) / n, (flushes[0] - trips) / n)
try:
    from shared.app.batch_send import SendRequest, send_batch
except ImportError:
    send_batch = None
if send_batch is not None:
    for size in (1, 8, 64):
        start, trips, done = count[0], flushes[0], 0
        while done < n:
            chunk = range(done, min(n, done + size))
            send_batch(svc, [SendRequest(actors[i], convs[i], new(1000 * size + i)) for i in chunk])
            done += len(chunk)
        out[f"send_batch, batches of {size}"] = ((count[0] - start) / n, (flushes[0] - trips) / n)
print(json.dumps(out))
"""


def round_trips(variant: Variant, admin_url: str, key_path: str, index: int) -> dict[str, list[float]]:
    """Per send: [SQL statements (BEGIN, COMMIT and pings included), network round trips], both
    counted inside pg8000 (which waits for the server up to three times per statement)."""
    database_url = fresh_database(admin_url, f"micro_send_rt_{index}")
    done = subprocess.run(
        [sys.executable, "-c", ROUND_TRIPS, database_url, key_path],
        cwd=variant.source,
        env={**os.environ, "PYTHONPATH": str(variant.source)},
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, list[float]] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--senders", type=int, default=32, help="sockets sending at once (one conversation each)")
    parser.add_argument("--messages", type=int, default=200, help="acknowledged sends per sender")
    parser.add_argument("--inflight", type=int, default=1, help="pushes each sender keeps outstanding")
    parser.add_argument("--warmup", type=int, default=10, help="sends per sender before measuring")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--baseline", type=Path, help="a source tree to compare with (e.g. before group commit)")
    parser.add_argument("--database-url", help="an existing PostgreSQL server (admin URL); default: start one")
    parser.add_argument("--json", type=Path, help="write the raw results here")
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME:VAR=VALUE,...",
        help="another variant of this tree with these environment variables",
    )
    args = parser.parse_args()

    variants = []
    if args.baseline:
        variants.append(Variant("baseline (no batching)", args.baseline.resolve()))
    variants += [
        # one send per transaction, as many at once as the worker threads allow (like the baseline)
        Variant(
            "group commit off (batch of 1)",
            ROOT,
            {"WHISPR_SEND_BATCH_MAX": "1", "WHISPR_SEND_BATCH_WINDOW_MS": "0", "WHISPR_SEND_BATCH_PARALLEL": "40"},
        ),
        Variant("group commit (default)", ROOT),
    ]
    for spec in args.variant:
        name, _, assignments = spec.partition(":")
        env = dict(a.split("=", 1) for a in assignments.split(",") if a)
        variants.append(Variant(name, ROOT, env))
    cluster = None if args.database_url else start_cluster(durable=True)
    admin_url = args.database_url or (cluster.url if cluster else "")
    results: list[Result] = []
    trips: dict[str, dict[str, list[float]]] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            key_path = os.path.join(tmp, "dev-key.pem")
            mint_dev_token(Settings(dev_key_path=key_path), str(uuid.uuid4()))  # create the key once
            sources = {v.source: v for v in variants}
            for i, variant in enumerate(sources.values()):
                trips[str(variant.source)] = round_trips(variant, admin_url, key_path, i)
                for what, (statements, network) in trips[str(variant.source)].items():
                    print(
                        f"  per send, {variant.source.name}: {what}: {statements:.1f} statements, "
                        f"{network:.1f} round trips",
                        flush=True,
                    )
            for repeat in range(args.repeats):
                for i, variant in enumerate(variants):
                    result = run_once(variant, admin_url, key_path, args, repeat * len(variants) + i)
                    print(
                        f"  run {repeat + 1}/{args.repeats} {variant.name}: {result.rate:,.0f} msgs/s, "
                        f"p50 {result.percentile(50):.1f} ms, p99 {result.percentile(99):.1f} ms, "
                        f"service CPU {result.cpu_ms_per_send:.2f} ms/send",
                        flush=True,
                    )
                    results.append(result)
    finally:
        if cluster is not None:
            cluster.stop()

    print(
        f"\n{args.senders} senders x {args.messages} sends, {args.inflight} in flight each, "
        f"median of {args.repeats} (PostgreSQL durable)"
    )
    print(f"{'variant':34} {'msgs/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'CPU ms/send':>12}")
    summary = []
    for variant in variants:
        mine = [r for r in results if r.variant == variant.name]
        row = {
            "variant": variant.name,
            "msgs_per_s": statistics.median(r.rate for r in mine),
            "p50_ms": statistics.median(r.percentile(50) for r in mine),
            "p99_ms": statistics.median(r.percentile(99) for r in mine),
            "cpu_ms_per_send": statistics.median(r.cpu_ms_per_send for r in mine),
        }
        summary.append(row)
        print(
            f"{row['variant']:34} {row['msgs_per_s']:>10,.0f} {row['p50_ms']:>8.1f} {row['p99_ms']:>8.1f} "
            f"{row['cpu_ms_per_send']:>12.2f}"
        )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "args": {k: str(v) for k, v in vars(args).items()},
                    "summary": summary,
                    "round_trips": trips,
                    "runs": [
                        {
                            "variant": r.variant,
                            "msgs_per_s": r.rate,
                            "p50_ms": r.percentile(50),
                            "p99_ms": r.percentile(99),
                            "cpu_ms_per_send": r.cpu_ms_per_send,
                        }
                        for r in results
                    ],
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
