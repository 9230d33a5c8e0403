"""The benchmark's driver: PostgreSQL (durable), the service as a user starts it, the scenarios,
the references, the results. `whispr-messaging bench` and `make bench` land in `main`.

Every figure is the median of `repeats` runs; every comparison is a ratio of figures measured in
this same run. The service runs as `whispr-messaging dev` (gateway and relay on one port, one
process) on the durable cluster, with the send rate limits raised (WHISPR_* variables) so the
limits are not what is measured. Load comes from `bench.loadgen` processes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from queue import Empty, Queue
from types import FrameType
from typing import Any

import httpx

from bench.progress import Progress
from shared.devtools.postgres import PostgresCluster, free_port, start_cluster

SCENARIOS = ("B1", "B2", "B3", "B4", "B5", "B6", "ceilings", "synapse")
DEFAULT_SIZES = {"B4": [100_000, 1_000_000, 10_000_000], "B3": [1_000, 5_000, 10_000, 50_000], "B2": [10, 100, 500]}
QUICK_SIZES = {"B4": [10_000], "B3": [40], "B2": [10]}
RAISED_LIMITS = {
    "WHISPR_MESSAGES_PER_MINUTE": "1000000000",
    "WHISPR_MESSAGES_BURST": "10000000",
    "WHISPR_WS_PUSHES_PER_MINUTE": "1000000000",
    "WHISPR_WS_PUSH_BURST": "10000000",
    "WHISPR_WS_SOCKETS_PER_IP": "10000000",
    "WHISPR_MAX_CONNECTIONS": "10000000",  # B3 holds up to 50,000 sockets on one process
    "WHISPR_GROUP_CREATIONS_PER_DAY": "10000000",
}


# -- small statistics helpers ------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))
    return float(ordered[rank])


def median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return float(statistics.median(present)) if present else None


def latency_summary(us: list[int]) -> dict[str, float | None]:
    ms = [u / 1000 for u in us]
    return {
        "p50_ms": percentile(ms, 50),
        "p95_ms": percentile(ms, 95),
        "p99_ms": percentile(ms, 99),
        "max_ms": max(ms) if ms else None,
        "n": len(ms),
    }


def parse_count(text: str) -> int:
    text = text.strip().lower().replace("_", "")
    scale = 1
    if text.endswith("k"):
        scale, text = 1_000, text[:-1]
    elif text.endswith("m"):
        scale, text = 1_000_000, text[:-1]
    return int(float(text) * scale)


def parse_sizes(spec: str | None, quick: bool) -> dict[str, list[int]]:
    """`B4=100k,1M;B3=1000,5000;B2=10,100` over the defaults."""
    sizes = {k: list(v) for k, v in (QUICK_SIZES if quick else DEFAULT_SIZES).items()}
    for part in (spec or "").split(";"):
        if "=" in part:
            key, values = part.split("=", 1)
            sizes[key.strip().upper()] = [parse_count(v) for v in values.split(",") if v.strip()]
    return sizes


# -- processes -----------------------------------------------------------------------------


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cpu_ticks(pid: int) -> float:
    """User + system seconds of a process (from /proc)."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str]:
    with open(f"/proc/{pid}/stat") as handle:
        return handle.read().rsplit(")", 1)[1].split()


def tree_cpu_seconds(root: int) -> float:
    """User + system seconds of a process and all its descendants (see `tree_cpu`)."""
    user, system = tree_cpu(root)
    return user + system


