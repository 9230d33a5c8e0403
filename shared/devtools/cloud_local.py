"""`whispr-messaging cloud-local`: the Google Cloud deployment, wired the same way, on one machine.

What runs (every child in a process group of its own, so Ctrl-C reaches only this supervisor,
which then stops everything in order: services gracefully, then emulators, then PostgreSQL):

- the official Pub/Sub and Firestore emulators (Java), the Cloud Tasks emulator
  (gcloud-tasks-emulator, see shared/devtools/emulators.py) with the `messaging-scheduled` queue,
  and a durable PostgreSQL cluster standing in for Cloud SQL;
- the migrations, as the `messaging-migrate` Cloud Run job runs them (`whispr-messaging migrate`);
- the gateway: every function's routes on one port, as API Gateway in front of the Cloud
  Functions (WHISPR_COMPONENT=function, WHISPR_SCHEDULER=cloudtasks; Cloud Tasks call back its
  /tasks routes with the tasks secret, as they call the `tasks` function in GCP);
- two relay instances (Cloud Run `messaging-relay`), each with its own instance id, hence its own
  Pub/Sub subscription and Firestore presence instance;
- Cloud Scheduler's part: POST /tasks/sweep every `--sweep-seconds`;
- the `events` function alone under functions-framework, behind what terraform/pubsub.tf makes
  of `var.sibling_event_topics`: a sibling topic (`user-events`, where user-service would
  publish user.blocked, user.deleted, group.updated... see docs/events.md), a push subscription
  to the function with a retry policy and the dead-letter topic, and a pull subscription
  keeping the dead letters.

Each component gets the environment terraform/main.tf gives it (`local.common_env` plus the
secrets), pointed at the emulators. The URLs and that environment are printed once everything is
ready, and written as JSON to `--info-file` (tests read it).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib.util
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import httpx

from shared.devtools.emulators import Emulator, start_cloud_tasks, start_firestore, start_pubsub
from shared.devtools.postgres import PostgresCluster, free_port, start_cluster

API = "/messaging/api/v1"
SOCKET = "/messaging/socket/websocket"
HOST = "127.0.0.1"
PROJECT = "whispr-local"
QUEUE = f"projects/{PROJECT}/locations/local/queues/messaging-scheduled"
SIBLING_TOPICS = {"user": "user-events"}  # terraform's var.sibling_event_topics, here
DEAD_LETTER = "messaging-events-dead-letter"  # topic and the subscription keeping its messages
REPO = Path(__file__).resolve().parents[2]


@dataclass
class Options:
    gateway_port: int = 4000
    relay_ports: tuple[int, int] = (4001, 4002)
    events_port: int = 4003
    sweep_seconds: float = 60.0
    info_file: str = ""
    keep_logs: bool = False
    ready_timeout: float = 90.0


@dataclass
class Child:
    """A service process of ours (gateway, relay) in its own process group."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: str
    url: str

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM (uvicorn shuts down cleanly: a relay deletes its subscription), then SIGKILL
        for whatever is left in the group."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(5)


def _tail(path: str, lines: int = 30) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return "".join(handle.readlines()[-lines:])
    except OSError:
        return ""


def _postmaster_pid(cluster: PostgresCluster) -> int | None:
    try:
        with open(os.path.join(cluster.root, "data", "postmaster.pid"), encoding="utf-8") as handle:
            return int(handle.readline().strip())
    except (OSError, ValueError):
        return None


