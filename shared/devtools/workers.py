"""`whispr-messaging dev --workers N`: the gateway and relay as N worker processes sharing one
port, the way N Cloud Run instances share a load balancer and Pub/Sub.

The parent applies the migrations, runs the local bus broker (`shared.adapters.local_bus`) and
starts N copies of `dev --worker`, each listening on the same address with `SO_REUSEPORT` (the
kernel spreads connections between them) and publishing through the broker, so a socket on one
worker hears what another committed, with the same ordering and catch-up guarantees as several
instances behind Pub/Sub. Only the first worker runs the local scheduler (one timer per store).
A worker that dies is started again. The workers are process groups of their own, so that a
signal to the parent's group (the terminal's Ctrl-C, `kill -TERM -<pgid>`) reaches the parent
only, which sends each worker exactly one SIGTERM: each drains its sockets
(shared/relay/shutdown.py) within WHISPR_DRAIN_SECONDS (a second SIGTERM would end it without
draining); a second signal to the parent kills them, and so does the parent's death.

Every worker keeps its own in-memory state (rate limits, presence): like instances without
Firestore, each knows its own sockets' presence; use WHISPR_STATE_STORE=firestore for one view.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType

from shared.adapters.local_bus import BusBroker

log = logging.getLogger(__name__)

RESTART_PAUSE = 1.0  # seconds before a dead worker is started again
EXIT_MARGIN = 5.0  # seconds a worker gets beyond its drain window before it is killed


def reuse_port_socket(host: str, port: int) -> socket.socket:
    """A listening socket other processes can bind too (`SO_REUSEPORT`): the kernel balances
    new connections between them."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _die_with_parent() -> None:
    """In the child, before exec: killed when the parent dies (Linux); a parent that stops
    normally has stopped its workers first."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class Supervisor:
    def __init__(self, host: str, port: int, workers: int, bus_dir: str | None = None, drain_seconds: float = 5.0):
        self.host, self.port, self.count = host, port, workers
        self.drain_seconds = drain_seconds
        self._dir = bus_dir or tempfile.mkdtemp(prefix="whispr-bus-")
        self.bus_path = str(Path(self._dir) / "bus.sock")
        self.broker = BusBroker(self.bus_path)
        self.processes: list[subprocess.Popen[bytes] | None] = [None] * workers
        self._stopping = False

    def _start(self, index: int) -> subprocess.Popen[bytes]:
        env = {
            **os.environ,
            "WHISPR_EVENT_BUS": "local",
            "WHISPR_BUS_SOCKET": self.bus_path,
            "WHISPR_INSTANCE_ID": f"{os.environ.get('WHISPR_INSTANCE_ID') or 'worker'}-{index}",
        }
        if index > 0:
            env["WHISPR_SCHEDULER"] = "none"
        command = [sys.executable, "-m", "shared.cli", "dev", "--worker", "--host", self.host, "--port", str(self.port)]
        return subprocess.Popen(command, env=env, preexec_fn=_die_with_parent, process_group=0)

    def run(self) -> int:
        def stop(_signum: int, _frame: FrameType | None) -> None:
            if self._stopping:  # a second signal: no more waiting for the drains
                self.kill()
            self._stopping = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        try:
            for i in range(self.count):
                self.processes[i] = self._start(i)
            while not self._stopping:
                for i, process in enumerate(self.processes):
                    if process is not None and process.poll() is not None and not self._stopping:
                        log.warning(
                            "worker %d (pid %d) exited with %s; starting it again", i, process.pid, process.returncode
                        )
                        time.sleep(RESTART_PAUSE)
                        self.processes[i] = self._start(i)
                time.sleep(0.2)
        finally:
            self.stop()
        return 0

    def stop(self) -> None:
        self._stopping = True
        alive = [p for p in self.processes if p is not None and p.poll() is None]
        for process in alive:
            process.terminate()
        deadline = time.monotonic() + self.drain_seconds + EXIT_MARGIN
        for process in alive:
            try:
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        self.broker.close()
        with contextlib.suppress(OSError):
            os.rmdir(self._dir)

    def kill(self) -> None:
        """Every worker, at once (SIGKILL)."""
        for process in self.processes:
            if process is not None and process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
