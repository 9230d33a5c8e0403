"""Issue 10, item 8: what every answer says about itself (never cached, never sniffed, no server
banner), a policy on HTML pages that keeps them from running or framing anything foreign, and
frames over the limit answered with an error reply while the socket stays, up to the hard cap."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import subprocess
import tempfile

import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from tests.relay.conftest import ServeWith
from tests.relay.phx import Phx
from tests.support import BASE, RunningServer

MIB = 1024 * 1024


def _assert_secure(response: httpx.Response) -> None:
    assert response.headers.get("cache-control") == "no-store", dict(response.headers)
    assert response.headers.get("x-content-type-options") == "nosniff", dict(response.headers)
    assert "server" not in response.headers, dict(response.headers)


def test_authenticated_json_is_never_cached_nor_sniffed_and_names_no_server(relay: RunningServer) -> None:
    alice, bob = relay.client(), relay.client()
    conv = alice.direct_with(bob)
    for response in (
        alice.get("/conversations"),
        alice.get(f"/conversations/{conv['id']}/messages"),
        alice.post(
            f"/conversations/{conv['id']}/messages", {"content": "hi", "message_type": "text", "client_random": 7}
        ),
        bob.get(f"/conversations/{conv['id']}"),
        httpx.get(relay.url + BASE + "/conversations"),  # 401
        alice.get("/conversations/not-a-uuid"),  # 400
    ):
        _assert_secure(response)
        assert response.headers["content-type"].startswith("application/json")


def test_the_socket_upgrade_names_no_server(relay: RunningServer) -> None:
    sock = Phx.open(relay, relay.client().user_id)
    try:
        assert sock.ws.response is not None
        assert "server" not in {name.lower() for name in sock.ws.response.headers}
    finally:
        sock.close()


def test_the_docs_page_has_a_policy_against_foreign_code_and_framing(relay: RunningServer) -> None:
    response = httpx.get(relay.url + "/messaging/api/docs")
    assert response.status_code == 200
    _assert_secure(response)
    directives = [part.strip().partition(" ") for part in response.headers["content-security-policy"].split(";")]
    policy = {name: value for name, _, value in directives}
    assert policy["default-src"] == "'none'"
    assert policy["frame-ancestors"] == "'none'"
    assert response.headers["x-frame-options"] == "DENY"
    assert "unsafe-inline" not in response.headers["content-security-policy"]
    # every inline block of the page is allowed by its hash, nothing else
    for kind, body in re.findall(r"<(script|style)>(.*?)</\1>", response.text, re.DOTALL):
        digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in policy[f"{kind}-src"].split()


@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs chromium (apt-get install chromium)")
def test_the_docs_page_still_works_under_its_policy_in_a_browser(relay: RunningServer) -> None:
    """Chromium enforces the policy: the page's script must still run and render the operations."""
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run(
            [
                "chromium",
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                f"--user-data-dir={profile}",
                "--virtual-time-budget=10000",
                "--dump-dom",
                relay.url + "/messaging/api/docs",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert done.returncode == 0, done.stderr[-2000:]
    dom = done.stdout
    assert "Loading the OpenAPI document" not in dom, "the page's script did not run under its policy"
    assert "/conversations/{conversation_id}/messages" in dom


def test_a_frame_over_a_mebibyte_gets_an_error_reply_and_the_socket_stays(relay: RunningServer) -> None:
    alice, bob = relay.client(), relay.client()
    conv = alice.direct_with(bob)
    topic = f"conversation:{conv['id']}"
    sock = Phx.open(relay, alice.user_id, compression=None)
    try:
        sock.join_ok(topic)
        big = json.dumps([sock.join_refs[topic], "big-1", topic, "new_message", {"content": "x" * (2 * MIB)}])
        sock.send_raw(big)
        reply = sock.reply("big-1")
        assert reply.topic == topic
        assert reply.payload["status"] == "error"
        assert reply.payload["response"]["reason"] == "frame_too_large"
        # the socket and the channel go on
        sent = sock.ok(topic, "new_message", {"content": "still here", "message_type": "text", "client_random": 11})
        assert sent["message"]["content"] == "still here"
    finally:
        sock.close()


def test_a_frame_over_the_hard_cap_closes_the_socket_with_1009(serve_with: ServeWith) -> None:
    server = serve_with(ws_frame_hard_cap_bytes=2 * MIB)
    sock = Phx.open(server, server.client().user_id, compression=None, max_size=None)
    try:
        # Only the header of a 3 MiB text frame (masked, 64-bit length): the relay refuses the frame
        # from its header. Sending the payload too would race the close: the relay closes the TCP
        # connection after its 1009, and with the client's bytes still unread there the kernel
        # answers them with a reset, which can reach the client before it reads the close frame.
        header = bytes([0x81, 0x80 | 127]) + (3 * MIB).to_bytes(8, "big") + b"mask"
        sock.ws.socket.sendall(header)
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                sock.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
    finally:
        sock.close()
