"""`whispr-messaging relay`, the command the relay image runs (deploy/relay/Dockerfile), as its
own process: with WHISPR_METRICS_PORT (what terraform/run.tf sets on Cloud Run) it answers
/metrics there, where the Managed Prometheus sidecar scrapes it inside the instance, and not on
the port it takes requests on, which is public."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx

from shared.devtools.postgres import free_port
from tests.support import service_env, service_process


def test_the_image_command_serves_metrics_on_its_metrics_port_only(pg_url: str, key_path: str, tmp_path: Path) -> None:
    port, metrics_port = free_port(), free_port()
    env = service_env(pg_url, key_path, port, WHISPR_METRICS_PORT=str(metrics_port), WHISPR_LOG_LEVEL="info")
    log = tmp_path / "relay.log"
    with service_process(env, port, log, command="relay") as proc:
        assert httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).status_code == 404  # not on the public port
        scraped = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10)
        assert scraped.status_code == 200 and scraped.headers["content-type"].startswith("text/plain")
        assert "whispr_outbox_lag_seconds" in scraped.text  # the relay's services, read at scrape time
        assert 'whispr_db_pool_connections{state="idle"}' in scraped.text

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, log.read_text()
