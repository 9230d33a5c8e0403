"""`whispr-messaging grpc`, the command the gRPC image runs (deploy/grpc/Dockerfile), as its own
process: it listens on Cloud Run's PORT, passes the image's health probe, and stops cleanly on
SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from shared.devtools.postgres import free_port
from tests.support import ROOT, service_env


def _probe(port: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shared.rpc.probe", "--port", str(port)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_image_command_serves_passes_its_probe_and_stops_on_sigterm(
    pg_url: str, key_path: str, tmp_path: Path
) -> None:
    port = free_port()
    env = service_env(pg_url, key_path, free_port(), PORT=str(port), WHISPR_LOG_LEVEL="info")
    log = tmp_path / "grpc.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "shared.cli", "grpc"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 60
        while _probe(port).returncode != 0:
            assert proc.poll() is None, f"the command exited:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"never SERVING:\n{log.read_text()}"
            time.sleep(0.2)
        assert f"Whispr messaging gRPC on 127.0.0.1:{port}" in log.read_text()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, log.read_text()
        assert "stopping: in-flight calls get" in log.read_text()
        assert _probe(port).returncode == 1  # gone
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
