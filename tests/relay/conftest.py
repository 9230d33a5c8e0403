"""The relay's own gateway on PostgreSQL: the same gateway as `server`, with the per-connection
and per-IP limits raised so that tests can open many sockets and push freely (the limits are
tested with their own servers), and typing expiring after 1 s instead of 10."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import RunningServer, make_settings, serve

FREE = {
    "messages_burst": 100_000,
    "messages_per_minute": 1_000_000,
    "group_creations_per_day": 100_000,
    "ws_sockets_per_ip": 10_000,
    "ws_pushes_per_minute": 1_000_000,
    "ws_push_burst": 100_000,
}


@pytest.fixture(scope="session")
def relay(pg_url: str, key_path: str) -> Iterator[RunningServer]:
    with serve(make_settings(pg_url, key_path, **FREE, typing_expiry_seconds=1.0)) as running:
        yield running


ServeWith = Callable[..., RunningServer]


@pytest.fixture
def serve_with(pg_url: str, key_path: str) -> Iterator[ServeWith]:
    """Start a gateway with some limits changed: `serve_with(ws_idle_timeout_seconds=1)`."""
    with contextlib.ExitStack() as stack:

        def start(**limits: Any) -> RunningServer:
            return stack.enter_context(serve(make_settings(pg_url, key_path, **{**FREE, **limits})))

        yield start


JS_DIR = Path(__file__).parent / "js"


@pytest.fixture(scope="session")
def phoenix_js() -> Path:
    """tests/relay/js with its npm packages installed (npm install if node_modules lacks one): the
    phoenix client and ws, and @asyncapi/specs (the AsyncAPI JSON Schemas)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.fail("Node.js and npm are needed to drive the relay with the phoenix JavaScript client")
    if not all((JS_DIR / "node_modules" / name).is_dir() for name in ("phoenix", "ws", "@asyncapi/specs")):
        done = subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund"],
            cwd=JS_DIR,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, f"npm install failed:\n{done.stdout}\n{done.stderr}"
    return JS_DIR