def tree_cpu(root: int) -> tuple[float, float]:
    """(user, system) seconds of a process and all its descendants: the live ones, and (through
    each process's `cutime`/`cstime`) the children that ended and were waited for. The service's
    worker processes and PostgreSQL's backends are counted this way."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                parents[int(entry)] = int(_stat_fields(int(entry))[1])
    tree, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent and pid not in tree]
        tree.update(children)
        frontier.extend(children)
    user = system = 0
    for pid in tree:
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = _stat_fields(pid)
            user += int(fields[11]) + int(fields[13])
            system += int(fields[12]) + int(fields[14])
    hz = os.sysconf("SC_CLK_TCK")
    return user / hz, system / hz


def machine_busy_seconds() -> tuple[float, float]:
    """(busy, elapsed) CPU seconds of the whole machine so far, all cores summed (/proc/stat)."""
    with open("/proc/stat") as handle:
        values = [int(v) for v in handle.readline().split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    total = sum(values[:8])
    hz = os.sysconf("SC_CLK_TCK")
    return (total - idle) / hz, total / hz


@dataclass
class CpuMeter:
    """CPU spent while load ran: the service's process tree, PostgreSQL's (the postmaster and its
    backends), and the whole machine's busy cores. `stop()` gives seconds of each."""

    service_pid: int | None
    postgres_pid: int | None
    _start: dict[str, float] = field(default_factory=dict)

    def _read(self) -> dict[str, float]:
        busy, elapsed = machine_busy_seconds()
        out = {"machine_busy_s": busy, "machine_s": elapsed, "wall_s": time.monotonic()}
        if self.service_pid is not None:
            user, system = tree_cpu(self.service_pid)
            out.update(service_s=user + system, service_user_s=user, service_system_s=system)
        if self.postgres_pid is not None:
            out["postgres_s"] = tree_cpu_seconds(self.postgres_pid)
        return out

    def start(self) -> CpuMeter:
        self._start = self._read()
        return self

    def stop(self) -> dict[str, float]:
        end = self._read()
        spent = {k: end[k] - self._start[k] for k in end if k in self._start}
        cores = os.cpu_count() or 1
        if spent.get("machine_s"):
            spent["machine_busy_cores"] = spent["machine_busy_s"] / spent["machine_s"] * cores
        return {k: round(v, 4) for k, v in spent.items() if k not in ("machine_s",)}


def per_item_us(cpu: dict[str, float] | None, items: int) -> dict[str, float | None]:
    """CPU per message (or per delivery) in microseconds, for the service and for PostgreSQL."""
    if not cpu or items <= 0:
        return {"service_us": None, "postgres_us": None}
    return {
        "service_us": cpu["service_s"] / items * 1e6 if "service_s" in cpu else None,
        "postgres_us": cpu["postgres_s"] / items * 1e6 if "postgres_s" in cpu else None,
    }


def raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class Generator:
    """One `bench.loadgen` process: job file in, `ready`/`result` lines out, `go`/`stop` lines in."""

    def __init__(self, job: dict[str, Any], workdir: Path, name: str):
        self.name = name
        path = workdir / f"job-{name}.json"
        path.write_text(json.dumps(job))
        self.stderr = open(workdir / f"loadgen-{name}.log", "ab")  # noqa: SIM115 - closed in close()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.loadgen", str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            text=True,
            cwd=Path(__file__).resolve().parent.parent,
        )
        self.lines: Queue[str] = Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)
        self.lines.put("")

    def expect(self, kind: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except Empty as error:
                raise TimeoutError(f"loadgen {self.name}: no {kind} within {timeout:.0f}s") from error
            if line == "":
                raise RuntimeError(f"loadgen {self.name} ended before {kind}; see its log")
            if line.startswith(kind + " "):
                data: dict[str, Any] = json.loads(line[len(kind) + 1 :])
                if "error" in data:
                    raise RuntimeError(f"loadgen {self.name}: {data['error']}")
                return data
            if time.monotonic() > deadline:
                raise TimeoutError(f"loadgen {self.name}: no {kind} within {timeout:.0f}s")

    def tell(self, line: str) -> None:
        assert self.process.stdin is not None
        with contextlib.suppress(BrokenPipeError, OSError):
            self.process.stdin.write(line + "\n")
            self.process.stdin.flush()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            assert self.process.stdin is not None
            self.process.stdin.close()
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        self.stderr.close()


@dataclass
class Service:
    """`whispr-messaging dev` on the cluster, as a subprocess."""

    process: subprocess.Popen[bytes]
    port: int
    log: Any

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/messaging/socket/websocket"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.log.close()


def service_command() -> list[str]:
    script = Path(sys.executable).parent / "whispr-messaging"
    return [str(script)] if script.exists() else [sys.executable, "-m", "shared.cli"]


DEFAULT_WORKERS = 1  # docs/performance.md, "Worker processes": what the measurements chose


@dataclass
class Options:
    scenarios: list[str]
    quick: bool
    skip_synapse: bool
    sizes: dict[str, list[int]]
    repeats: int
    generators: int
    out: Path
    keep: bool = False
    profile: bool = False
    workers: int = 1  # `dev --workers N`: the service's processes sharing its port


@dataclass
class Bench:
    """What every scenario gets: the options, the cluster, the running service, helpers."""

    options: Options
    workdir: Path
    cluster: PostgresCluster
    progress: Progress
    service: Service | None = None
    run_dir: Path = Path(".")
    results: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    _bulk_prefix: int = 1

    @property
    def quick(self) -> bool:
        return self.options.quick

    @property
    def repeats(self) -> int:
        return self.options.repeats

    @property
    def key_path(self) -> str:
        return str(self.workdir / "dev-signing-key.pem")

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("WHISPR_")}
        env.update(RAISED_LIMITS)
        env.update(
            {
                "DATABASE_URL": self.cluster.url,
                "WHISPR_DEV_KEY_PATH": self.key_path,
                "WHISPR_LOG_LEVEL": "warning",
                "PYTHONUNBUFFERED": "1",
            }
        )
        return env

    # -- the service ---------------------------------------------------------------------------

    def start_service(self) -> Service:
        from shared.auth.keys import load_or_create_dev_key

        load_or_create_dev_key(self.key_path)  # before the service, so both sides agree on it
        port = free_port()
        log = open(self.workdir / "service.log", "ab")  # noqa: SIM115 - closed by Service.stop
        process = subprocess.Popen(
            [
                *service_command(),
                "dev",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                str(self.options.workers),
            ],
            env=self.env(),
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        service = Service(process, port, log)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"the service exited with {process.returncode}; see {self.workdir}/service.log")
            try:
                if httpx.get(f"{service.url}/health/ready", timeout=2).status_code == 200:
                    self.service = service
                    return service
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        service.stop()
        raise RuntimeError("the service did not become ready within 120 s")

    def restart_service(self) -> Service:
        if self.service is not None:
            self.service.stop()
            self.service = None
        return self.start_service()

    def require_service(self) -> Service:
        return self.service or self.start_service()

    def mint(self, user_id: str) -> str:
        from shared.auth.tokens import mint_dev_token
        from shared.config import load_settings

        return mint_dev_token(load_settings({"WHISPR_DEV_KEY_PATH": self.key_path}), user_id, ttl_seconds=6 * 3600)

    def rest(self) -> Any:
        from bench.fixtures import Rest

        return Rest(self.require_service().url, self.mint)

    def next_bulk_prefix(self) -> int:
        self._bulk_prefix += 1
        return 0xB0000000 + self._bulk_prefix

    def pg(self, database: str | None = None) -> Any:
        from bench.fixtures import connect

        return connect("127.0.0.1", self.cluster.port, database or self.cluster.database)

    # -- generators ------------------------------------------------------------------------------

    def run_generators(
        self,
        jobs: list[dict[str, Any]],
        label: str,
        seconds: float,
        *,
        during: Callable[[list[Generator]], None] | None = None,
        ready_timeout: float = 600,
    ) -> list[dict[str, Any]]:
        """Start one process per job, wait until all are connected, say go, collect the results.
        `during` runs after `go` (B3 measures memory and runs its probe there)."""
        gens: list[Generator] = []
        try:
            for i, job in enumerate(jobs):
                job.setdefault("deadline", seconds + ready_timeout + 300)
                gens.append(Generator(job, self.workdir, f"{label.replace(' ', '_').replace('/', '_')}-{i}"))
            self.progress.step(f"{label}: connecting")
            ready = [g.expect("ready", ready_timeout) for g in gens]
            for g, info in zip(gens, ready, strict=True):
                g.ready_info = info  # type: ignore[attr-defined]
            self.progress.step(label, seconds)
            start = time.monotonic()
            meter = CpuMeter(self.service.pid if self.service else None, self.cluster.postmaster_pid()).start()
            for g in gens:
                g.tell("go")
            ticker = threading.Event()

            def tick() -> None:
                while not ticker.wait(0.5):
                    self.progress.update(time.monotonic() - start)

            thread = threading.Thread(target=tick, daemon=True)
            thread.start()
            try:
                if during is not None:
                    during(gens)
                results = [g.expect("result", seconds + 600) for g in gens]
                cpu = meter.stop()
            finally:
                ticker.set()
                thread.join(1)
            for g, info in zip(gens, ready, strict=True):
                result = results[gens.index(g)]
                result["ready"] = info
                result["cpu"] = cpu  # the same for every generator: what the run cost the service
            return results
        finally:
            for g in gens:
                g.close()

    @staticmethod
    def generator_load(results: list[dict[str, Any]]) -> float:
        """The busiest generator's CPU share of one core while it ran (1.0 = saturated)."""
        return max((r.get("cpu_s", 0.0) / r["wall_s"] for r in results if r.get("wall_s")), default=0.0)


