"""A benchmark run stopped with SIGTERM (a `timeout`, a `kill`) stops what it started: the
service (a session of its own) and its PostgreSQL cluster (daemonized by pg_ctl) are not
children a signal to the run would reach. Left running, they loaded every later run."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

from tests import procfs
from tests.support import ROOT, spawn_logged


def test_a_terminated_ab_run_stops_its_service_and_postgres(tmp_path: Path) -> None:
    before = set(procfs.command_lines())
    service: list[int] = []
    postgres: list[int] = []
    log = tmp_path / "ab.log"
    run = spawn_logged(
        [sys.executable, "-m", "bench.ab", "--variant", f"a={ROOT}", "--senders", "2", "--seconds", "60"], log
    )
    try:
        deadline = time.monotonic() + 120
        while True:  # until its service is up and its load generators are sending
            started = {pid: cmd for pid, cmd in procfs.command_lines().items() if pid not in before}
            service = [pid for pid, cmd in started.items() if "shared.cli dev" in cmd]
            postgres = [pid for pid, cmd in started.items() if "postgres -D" in cmd]
            if service and postgres and any("bench.loadgen" in cmd for cmd in started.values()):
                break
            assert run.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, f"the run did not get going:\n{log.read_text()[-3000:]}"
            time.sleep(0.2)
        run.send_signal(signal.SIGTERM)
        assert run.wait(60) == 128 + signal.SIGTERM
        deadline = time.monotonic() + 30
        while left := [pid for pid in service + postgres if procfs.running(pid)]:
            assert time.monotonic() < deadline, f"left running: {[started[p] for p in left]}"
            time.sleep(0.1)
    finally:  # nothing of a failed run outlives the test
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait(30)
        for pid, stop in [*((p, signal.SIGKILL) for p in service), *((p, signal.SIGQUIT) for p in postgres)]:
            if procfs.running(pid):
                os.kill(pid, stop)  # SIGQUIT: PostgreSQL's immediate shutdown
