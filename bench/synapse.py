"""Matrix Synapse, the reference Python messaging server, side by side on the same PostgreSQL.

Synapse is installed at bench time into its own virtualenv under the results' cache folder
(never into the project's requirements). Its configuration is written here: PostgreSQL (a
database with C collation, as Synapse requires), one client listener on 127.0.0.1, no
federation key servers (no network), the shared-secret registration API, and every `rc_*` rate
limit lifted. Users are registered with the shared-secret admin API.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

VERSION = "1.163.2"
SERVER_NAME = "bench.local"
LIFTED = {"per_second": 1_000_000, "burst_count": 1_000_000}

LOG_CONFIG = """version: 1
formatters:
  plain:
    format: '%(asctime)s %(name)s %(levelname)s %(message)s'
handlers:
  file:
    class: logging.FileHandler
    filename: {path}
    formatter: plain
root:
  level: WARNING
  handlers: [file]
disable_existing_loggers: false
"""


class SynapseUnavailable(RuntimeError):
    """Synapse could not be installed or started here; the message says why."""


def ensure_installed(cache: Path, log: Path) -> Path:
    """The virtualenv's python, with matrix-synapse and psycopg2 installed (once per cache)."""
    venv = cache / "synapse-venv"
    python = venv / "bin" / "python"
    stamp = venv / f".synapse-{VERSION}"
    if stamp.exists():
        return python
    cache.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        try:
            if not python.exists():
                subprocess.run(
                    [sys.executable, "-m", "venv", str(venv)], check=True, stdout=out, stderr=out, timeout=300
                )
            subprocess.run(
                [str(python), "-m", "pip", "install", "-q", f"matrix-synapse=={VERSION}", "psycopg2-binary"],
                check=True,
                stdout=out,
                stderr=out,
                timeout=1800,
            )
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as error:
            raise SynapseUnavailable(f"pip install matrix-synapse=={VERSION} failed ({error}); see {log}") from error
    stamp.touch()
    return python


def create_database(bin_dir: str, port: int, user: str = "whispr") -> None:
    psql = shutil.which("psql") or os.path.join(bin_dir, "psql")
    subprocess.run(
        [
            psql,
            "-q",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-U",
            user,
            "-d",
            "postgres",
            "-c",
            "DROP DATABASE IF EXISTS synapse",
            "-c",
            "CREATE DATABASE synapse ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )


def write_config(workdir: Path, port: int, pg_port: int, secret: str) -> Path:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "log.yaml").write_text(LOG_CONFIG.format(path=workdir / "homeserver.log"))
    config: dict[str, Any] = {
        "server_name": SERVER_NAME,
        "pid_file": str(workdir / "homeserver.pid"),
        "listeners": [
            {
                "port": port,
                "bind_addresses": ["127.0.0.1"],
                "type": "http",
                "tls": False,
                "x_forwarded": False,
                "resources": [{"names": ["client"], "compress": False}],
            }
        ],
        "database": {
            "name": "psycopg2",
            "args": {
                "user": "whispr",
                "database": "synapse",
                "host": "127.0.0.1",
                "port": pg_port,
                "cp_min": 5,
                "cp_max": 10,
            },
        },
        "log_config": str(workdir / "log.yaml"),
        "media_store_path": str(workdir / "media"),
        "signing_key_path": str(workdir / "signing.key"),
        "registration_shared_secret": secret,
        "macaroon_secret_key": secrets.token_hex(32),
        "form_secret": secrets.token_hex(32),
        "report_stats": False,
        "enable_metrics": False,
        "trusted_key_servers": [],
        "suppress_key_server_warning": True,
        "url_preview_enabled": False,
        # rate limits lifted (the default config otherwise)
        "rc_message": LIFTED,
        "rc_registration": LIFTED,
        "rc_login": {"address": LIFTED, "account": LIFTED, "failed_attempts": LIFTED},
        "rc_joins": {"local": LIFTED, "remote": LIFTED},
        "rc_joins_per_room": LIFTED,
        "rc_invites": {"per_room": LIFTED, "per_user": LIFTED, "per_issuer": LIFTED},
        "rc_admin_redaction": LIFTED,
        "rc_3pid_validation": LIFTED,
        "rc_presence": {"per_user": LIFTED},
        "rc_room_creation": LIFTED,
    }
    path = workdir / "homeserver.yaml"
    path.write_text(json.dumps(config, indent=1))  # JSON is YAML
    return path


@dataclass
class User:
    user_id: str
    token: str


@dataclass
class Synapse:
    python: Path
    workdir: Path
    port: int
    pg_port: int
    secret: str = field(default_factory=lambda: secrets.token_hex(16))
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 180.0) -> None:
        config = write_config(self.workdir, self.port, self.pg_port, self.secret)
        log = open(self.workdir / "stdout.log", "ab")  # noqa: SIM115 - lives as long as the server
        subprocess.run(
            [str(self.python), "-m", "synapse.app.homeserver", "--config-path", str(config), "--generate-keys"],
            check=True,
            stdout=log,
            stderr=log,
            timeout=120,
            cwd=self.workdir,
        )
        self.process = subprocess.Popen(
            [str(self.python), "-m", "synapse.app.homeserver", "--config-path", str(config)],
            stdout=log,
            stderr=log,
            cwd=self.workdir,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SynapseUnavailable(f"synapse exited with {self.process.returncode}; see {self.workdir}")
            try:
                if httpx.get(f"{self.url}/_matrix/client/versions", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        self.stop()
        raise SynapseUnavailable(f"synapse did not answer within {timeout:.0f}s; see {self.workdir}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    # -- the client-server API, for the fixture --------------------------------------------------

    def register(self, client: httpx.Client, name: str) -> User:
        nonce = client.get(f"{self.url}/_synapse/admin/v1/register").json()["nonce"]
        password = secrets.token_hex(8)
        mac = hmac.new(
            self.secret.encode(),
            b"\x00".join([nonce.encode(), name.encode(), password.encode(), b"notadmin"]),
            hashlib.sha1,
        ).hexdigest()
        response = client.post(
            f"{self.url}/_synapse/admin/v1/register",
            json={"nonce": nonce, "username": name, "password": password, "mac": mac, "admin": False},
        )
        response.raise_for_status()
        body = response.json()
        return User(body["user_id"], body["access_token"])

    def direct_room(self, client: httpx.Client, a: User, b: User) -> str:
        response = client.post(
            f"{self.url}/_matrix/client/v3/createRoom",
            headers={"Authorization": f"Bearer {a.token}"},
            json={"preset": "trusted_private_chat", "is_direct": True, "invite": [b.user_id]},
        )
        response.raise_for_status()
        room: str = response.json()["room_id"]
        client.post(
            f"{self.url}/_matrix/client/v3/rooms/{room}/join", headers={"Authorization": f"Bearer {b.token}"}, json={}
        ).raise_for_status()
        return room

    def send(self, client: httpx.Client, user: User, room: str, body: str, txn: str) -> None:
        client.put(
            f"{self.url}/_matrix/client/v3/rooms/{room}/send/m.room.message/{txn}",
            headers={"Authorization": f"Bearer {user.token}"},
            json={"msgtype": "m.text", "body": body},
        ).raise_for_status()