def split(items: list[Any], parts: int) -> list[list[Any]]:
    parts = max(1, min(parts, len(items)))
    return [items[i::parts] for i in range(parts)]


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    with contextlib.suppress(OSError), open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal"):
                info["memory_gb"] = round(int(line.split()[1]) / 1024 / 1024, 1)
                break
    root = Path(__file__).resolve().parent.parent
    with contextlib.suppress(Exception):
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        info["git"] = head + ("+uncommitted changes" if dirty else "")
    info["loadavg_start"] = list(os.getloadavg())
    with contextlib.suppress(Exception):
        from importlib.metadata import version

        info["websockets"] = version("websockets")
    from bench.ceilings import loop_name

    info["event_loop"] = loop_name()
    with contextlib.suppress(Exception):
        from shared.devtools.postgres import find_pg_bin

        done = subprocess.run(
            [os.path.join(find_pg_bin(), "postgres"), "--version"], capture_output=True, text=True, timeout=10
        )
        info["postgresql"] = done.stdout.strip()
    return info


@contextlib.contextmanager
def load_sampler() -> Iterator[list[float]]:
    """The machine's 1-minute load average, sampled every 5 s while the run goes."""
    samples: list[float] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(5):
            samples.append(os.getloadavg()[0])

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield samples
    finally:
        stop.set()
        thread.join(1)


def command_line() -> str:
    args = sys.argv[1:]
    if args[:1] == ["bench"]:
        args = args[1:]
    return " ".join(["whispr-messaging", "bench", *args])


