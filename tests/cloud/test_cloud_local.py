"""`whispr-messaging cloud-local` end to end, as a developer runs it: started as a process, ready
(gateway readiness, both relays accepting sockets), a REST send that reaches sockets on BOTH
relays through the Pub/Sub emulator, then Ctrl-C: everything it started (the JVMs of the
emulators, PostgreSQL and its backends, the Cloud Tasks emulator, gateway and relays) is gone."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import orjson
import pytest
from google.cloud import pubsub_v1
from websockets.sync.client import connect

from shared.auth.tokens import mint_dev_token
from shared.config import Settings
from tests import procfs
from tests.relay.phx import Phx

READY_TIMEOUT = 75.0


def _processes() -> dict[int, tuple[int, int, str, str]]:
    """pid -> (ppid, pgid, state, command name), from /proc."""
    table: dict[int, tuple[int, int, str, str]] = {}
    for pid in procfs.pids():
        fields = procfs.stat_fields(pid)
        if fields is not None:
            state, ppid, pgid = fields[:3]
            table[pid] = (int(ppid), int(pgid), state, procfs.name(pid))
    return table


def _everything_of(roots: set[int]) -> dict[int, str]:
    """The reported processes, the members of the groups they lead, and all their descendants."""
    table = _processes()
    groups = {pid for pid in roots if pid in table and table[pid][1] == pid}
    found = {pid for pid, (_, pgid, _, _) in table.items() if pid in roots or pgid in groups}
    grew = True
    while grew:
        more = {pid for pid, (ppid, _, _, _) in table.items() if ppid in found} - found
        found |= more
        grew = bool(more)
    return {pid: table[pid][3] for pid in found}


def _wait_for_info(process: subprocess.Popen[bytes], info_file: Path, output: Path) -> dict[str, Any]:
    deadline = time.monotonic() + READY_TIMEOUT
    while not info_file.exists():
        if process.poll() is not None:
            raise AssertionError(f"cloud-local exited with {process.returncode}:\n{output.read_text()[-4000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"cloud-local not ready in {READY_TIMEOUT:.0f} s:\n{output.read_text()[-4000:]}")
        time.sleep(0.2)
    return dict(json.loads(info_file.read_text()))


def _socket(relay_url: str, settings: Settings, user_id: str, device_id: str) -> Phx:
    token = mint_dev_token(settings, user_id, device_id=device_id)
    ws = connect(f"{relay_url}?{urlencode({'token': token, 'vsn': '2.0.0'})}", open_timeout=10)
    return Phx(ws, user_id)


def test_cloud_local_serves_like_gcp_and_ctrl_c_stops_everything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started = time.monotonic()
    info_file, output = tmp_path / "cloud-local.json", tmp_path / "cloud-local.out"
    with open(output, "wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "shared.cli",
                "cloud-local",
                "--gateway-port",
                "0",
                "--relay-ports",
                "0,0",
                "--info-file",
                str(info_file),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
            start_new_session=True,
            env={k: v for k, v in os.environ.items() if not k.startswith("WHISPR_")},
        )
    sockets: list[Phx] = []
    everything: dict[int, str] = {}
    try:
        info = _wait_for_info(process, info_file, output)
        assert set(info["pids"]) == {
            *("gateway", "relay-1", "relay-2", "events", "pubsub", "firestore", "cloud tasks", "postgres")
        }
        assert info["env"]["WHISPR_SCHEDULER"] == "cloudtasks" and info["env"]["WHISPR_EVENT_BUS"] == "pubsub"
        assert info["env"]["WHISPR_STATE_STORE"] == "firestore"
        ready = httpx.get(f"{info['api']}/health/ready", timeout=10)
        assert ready.status_code == 200 and ready.json()["data"]["status"] == "ok"
        everything = _everything_of({pid for pid in info["pids"].values() if pid})
        names = list(everything.values())
        assert names.count("java") >= 2 and "postgres" in names, names  # the JVMs and the database are tracked

        settings = Settings(dev_key_path=info["env"]["WHISPR_DEV_KEY_PATH"])
        alice, bob = str(uuid.uuid4()), str(uuid.uuid4())
        rest = httpx.Client(
            base_url=info["api"], timeout=15, headers={"Authorization": f"Bearer {mint_dev_token(settings, alice)}"}
        )
        created = rest.post("/conversations", json={"type": "direct", "other_user_id": bob})
        assert created.status_code in (200, 201), created.text
        cid = created.json()["data"]["id"]
        topic = f"conversation:{cid}"
        # bob's phone on one relay, his laptop on the other: two instances, two subscriptions
        for relay_url, device in zip(info["relays"], ("phone", "laptop"), strict=True):
            sock = _socket(relay_url, settings, bob, device)
            sockets.append(sock)
            sock.join_ok(topic)

        body = {
            "content": "through pub/sub to both relays",
            "message_type": "text",
            "client_random": secrets.randbits(32),
        }
        sent = rest.post(f"/conversations/{cid}/messages", json=body)
        assert sent.status_code == 201, sent.text
        message = sent.json()["data"]
        for sock in sockets:
            pushed = sock.event(topic, "new_message", lambda p: p["message"]["id"] == message["id"], timeout=20)
            assert pushed["message"]["content"] == "through pub/sub to both relays"
            assert pushed["message"]["seq"] == message["seq"]
        # user-service says bob's account is gone: its topic pushes to the events function, which
        # removes him; both relays tell his sockets
        monkeypatch.setenv("PUBSUB_EMULATOR_HOST", info["emulators"]["pubsub"])
        publisher = pubsub_v1.PublisherClient()
        deleted = {"specversion": "1.0", "id": str(uuid.uuid4()), "source": "//whispr/user-service"}
        deleted |= {"type": "whispr.user.deleted", "data": {"user_id": bob}}
        publisher.publish(info["sibling_topics"]["user"], orjson.dumps(deleted)).result(timeout=30)
        publisher.stop()
        for sock in sockets:
            assert sock.event(topic, "member_removed", lambda p: p["user_id"] == bob, timeout=30)
        rest.close()
    finally:
        for sock in sockets:
            sock.close()
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)  # Ctrl-C in its terminal
        try:
            code = process.wait(45)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            raise
        left = {pid: name for pid, name in everything.items() if procfs.running(pid)}
        if left:  # ours: do not leave them behind even when the test fails
            for pid in left:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
    log = output.read_text()
    assert code == 0, log[-4000:]
    assert "cloud-local: stopped" in log
    assert left == {}, f"still running after Ctrl-C: {left}"
    assert time.monotonic() - started < 90
