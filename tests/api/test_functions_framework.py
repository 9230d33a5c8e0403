"""Each function in functions/ starts alone under functions-framework and serves its routes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from shared.devtools.postgres import free_port
from shared.http.routes import functions
from tests.support import RunningServer

ROOT = Path(__file__).resolve().parents[2]
CLI = Path(sys.executable).with_name("functions-framework")


def test_every_function_in_the_route_table_has_an_entry_point() -> None:
    for name in functions():
        main = ROOT / "functions" / name / "main.py"
        assert main.exists(), f"functions/{name}/main.py is missing"
        assert f"{name} = functions_framework.aio.http(" in main.read_text()


@contextmanager
def running_function(name: str, env: dict[str, str]) -> Iterator[str]:
    """`functions-framework --asgi --target <name>` as its own process, as Cloud Functions runs
    it; yields its base URL."""
    port = free_port()
    proc = subprocess.Popen(
        [
            str(CLI),
            "--asgi",
            "--source",
            str(ROOT / f"functions/{name}/main.py"),
            "--target",
            name,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(url + "/messaging/api/v1/no-such-route", timeout=1)
                break
            except httpx.TransportError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    out = proc.stdout.read().decode() if proc.stdout else ""
                    pytest.fail(f"functions-framework did not start:\n{out}")
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture
def messages_function(server: RunningServer) -> Iterator[str]:
    settings = server.services.settings
    env = {"DATABASE_URL": settings.database_url, "WHISPR_DEV_KEY_PATH": settings.dev_key_path}
    with running_function("messages", env) as url:
        yield url


def test_messages_function_alone_serves_send_and_history(server: RunningServer, messages_function: str) -> None:
    alice, bob = server.client(), server.client()
    conv = alice.direct_with(bob)
    auth = {"Authorization": f"Bearer {alice.token}"}
    sent = httpx.post(
        f"{messages_function}/messaging/api/v1/conversations/{conv['id']}/messages",
        json={"content": "via the function", "client_random": 99},
        headers=auth,
    )
    assert sent.status_code == 201, sent.text
    # the gateway (another process, same database) sees it
    history = bob.get(f"/conversations/{conv['id']}/messages").json()["data"]
    assert [m["content"] for m in history] == ["via the function"]
    # the function serves only its own resource's routes
    other = httpx.get(f"{messages_function}/messaging/api/v1/conversations", headers=auth)
    assert other.status_code == 404
    assert other.json()["code"] == "route_not_found"
