"""The official Google Cloud emulators (Pub/Sub, Firestore) and a Cloud Tasks emulator for
tests and `cloud-local`.

Each is started through its own launcher (not `gcloud ... start`, which leaves Java running
when killed) in a new process group, and stopped by killing the whole group. Google ships no
Cloud Tasks emulator: `gcloud-tasks-emulator` (PyPI, pinned in the Makefile's test setup) is a
small gRPC server that keeps tasks in memory and POSTs them at their schedule time.
"""

from __future__ import annotations

import contextlib
import glob
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

from shared.devtools.postgres import free_port


def _sdk_root() -> str:
    gcloud = shutil.which("gcloud")
    candidates = [os.environ.get("WHISPR_GCLOUD_SDK", ""), "/usr/lib/google-cloud-sdk"]
    if gcloud:
        candidates.append(os.path.dirname(os.path.dirname(os.path.realpath(gcloud))))
    for root in candidates:
        if root and os.path.isdir(os.path.join(root, "platform")):
            return root
    raise RuntimeError("the gcloud SDK (with its emulators) was not found; set WHISPR_GCLOUD_SDK")


@dataclass
class Emulator:
    name: str
    host: str
    process: subprocess.Popen[bytes]
    data_dir: str

    def stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        shutil.rmtree(self.data_dir, ignore_errors=True)


def _wait_for_port(emulator: Emulator, timeout: float = 90.0) -> None:
    host, port = emulator.host.rsplit(":", 1)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if emulator.process.poll() is not None:
            raise RuntimeError(f"the {emulator.name} emulator exited with {emulator.process.returncode}")
        try:
            with socket.create_connection((host, int(port)), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    emulator.stop()
    raise RuntimeError(f"the {emulator.name} emulator did not listen on {emulator.host} in {timeout:.0f} s")


def _launch(name: str, argv: list[str], port: int, data_dir: str) -> Emulator:
    log = open(os.path.join(data_dir, "emulator.log"), "wb")  # noqa: SIM115 (owned by the process)
    process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    emulator = Emulator(name, f"127.0.0.1:{port}", process, data_dir)
    _wait_for_port(emulator)
    return emulator


def start_pubsub() -> Emulator:
    """PUBSUB_EMULATOR_HOST = emulator.host"""
    launcher = glob.glob(os.path.join(_sdk_root(), "platform/pubsub-emulator/bin/cloud-pubsub-emulator"))
    if not launcher:
        raise RuntimeError("the Pub/Sub emulator is not installed (gcloud component pubsub-emulator)")
    port, data = free_port(), tempfile.mkdtemp(prefix="whispr-pubsub-")
    return _launch("pubsub", [launcher[0], "--host=127.0.0.1", f"--port={port}", f"--dir={data}"], port, data)


def start_firestore() -> Emulator:
    """FIRESTORE_EMULATOR_HOST = emulator.host"""
    launcher = glob.glob(os.path.join(_sdk_root(), "platform/cloud-firestore-emulator/cloud_firestore_emulator"))
    if not launcher:
        raise RuntimeError("the Firestore emulator is not installed (gcloud component cloud-firestore-emulator)")
    port, data = free_port(), tempfile.mkdtemp(prefix="whispr-firestore-")
    return _launch("firestore", [launcher[0], "start", "--host=127.0.0.1", f"--port={port}"], port, data)


TASKS_EMULATOR_VERSION = "0.6.2"


def start_cloud_tasks(queue: str, *, max_retries: int = 100) -> Emulator:
    """WHISPR_TASKS_EMULATOR_HOST = emulator.host; `queue` (projects/P/locations/L/queues/Q)
    exists from the start. It dispatches HTTP tasks to their own URL at schedule_time; a target
    answering 4xx/5xx is retried every 0.1 s, at most `max_retries` times. What it does not do:
    GetTask, DeleteTask (UNIMPLEMENTED), reject a duplicate task name, verify OIDC tokens."""
    if importlib.util.find_spec("gcloud_tasks_emulator") is None:
        raise RuntimeError(
            "the Cloud Tasks emulator is not installed: "
            f"pip install --no-deps gcloud-tasks-emulator=={TASKS_EMULATOR_VERSION} pyyaml (make setup does)"
        )
    port, data = free_port(), tempfile.mkdtemp(prefix="whispr-tasks-")
    # it listens on [::]:port whatever host it is given; 127.0.0.1 reaches it
    argv = [
        sys.executable,
        "-m",
        "gcloud_tasks_emulator",
        "start",
        f"--port={port}",
        f"--default-queue={queue}",
        f"--max-retries={max_retries}",
    ]
    return _launch("cloud tasks", argv, port, data)
