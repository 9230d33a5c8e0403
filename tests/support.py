"""Test helpers: a real gateway on a real port, and an HTTP client that speaks for one user."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar, cast

import httpx
import uvicorn

from shared.app import messages as message_use_cases
from shared.app.commands import SendMessage
from shared.app.services import Services
from shared.app.views import message_view
from shared.auth.tokens import build_verifier, mint_dev_token
from shared.bootstrap import build_services
from shared.config import Limits, Settings
from shared.devtools.postgres import free_port
from shared.http.gateway import create_gateway
from shared.relay.server import uvicorn_options

BASE = "/messaging/api/v1"
ROOT = Path(__file__).resolve().parents[1]


_SETTINGS_FIELDS = {f.name for f in dataclasses.fields(Settings)}


def make_settings(database_url: str, key_path: str, **values: Any) -> Settings:
    """Settings for a test service: `values` are limits (`ws_sockets_per_ip=2`) or, by name,
    settings (`trusted_proxy_hops=1`)."""
    own = {k: v for k, v in values.items() if k in _SETTINGS_FIELDS}
    limits = {k: v for k, v in values.items() if k not in _SETTINGS_FIELDS}
    return Settings(
        database_url=database_url, dev_key_path=key_path, limits=dataclasses.replace(Limits(), **limits), **own
    )


@dataclasses.dataclass
class RunningServer:
    url: str
    services: Services

    def token(self, user_id: str, device_id: str | None = None, ttl: int = 3600) -> str:
        return mint_dev_token(self.services.settings, user_id, device_id=device_id, ttl_seconds=ttl)

    def client(self, user_id: str | None = None, device_id: str | None = None) -> UserClient:
        user_id = user_id or new_id()
        return UserClient(self, user_id, self.token(user_id, device_id))


@contextmanager
def serve(
    settings: Settings, port: int | None = None, app_factory: Callable[..., Any] = create_gateway
) -> Iterator[RunningServer]:
    """The local gateway (or what `app_factory` makes of the services and the verifier, e.g. the
    relay alone) with uvicorn on `port` (default: a free one), in a background thread."""
    services = build_services(settings)
    app = app_factory(services, build_verifier(settings))
    port = port or free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", lifespan="off", **uvicorn_options(settings)
    )
    server = uvicorn.Server(config)
    services.scheduler.start()
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("gateway did not start")
        time.sleep(0.02)
    try:
        yield RunningServer(f"http://127.0.0.1:{port}", services)
    finally:
        server.should_exit = True
        thread.join(10)
        services.close()


T = TypeVar("T")


def eventually(probe: Callable[[], T], check: Callable[[T], bool], timeout: float = 20.0, what: str = "") -> T:
    """Poll `probe` every 50 ms until `check` holds of its value (a deadline, not a sleep)."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if check(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what or check}; last: {value!r}")
        time.sleep(0.05)


def wait_for(probe: Callable[[], T | None], what: str = "condition", timeout: float = 15.0) -> T:
    """`probe()`'s first true value (`eventually` with truth as the check)."""
    return cast(T, eventually(probe, bool, timeout, what))


def new_id() -> str:
    return str(uuid.uuid4())


def client_random() -> int:
    return secrets.randbits(32)


