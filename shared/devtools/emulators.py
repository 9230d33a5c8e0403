"""The official Google Cloud emulators (Pub/Sub, Firestore) for tests and `cloud-local`.

Each is started through its own launcher (not `gcloud ... start`, which leaves Java running
when killed) in a new process group, and stopped by killing the whole group.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
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
