"""`whispr-messaging grpc`, the command the gRPC image runs (deploy/grpc/Dockerfile), as its own
process: it listens on Cloud Run's PORT, passes the image's health probe, stops cleanly on
SIGTERM, and with WHISPR_METRICS_PORT answers /metrics there (what the Managed Prometheus
sidecar scrapes on Cloud Run, terraform/run.tf)."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
import httpx

from shared.devtools.postgres import free_port
from shared.protogen.whispr.messaging.v1 import messaging_pb2 as pb
from shared.protogen.whispr.messaging.v1 import messaging_pb2_grpc
from tests.support import ROOT, new_id, service_env


def _probe(port: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shared.rpc.probe", "--port", str(port)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@contextmanager
def _serving(env: dict[str, str], port: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`python -m shared.cli grpc` in its own process, once its health probe says SERVING;
    killed at the end if the test did not stop it."""
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
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)


def test_the_image_command_serves_passes_its_probe_and_stops_on_sigterm(
    pg_url: str, key_path: str, tmp_path: Path
) -> None:
    port = free_port()
    env = service_env(pg_url, key_path, free_port(), PORT=str(port), WHISPR_LOG_LEVEL="info")
    log = tmp_path / "grpc.log"
    with _serving(env, port, log) as proc:
        assert f"Whispr messaging gRPC on 127.0.0.1:{port}" in log.read_text()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, log.read_text()
        assert "stopping: in-flight calls get" in log.read_text()
        assert _probe(port).returncode == 1  # gone


def _sample(exposition: str, name: str, labels: str = "") -> float:
    found = re.search(rf"^{re.escape(name + labels)} (\S+)$", exposition, re.MULTILINE)
    assert found, f"no {name}{labels} in:\n{exposition}"
    return float(found.group(1))


def test_the_image_command_answers_metrics_on_its_metrics_port(pg_url: str, key_path: str, tmp_path: Path) -> None:
    port, metrics_port = free_port(), free_port()
    env = service_env(pg_url, key_path, free_port(), PORT=str(port), WHISPR_METRICS_PORT=str(metrics_port))
    log = tmp_path / "grpc.log"
    url = f"http://127.0.0.1:{metrics_port}/metrics"
    with _serving(env, port, log) as proc:
        before = httpx.get(url, timeout=30)
        assert before.status_code == 200 and before.headers["content-type"].startswith("text/plain")
        # read at scrape time from this process's store: the shim's services are registered
        assert _sample(before.text, "whispr_outbox_lag_seconds") >= 0
        assert _sample(before.text, "whispr_db_pool_connections", '{state="idle"}') >= 1
        published = _sample(before.text, "whispr_bus_publish_duration_seconds_count")

        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:  # no caller auth configured: local mode
            stub = messaging_pb2_grpc.MessagingServiceStub(channel)
            creator, member = new_id(), new_id()
            request = pb.NotifyGroupCreationRequest(
                group_id=new_id(), name="Scraped", creator_id=creator, members=[pb.GroupMember(user_id=member)]
            )
            assert stub.NotifyGroupCreation(request, timeout=30).created

        after = httpx.get(url, timeout=30).text
        assert _sample(after, "whispr_bus_publish_duration_seconds_count") == published + 1  # one commit, one publish
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, log.read_text()  # the metrics thread does not hold the exit