class UserClient:
    """One user's HTTP client against the running gateway."""

    def __init__(self, server: RunningServer, user_id: str, token: str):
        self.server = server
        self.user_id = user_id
        self.token = token
        self.http = httpx.Client(base_url=server.url + BASE, headers={"Authorization": f"Bearer {token}"}, timeout=30)

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.request(method, path, **kwargs)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.get(path, **kwargs)

    def post(self, path: str, json: Any = None, **kwargs: Any) -> httpx.Response:
        return self.http.post(path, json=json, **kwargs)

    def put(self, path: str, json: Any = None, **kwargs: Any) -> httpx.Response:
        return self.http.put(path, json=json, **kwargs)

    def patch(self, path: str, json: Any = None, **kwargs: Any) -> httpx.Response:
        return self.http.patch(path, json=json, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.delete(path, **kwargs)

    # conveniences for arranging tests
    def direct_with(self, other: UserClient) -> dict[str, Any]:
        response = self.post("/conversations", {"type": "direct", "other_user_id": other.user_id})
        assert response.status_code in (200, 201), response.text
        return dict(response.json()["data"])

    def group_with(self, *others: UserClient, name: str = "Team") -> dict[str, Any]:
        body = {"type": "group", "name": name, "user_ids": [o.user_id for o in others]}
        response = self.post("/conversations", body)
        assert response.status_code == 201, response.text
        return dict(response.json()["data"])

    def send(self, conversation_id: str, content: str = "hello", **fields: Any) -> dict[str, Any]:
        body = {"content": content, "message_type": "text", "client_random": client_random(), **fields}
        response = self.post(f"/conversations/{conversation_id}/messages", body)
        assert response.status_code == 201, response.text
        return dict(response.json()["data"])

    def send_alone(self, conversation_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """A send stored in a transaction of its own, as a function stores it: the gateway's REST
        sends join the relay's group commit, which a test holding batches to an exact size must
        not see. The stored message, as the REST send answers it."""
        actor = build_verifier(self.server.services.settings).verify(self.token)
        new = SendMessage.model_validate(body).to_new_message()
        sent = message_use_cases.send_message(self.server.services, actor, conversation_id, new)
        return message_view(sent.message, "sent")

    def close(self) -> None:
        self.http.close()


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    """The spec's error body: {error, code, details} with the right status."""
    assert response.status_code == status, f"{response.status_code} != {status}: {response.text}"
    body = response.json()
    assert set(body) == {"error", "code", "details"}, body
    assert isinstance(body["error"], str) and body["error"]
    assert isinstance(body["details"], dict)
    if code is not None:
        assert body["code"] == code, body
    return dict(body)


def fresh_database(base_url: str, name: str, key_path: str) -> str:
    """A new, migrated PostgreSQL database next to `base_url`'s (on the same server), for tests
    that need a store no other running service touches (e.g. schedulers restarting on it)."""
    import sqlalchemy as sa

    from shared.storage.migrate import upgrade

    base = sa.engine.make_url(base_url)
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}"')
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    admin.dispose()
    url = base.set(database=name).render_as_string(hide_password=False)
    upgrade(make_settings(url, key_path))
    return url


def moderator_client(server: RunningServer, **claims: Any) -> UserClient:
    """A client whose token makes it a global moderator (`roles: ["moderator"]` unless other
    claims are given), signed with the dev key like every test token."""
    import jwt

    from shared.auth.keys import DEV_KID, load_or_create_dev_key

    user_id = new_id()
    now = int(time.time())
    body = {
        "sub": user_id,
        "deviceId": "moderator-device",
        "iat": now,
        "exp": now + 3600,
        **(claims or {"roles": ["moderator"]}),
    }
    key = load_or_create_dev_key(server.services.settings.dev_key_path)
    return UserClient(server, user_id, jwt.encode(body, key, algorithm="ES256", headers={"kid": DEV_KID}))


def service_env(
    database_url: str, key_path: str, port: int, limits: dict[str, Any] | None = None, **extra: str
) -> dict[str, str]:
    """The environment of the service run as its own process (`service_process`): this
    database, this dev key, this port, no scheduler, `limits` as WHISPR_<NAME>, then `extra`."""
    return {
        **os.environ,
        **{f"WHISPR_{name.upper()}": str(value) for name, value in (limits or {}).items()},
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": database_url,
        "WHISPR_DEV_KEY_PATH": key_path,
        "WHISPR_PORT": str(port),
        "WHISPR_GRPC_PORT": "0",  # `dev` serves gRPC too: on a free port, never a fixed one tests share
        "WHISPR_SCHEDULER": "none",
        "WHISPR_LOG_LEVEL": "warning",
        **extra,
    }


def spawn_logged(command: Sequence[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """`command` run from the repository's root in a session of its own (a signal to the test's
    group does not reach it; the test stops it), its output appended to `log`."""
    with log.open("ab") as out:
        return subprocess.Popen(
            list(command), cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


@contextmanager
def service_process(
    env: dict[str, str], port: int, log: Path, args: Sequence[str] = (), command: str = "dev"
) -> Iterator[subprocess.Popen[bytes]]:
    """The gateway and relay in their own process (`python -m shared.cli dev`, what
    `whispr-messaging dev` runs, with `args`; or another `command` that serves /health, such as
    `relay`), ready once /health answers; its whole process group killed at the end (the workers
    of `--workers` die with their parent). A test that may bring the process down runs it this
    way, so that a crash fails the test, not the run."""
    proc = spawn_logged([sys.executable, "-m", "shared.cli", command, "--port", str(port), *args], log, env)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, f"the service exited:\n{log.read_text()[-4000:]}"
            try:
                if httpx.get(f"http://127.0.0.1:{port}{BASE}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"the service did not start:\n{log.read_text()[-4000:]}"
            time.sleep(0.1)
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
