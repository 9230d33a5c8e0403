"""Logs an operator can use (shared/telemetry/logs.py): a full flow through the service as its
own process (REST send, socket delivery, a scheduled message fired by the timer) writes only
JSON lines in Cloud Logging's shape, every line of one request carries that request's id, and
no token, message content or payload appears anywhere."""

from __future__ import annotations

import json
import logging
import signal
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

from shared.app.services import utcnow
from shared.bootstrap import build_services
from shared.devtools.postgres import free_port
from shared.telemetry.logs import CloudLoggingFormatter, redact
from tests.api.test_scheduled import iso
from tests.relay.phx import Phx
from tests.support import BASE, RunningServer, fresh_database, make_settings, service_env, service_process

SECRETS = ("sb7f3a", "lb91c2", "e2e-ciphertext-5d0b")  # short: a logged frame would show them whole


def test_a_full_flow_logs_json_with_request_ids_and_no_secrets(pg_url: str, key_path: str, tmp_path: Path) -> None:
    url = fresh_database(pg_url, "whispr_logs_flow", key_path)
    port = free_port()
    env = service_env(
        url, key_path, port, {"scheduled_min_lead_seconds": 1}, WHISPR_SCHEDULER="local", WHISPR_LOG_LEVEL="debug"
    )
    services = build_services(make_settings(url, key_path))  # mints tokens; the process serves
    server = RunningServer(f"http://127.0.0.1:{port}", services)
    log_file = tmp_path / "service.log"
    alice, bob = server.client(), server.client()
    tokens = [alice.token, bob.token]
    with service_process(env, port, log_file) as proc:
        cid = alice.direct_with(bob)["id"]
        sock = Phx.open(server, bob.user_id)
        tokens.append(sock.ws.request.path.split("token=", 1)[1].split("&", 1)[0])  # type: ignore[union-attr]
        sock.join_ok(f"conversation:{cid}")
        sock.joined(f"conversation:{cid}")

        sent = alice.post(
            f"/conversations/{cid}/messages",
            {"content": SECRETS[0], "message_type": "text", "client_random": 4242, "metadata": {"k": SECRETS[2]}},
            headers={"X-Request-Id": "flow-send-1"},
        )
        assert sent.status_code == 201 and sent.headers["x-request-id"] == "flow-send-1"
        sock.event(f"conversation:{cid}", "new_message", lambda p: p["message"]["content"] == SECRETS[0])

        traced = alice.get(
            f"/conversations/{cid}/messages",
            headers={"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
        )
        assert traced.headers["x-request-id"] == "4bf92f3577b34da6a3ce929d0e0e4736"  # the trace's id, echoed

        due = utcnow() + timedelta(seconds=1.5)
        body = {"conversation_id": cid, "content": SECRETS[1], "message_type": "text", "scheduled_at": iso(due)}
        assert alice.post("/messages/scheduled", body).status_code == 201
        sock.event(f"conversation:{cid}", "new_message", lambda p: p["message"]["content"] == SECRETS[1], timeout=30)
        sock.close()
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    services.close()

    lines = [line for line in log_file.read_text().splitlines() if line.strip()]
    entries: list[dict[str, Any]] = [json.loads(line) for line in lines]  # every line is JSON
    for entry in entries:
        assert {"severity", "message", "time", "logger"} <= set(entry), entry
        assert entry["severity"] in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}
        assert entry["time"].endswith("Z")
    assert not [e for e in entries if e["logger"] == "uvicorn.error" and e["severity"] == "DEBUG"]  # frames, headers
    text = log_file.read_text()
    for secret in (*tokens, *SECRETS):
        assert secret not in text, f"{secret[:12]}… is in the logs"

    of_send = [e for e in entries if e.get("request_id") == "flow-send-1"]
    assert any(e.get("httpRequest", {}).get("status") == 201 for e in of_send)  # the access line
    assert any("stored in conversation" in e["message"] for e in of_send)  # the use case's line
    send_access = next(e for e in of_send if "httpRequest" in e)
    assert send_access["httpRequest"]["requestMethod"] == "POST"
    assert send_access["httpRequest"]["requestUrl"] == f"{BASE}/conversations/{cid}/messages"
    assert float(send_access["httpRequest"]["latency"].rstrip("s")) >= 0

    of_traced = [e for e in entries if e.get("request_id") == "4bf92f3577b34da6a3ce929d0e0e4736"]
    assert of_traced and all(
        e["logging.googleapis.com/trace"].endswith("/traces/4bf92f3577b34da6a3ce929d0e0e4736")
        and e["logging.googleapis.com/spanId"] == "00f067aa0ba902b7"
        for e in of_traced
    )
    fired = [e for e in entries if e["message"].startswith("scheduled message") and "sent as" in e["message"]]
    assert len(fired) == 1 and fired[0]["request_id"].startswith("scheduled-")
    assert [
        e for e in entries if "stored in conversation" in e["message"] and e["request_id"] == fired[0]["request_id"]
    ]
    opened = [e for e in entries if e["message"] == f"socket open for user {bob.user_id}"]
    closed = [e for e in entries if e["message"] == f"socket closed for user {bob.user_id}"]
    assert len(opened) == len(closed) == 1 and opened[0]["request_id"] == closed[0]["request_id"]
    requests = [e for e in entries if "httpRequest" in e]
    assert len({e["request_id"] for e in requests}) == len(requests)  # one id per request


def test_tokens_are_redacted_whatever_logs_them() -> None:
    jwt_like = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiIxMjMifQ.c2lnbmF0dXJl"
    assert redact(f"GET /socket?token={jwt_like}&vsn=2.0.0") == "GET /socket?token=[redacted]&vsn=2.0.0"
    assert redact(f"Authorization: Bearer {jwt_like}") == "Authorization: Bearer [redacted]"
    assert redact(f"a token {jwt_like} in passing") == "a token [redacted] in passing"
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed for %s", (jwt_like,), None)
    assert jwt_like not in CloudLoggingFormatter("p").format(record)


def test_a_request_id_that_is_not_a_sane_token_is_replaced(server: RunningServer) -> None:
    weird = httpx.get(f"{server.url}{BASE}/health", headers={"X-Request-Id": "a b\tc" + "x" * 300})
    assert weird.headers["x-request-id"] != "a b\tc" and len(weird.headers["x-request-id"]) == 32
    cloud = httpx.get(f"{server.url}{BASE}/health", headers={"X-Cloud-Trace-Context": f"{uuid.uuid4().hex}/1;o=1"})
    assert len(cloud.headers["x-request-id"]) == 32