@dataclass
class CloudLocal:
    options: Options
    state_dir: str = field(default_factory=lambda: tempfile.mkdtemp(prefix="whispr-cloud-local-"))
    emulators: dict[str, Emulator] = field(default_factory=dict)
    cluster: PostgresCluster | None = None
    children: list[Child] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stopping: threading.Event = field(default_factory=threading.Event)
    _sweeper: threading.Thread | None = None

    @property
    def logs(self) -> str:
        return os.path.join(self.state_dir, "logs")

    @property
    def gateway_url(self) -> str:
        return f"http://{HOST}:{self.options.gateway_port}"

    # --- start ------------------------------------------------------------------------------

    def start(self) -> None:
        os.makedirs(self.logs, exist_ok=True)
        self._start_backends()
        self.env = self._environment()
        from shared.auth.keys import load_or_create_dev_key

        load_or_create_dev_key(self.env["WHISPR_DEV_KEY_PATH"])  # one key for every process, made once
        self._migrate()
        gateway = self._spawn(
            "gateway",
            ["dev", "--host", HOST, "--port", str(self.options.gateway_port)],
            {"WHISPR_COMPONENT": "function", "WHISPR_INSTANCE_ID": "gateway"},
            f"{self.gateway_url}{API}",
        )
        self._wait(gateway, lambda: self._http_ok(f"{gateway.url}/health/ready"))
        relays = [
            self._spawn(
                f"relay-{i}",
                ["relay", "--host", HOST, "--port", str(port)],
                {"WHISPR_COMPONENT": "relay", "WHISPR_INSTANCE_ID": f"relay-{i}"},
                f"ws://{HOST}:{port}{SOCKET}",
            )
            for i, port in enumerate(self.options.relay_ports, start=1)
        ]
        for relay, port in zip(relays, self.options.relay_ports, strict=True):
            self._wait(relay, functools.partial(self._listening, port))
        events = self._spawn(
            "events",
            [str(REPO / "functions/events/main.py"), "events", str(self.options.events_port)],
            {"WHISPR_COMPONENT": "function", "WHISPR_INSTANCE_ID": "events"},
            f"http://{HOST}:{self.options.events_port}",
            functions_framework=True,
        )
        self._wait(events, functools.partial(self._listening, self.options.events_port))
        self._subscribe_events(events.url)
        if self.options.sweep_seconds > 0:
            self._sweeper = threading.Thread(target=self._sweep_loop, name="cloud-scheduler", daemon=True)
            self._sweeper.start()

    def _start_backends(self) -> None:
        """The emulators and PostgreSQL, side by side (the JVMs take a few seconds each)."""
        use_firestore = importlib.util.find_spec("shared.adapters.firestore_state") is not None

        def emulator(name: str, start: Callable[[], Emulator]) -> None:
            started = start()
            with self._lock:
                self.emulators[name] = started

        def postgres() -> None:
            cluster = start_cluster(durable=True)
            with self._lock:
                self.cluster = cluster

        jobs: list[Callable[[], None]] = [
            lambda: emulator("pubsub", start_pubsub),
            lambda: emulator("cloud tasks", lambda: start_cloud_tasks(QUEUE)),
            postgres,
        ]
        if use_firestore:
            jobs.append(lambda: emulator("firestore", start_firestore))
        else:
            self.notes.append("shared/adapters/firestore_state.py is missing: the state store is in memory")
        with ThreadPoolExecutor(len(jobs)) as pool:
            futures = [pool.submit(job) for job in jobs]
        errors = [str(f.exception()) for f in futures if f.exception() is not None]
        if errors:
            raise RuntimeError("; ".join(errors))

    def _environment(self) -> dict[str, str]:
        """terraform/main.tf's local.common_env and secret_env, pointed at this machine."""
        assert self.cluster is not None
        env = {
            "DATABASE_URL": self.cluster.url,
            "WHISPR_TASKS_SECRET": secrets.token_urlsafe(24),
            "WHISPR_LOG_LEVEL": "info",
            "WHISPR_GCP_PROJECT": PROJECT,
            "WHISPR_EVENT_BUS": "pubsub",
            "WHISPR_PUBSUB_CONVERSATION_TOPIC": "messaging-conversation-events",
            "WHISPR_PUBSUB_DOMAIN_TOPIC": "messaging-domain-events",
            "WHISPR_PUBSUB_CREATE_MISSING": "true",  # terraform creates them in GCP
            "PUBSUB_EMULATOR_HOST": self.emulators["pubsub"].host,
            "WHISPR_STATE_STORE": "firestore" if "firestore" in self.emulators else "memory",
            "WHISPR_FIRESTORE_DATABASE": "(default)",
            "WHISPR_SCHEDULER": "cloudtasks",
            "WHISPR_TASKS_QUEUE": QUEUE,
            "WHISPR_TASKS_TARGET_URL": self.gateway_url,
            "WHISPR_TASKS_INVOKER_EMAIL": f"whispr-msg-invoker@{PROJECT}.iam.gserviceaccount.com",
            "WHISPR_TASKS_EMULATOR_HOST": self.emulators["cloud tasks"].host,
            "WHISPR_CORS_ORIGINS": "*",
            "WHISPR_DEV_KEY_PATH": os.path.join(self.state_dir, "dev-signing-key.pem"),
        }
        if "firestore" in self.emulators:
            env["FIRESTORE_EMULATOR_HOST"] = self.emulators["firestore"].host
        return env

    def _child_env(self, extra: dict[str, str]) -> dict[str, str]:
        # the caller's environment minus anything that would re-point a component elsewhere
        base = {k: v for k, v in os.environ.items() if not k.startswith(("WHISPR_", "JWT_")) and k != "DATABASE_URL"}
        return {**base, **self.env, **extra, "PYTHONUNBUFFERED": "1"}

    def _migrate(self) -> None:
        log_path = os.path.join(self.logs, "migrate.log")
        with open(log_path, "wb") as log:
            done = subprocess.run(
                [sys.executable, "-m", "shared.cli", "migrate"],
                env=self._child_env({}),
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.state_dir,
                timeout=120,
                check=False,
            )
        if done.returncode != 0:
            raise RuntimeError(f"migrations failed:\n{_tail(log_path)}")

    def _subscribe_events(self, function_url: str) -> None:
        os.environ["PUBSUB_EMULATOR_HOST"] = self.emulators["pubsub"].host
        subscribe_sibling_topics(PROJECT, function_url, self.env["WHISPR_TASKS_SECRET"], SIBLING_TOPICS)

    def _spawn(
        self, name: str, args: list[str], extra: dict[str, str], url: str, *, functions_framework: bool = False
    ) -> Child:
        """`python -m shared.cli <args>`, or with `functions_framework` one function alone:
        args = (source, target, port), as Cloud Functions runs it."""
        log_path = os.path.join(self.logs, f"{name}.log")
        log = open(log_path, "wb")  # noqa: SIM115 (the child writes it)
        if functions_framework:
            source, target, port = args
            command = [sys.executable, "-m", "functions_framework", "--asgi", "--source", source, "--target", target]
            command += ["--host", HOST, "--port", port]
        else:
            command = [sys.executable, "-m", "shared.cli", *args]
        try:
            process = subprocess.Popen(
                command,
                env=self._child_env(extra),
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.state_dir,
                start_new_session=True,
            )
        finally:
            log.close()
        child = Child(name, process, log_path, url)
        with self._lock:
            self.children.append(child)
        return child

    def _wait(self, child: Child, ready: Callable[[], bool]) -> None:
        deadline = time.monotonic() + self.options.ready_timeout
        while not ready():
            if child.process.poll() is not None:
                raise RuntimeError(f"{child.name} exited with {child.process.returncode}:\n{_tail(child.log_path)}")
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{child.name} not ready in {self.options.ready_timeout:.0f} s:\n{_tail(child.log_path)}"
                )
            time.sleep(0.2)

    @staticmethod
    def _http_ok(url: str) -> bool:
        try:
            return httpx.get(url, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    @staticmethod
    def _listening(port: int) -> bool:
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return True
        except OSError:
            return False

    def _sweep_loop(self) -> None:
        """What the Cloud Scheduler job does: POST /tasks/sweep with the tasks secret."""
        headers = {"X-Whispr-Tasks-Secret": self.env["WHISPR_TASKS_SECRET"]}
        while not self._stopping.wait(self.options.sweep_seconds):
            try:
                httpx.post(f"{self.gateway_url}{API}/tasks/sweep", headers=headers, timeout=60)
            except httpx.HTTPError as error:
                print(f"cloud-local: sweep failed: {error}", file=sys.stderr, flush=True)

    # --- while running ----------------------------------------------------------------------

    def dead(self) -> list[str]:
        """What stopped on its own (a crash): names and exit codes."""
        gone = [f"{c.name} (exit {c.process.returncode})" for c in self.children if c.process.poll() is not None]
        gone += [
            f"{name} emulator (exit {e.process.returncode})"
            for name, e in self.emulators.items()
            if e.process.poll() is not None
        ]
        return gone

    def info(self) -> dict[str, Any]:
        pids: dict[str, int | None] = {c.name: c.process.pid for c in self.children}
        pids.update({name: e.process.pid for name, e in self.emulators.items()})
        if self.cluster is not None:
            pids["postgres"] = _postmaster_pid(self.cluster)
        return {
            "api": f"{self.gateway_url}{API}",
            "gateway": self.gateway_url,
            "relays": [c.url for c in self.children if c.name.startswith("relay-")],
            "events_function": next((c.url for c in self.children if c.name == "events"), None),
            "sibling_topics": {key: f"projects/{PROJECT}/topics/{topic}" for key, topic in SIBLING_TOPICS.items()},
            "dead_letter_subscription": f"projects/{PROJECT}/subscriptions/{DEAD_LETTER}",
            "emulators": {name: e.host for name, e in self.emulators.items()},
            "database_url": self.cluster.url if self.cluster else None,
            "env": self.env,
            "pids": pids,
            "logs": {
                **{c.name: c.log_path for c in self.children},
                **{name: os.path.join(e.data_dir, "emulator.log") for name, e in self.emulators.items()},
            },
            "notes": self.notes,
        }

    def summary(self) -> str:
        info = self.info()
        rows = [("REST (API Gateway + functions)", info["api"])]
        rows += [(f"{c.name} (Cloud Run)", c.url) for c in self.children if c.name.startswith("relay-")]
        rows += [(f"events function <- {t}", info["events_function"]) for t in info["sibling_topics"].values()]
        rows += [(f"{name} emulator", host) for name, host in info["emulators"].items()]
        rows += [("Cloud Tasks queue", QUEUE), ("PostgreSQL (Cloud SQL)", str(info["database_url"]))]
        if self.options.sweep_seconds > 0:
            rows.append(("Cloud Scheduler", f"POST {API}/tasks/sweep every {self.options.sweep_seconds:g} s"))
        rows.append(("logs", self.logs))
        lines = ["Whispr messaging, the Google Cloud layout on this machine (Ctrl-C stops everything):"]
        lines += [f"  {label.ljust(32)}{value}" for label, value in rows]
        lines += [f"  note: {note}" for note in self.notes]
        lines.append("Environment of every component (terraform/main.tf local.common_env, pointed at the emulators):")
        lines += [f"  export {key}='{value}'" for key, value in sorted(self.env.items())]
        key_path = self.env.get("WHISPR_DEV_KEY_PATH", "")
        lines.append(f"Mint a token: WHISPR_DEV_KEY_PATH='{key_path}' whispr-messaging token <user-uuid>")
        return "\n".join(lines)

    # --- stop -------------------------------------------------------------------------------

    def stop(self) -> None:
        """Services first (gracefully: relays delete their subscriptions), then the emulators,
        then PostgreSQL; the state directory goes too unless --keep-logs."""
        self._stopping.set()
        with self._lock:
            children, self.children = list(self.children), []
            emulators, self.emulators = dict(self.emulators), {}
            cluster, self.cluster = self.cluster, None
        with ThreadPoolExecutor(max(1, len(children))) as pool:
            list(pool.map(lambda child: child.stop(), children))
        for emulator in emulators.values():
            emulator.stop()
        if cluster is not None:
            cluster.stop()
        if not self.options.keep_logs:
            shutil.rmtree(self.state_dir, ignore_errors=True)


def subscribe_sibling_topics(
    project: str, function_url: str, secret: str, topics: dict[str, str], *, backoff_seconds: tuple[int, int] = (1, 10)
) -> None:
    """What terraform/pubsub.tf makes of `var.sibling_event_topics`, on the emulator
    (PUBSUB_EMULATOR_HOST): each sibling topic, keyed by a short name, pushed to the `events`
    function with the internal secret and a retry policy, dead-lettered after 5 deliveries to
    DEAD_LETTER, whose subscription keeps them."""
    import google.cloud.pubsub_v1 as pubsub_v1  # loads only here

    publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
    dead_topic = publisher.topic_path(project, DEAD_LETTER)
    endpoint = f"{function_url}{API}/events?token={urllib.parse.quote(secret)}"
    try:
        publisher.create_topic(name=dead_topic)
        subscriber.create_subscription(name=subscriber.subscription_path(project, DEAD_LETTER), topic=dead_topic)
        for key, topic in topics.items():
            topic_path = publisher.topic_path(project, topic)
            publisher.create_topic(name=topic_path)
            subscriber.create_subscription(
                request={
                    "name": subscriber.subscription_path(project, f"messaging-events-from-{key}"),
                    "topic": topic_path,
                    "ack_deadline_seconds": 60,
                    "push_config": {"push_endpoint": endpoint},
                    "dead_letter_policy": {"dead_letter_topic": dead_topic, "max_delivery_attempts": 5},
                    "retry_policy": {
                        "minimum_backoff": {"seconds": backoff_seconds[0]},
                        "maximum_backoff": {"seconds": backoff_seconds[1]},
                    },
                }
            )
    finally:
        subscriber.close()
        publisher.stop()


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def run(options: Options) -> int:
    """Start everything, print where it is, run until Ctrl-C / SIGTERM or a crash, stop it all."""
    if importlib.util.find_spec("gcloud_tasks_emulator") is None:
        print(
            "the Cloud Tasks emulator is missing: pip install --no-deps gcloud-tasks-emulator==0.6.2 pyyaml "
            "(make setup installs it)",
            file=sys.stderr,
        )
        return 2
    logging.getLogger("httpx").setLevel(logging.WARNING)  # readiness polls are not news
    previous = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    stack = CloudLocal(options)
    code = 0
    try:
        stack.start()
        print(stack.summary(), flush=True)
        if options.info_file:
            partial = options.info_file + ".tmp"
            with open(partial, "w", encoding="utf-8") as handle:
                json.dump(stack.info(), handle, indent=2)
            os.replace(partial, options.info_file)  # readers never see half a file
        print("cloud-local ready", flush=True)
        while True:
            dead = stack.dead()
            if dead:
                print(
                    f"cloud-local: stopped on its own: {', '.join(dead)}; stopping the rest",
                    file=sys.stderr,
                    flush=True,
                )
                code = 1
                break
            time.sleep(0.5)
    except KeyboardInterrupt:
        print("cloud-local: stopping", flush=True)
    except Exception as error:
        print(f"cloud-local failed: {error}", file=sys.stderr, flush=True)
        code = 1
    finally:
        for sig in previous:
            signal.signal(sig, signal.SIG_IGN)  # a second Ctrl-C must not cut the cleanup short
        stack.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print("cloud-local: stopped", flush=True)
    return code


def options_from(args: argparse.Namespace) -> Options:
    """Options from `whispr-messaging cloud-local`'s arguments (shared/cli.py)."""
    ports = [int(p) for p in str(args.relay_ports).split(",") if p.strip()]
    if len(ports) != 2:
        raise SystemExit("--relay-ports takes two ports, e.g. 4001,4002")
    relay_ports = (ports[0] or free_port(), ports[1] or free_port())
    return Options(
        gateway_port=args.gateway_port or free_port(),
        relay_ports=relay_ports,
        events_port=args.events_port or free_port(),
        sweep_seconds=args.sweep_seconds,
        info_file=args.info_file,
        keep_logs=args.keep_logs,
    )