def run(options: Options) -> dict[str, Any]:
    from bench import report
    from bench.scenarios import REGISTRY

    options.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    run_dir = (options.out / stamp).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="whispr-bench-", dir=run_dir))
    fds = raise_fd_limit()
    import logging

    logging.getLogger("httpx").setLevel(logging.WARNING)  # the fixture's requests are not news
    progress = Progress()
    progress.log(f"results in {run_dir}; open files limit {fds}")
    progress.step("starting PostgreSQL (durable)")
    cluster = start_cluster(durable=True)
    bench = Bench(options, workdir, cluster, progress, run_dir=run_dir)
    data: dict[str, Any] = {
        "command": command_line(),
        "started_at": datetime.now(timezone.utc).isoformat(),
        "machine": machine(),
        "options": {
            "scenarios": options.scenarios,
            "quick": options.quick,
            "repeats": options.repeats,
            "generators": options.generators,
            "workers": options.workers,
            "sizes": options.sizes,
            "skip_synapse": options.skip_synapse,
        },
        "limits_raised": RAISED_LIMITS,
        "results": bench.results,
        "notes": bench.notes,
    }
    try:
        with load_sampler() as loads:
            bench.start_service()
            for name in options.scenarios:
                if name == "synapse" and options.skip_synapse:
                    continue
                progress.log(f"{name}: starting")
                started = time.monotonic()
                try:
                    bench.results[name] = REGISTRY[name](bench)
                except Exception as error:  # one failed scenario must not lose the others
                    bench.results[name] = {"error": f"{type(error).__name__}: {error}"}
                    progress.log(f"{name}: FAILED {type(error).__name__}: {error}")
                bench.results[name]["scenario_seconds"] = round(time.monotonic() - started, 1)
                progress.log(f"{name}: done in {bench.results[name]['scenario_seconds']} s")
                # what is measured so far survives an interrupted run
                (run_dir / "results.partial.json").write_text(json.dumps(data, indent=1, default=str))
            data["machine"]["loadavg_samples"] = {
                "min": min(loads, default=None),
                "median": median(list(loads)),
                "max": max(loads, default=None),
            }
    finally:
        if bench.service is not None:
            bench.service.stop()
        cluster.stop()
        progress.close()
        data["machine"]["loadavg_end"] = list(os.getloadavg())
    data["ratios"] = report.ratios(data)
    data["finished_at"] = datetime.now(timezone.utc).isoformat()
    (run_dir / "results.json").write_text(json.dumps(data, indent=1, default=str))
    (run_dir / "results.partial.json").unlink(missing_ok=True)
    table = report.table(data)
    (run_dir / "table.md").write_text(table + "\n")
    report.chart(data, run_dir / "chart.png")
    print(table)
    print(f"\nresults: {run_dir / 'results.json'}\nchart:   {run_dir / 'chart.png'}")
    if not options.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return data


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or argparse.ArgumentParser(prog="whispr-messaging bench", description=__doc__)
    parser.add_argument(
        "--scenario",
        default="B1,B2,B3,B4,B5,B6,ceilings,synapse",
        help="comma-separated: B1..B6, ceilings, synapse (default: all)",
    )
    parser.add_argument("--quick", action="store_true", help="the seconds-long smoke run (tiny sizes, one repeat)")
    parser.add_argument("--skip-synapse", action="store_true", help="leave Matrix Synapse out")
    parser.add_argument("--sizes", help="growth sizes, e.g. 'B4=100k,1M;B3=1000,5000;B2=10,100'")
    parser.add_argument("--repeats", type=int, help="runs per figure (median); default 3, 1 with --quick")
    parser.add_argument("--generators", type=int, default=2, help="load generator processes (default 2)")
    parser.add_argument(
        "--workers",
        type=int,
        default=DEFAULT_WORKERS,
        help=f"the service's worker processes (dev --workers; default {DEFAULT_WORKERS})",
    )
    parser.add_argument("--out", default="bench-results", help="results folder (default ./bench-results)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs, job files)")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="py-spy the service during an extra B1 closed-loop run (SVG + top frames)",
    )
    return parser


def options_from(args: argparse.Namespace) -> Options:
    wanted = [s.strip() for s in args.scenario.split(",") if s.strip()]
    canonical = {s.lower(): s for s in SCENARIOS}
    scenarios = []
    for name in wanted:
        if name.lower() not in canonical:
            raise SystemExit(f"unknown scenario {name!r}; choose from {', '.join(SCENARIOS)}")
        scenarios.append(canonical[name.lower()])
    return Options(
        scenarios=scenarios,
        quick=args.quick,
        skip_synapse=args.skip_synapse,
        sizes=parse_sizes(args.sizes, args.quick),
        repeats=args.repeats or (1 if args.quick else 3),
        generators=max(1, args.generators),
        out=Path(args.out),
        keep=args.keep,
        profile=args.profile,
        workers=max(1, args.workers),
    )


def exit_on_sigterm() -> None:
    """SIGTERM ends the run the way Ctrl-C does (SystemExit in the main thread), so that its
    `finally` blocks stop the service and PostgreSQL: killed outright, they outlived it (the
    service in a session of its own, the cluster daemonized) and loaded the next runs."""

    def stop(signum: int, _frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    exit_on_sigterm()
    run(options_from(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
