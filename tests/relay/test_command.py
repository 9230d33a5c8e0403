"""`whispr-messaging relay`, the command the relay image runs (deploy/relay/Dockerfile), as its
own process: with WHISPR_METRICS_PORT (what terraform/run.tf sets on Cloud Run) it answers
/metrics there, where the Managed Prometheus sidecar scrapes it inside the instance, and not on
the port it takes requests on, which is public."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from shared.devtools.postgres import free_port
from tests.support import ROOT, service_env


def test_the_image_command_serves_metrics_on_its_metrics_port_only(pg_url: str, key_path: str, tmp_path: Path) -> None:
    port, metrics_port = free_port(), free_port()
    env = service_env(pg_url, key_path, port, WHISPR_METRICS_PORT=str(metrics_port), WHISPR_LOG_LEVEL="info")
    log = tmp_path / "relay.log"
    public = f"http://127.0.0.1:{port}"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "shared.cli", "relay"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, f"the command exited:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"never answered its health probe:\n{log.read_text()}"
            try:
                if httpx.get(f"{public}/messaging/api/v1/health", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)

        assert httpx.get(f"{public}/metrics", timeout=10).status_code == 404  # not on the public port
        scraped = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10)
        assert scraped.status_code == 200 and scraped.headers["content-type"].startswith("text/plain")
        assert "whispr_outbox_lag_seconds" in scraped.text  # the relay's services, read at scrape time
        assert 'whispr_db_pool_connections{state="idle"}' in scraped.text

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
