"""Issue 10, item 4: a socket does not outlive its token. At the token's expiry (plus the
configured leeway) the relay closes the socket with 4001 `token_expired`; no push read after
that moment is handled, and the official phoenix client reconnects by itself with fresh params
(its `params` closure gives the new token) and rejoins its channels."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import jwt
from websockets.exceptions import ConnectionClosed

from tests.relay.conftest import ServeWith
from tests.relay.phx import Phx
from tests.support import UserClient, client_random

TTL = 3  # seconds: long enough to join, short enough to wait for


def _exp(token: str) -> float:
    return float(jwt.decode(token, options={"verify_signature": False})["exp"])


def _history(client: UserClient, conversation_id: str) -> list[str]:
    """Every message's content, all pages."""
    contents: list[str] = []
    query = "limit=100"
    while True:
        body = client.get(f"/conversations/{conversation_id}/messages?{query}").json()
        contents += [m["content"] for m in body["data"]]
        if not body["meta"]["has_more"]:
            return contents
        query = f"limit=100&before_seq={body['meta']['next_before_seq']}"


def test_the_socket_closes_at_expiry_and_no_later_push_is_stored(serve_with: ServeWith) -> None:
    server = serve_with()
    alice, bob = server.client(), server.client()
    conv = alice.direct_with(bob)
    topic = f"conversation:{conv['id']}"
    token = server.token(alice.user_id, ttl=TTL)
    served_until = _exp(token) + 5
    sock = Phx.open(server, alice.user_id, token=token)
    acknowledged: list[str] = []
    try:
        sock.join_ok(topic)
        # push steadily (each carries the moment it was written) until the server closes the socket
        deadline = served_until + 15
        closed: ConnectionClosed | None = None
        while closed is None:
            assert time.time() < deadline, "the socket was still served 15 s after its token expired"
            content = repr(time.time())
            try:
                ref = sock.push(
                    topic, "new_message", {"content": content, "message_type": "text", "client_random": client_random()}
                )
                reply = sock.reply(ref, timeout=5)
                if reply.payload["status"] == "ok":
                    acknowledged.append(content)
            except ConnectionClosed as error:
                closed = error
            except AssertionError:  # no reply: the socket went away meanwhile
                continue
        assert closed.rcvd is not None, "the server closed without a close frame"
        assert (closed.rcvd.code, closed.rcvd.reason) == (4001, "token_expired")
    finally:
        sock.close()
    stored = _history(bob, conv["id"])
    assert acknowledged and set(acknowledged) <= set(stored)  # nothing acknowledged is lost
    late = [c for c in stored if float(c) >= served_until]
    assert not late, f"pushes written after the token expired were stored: {late}"


def test_an_expired_token_cannot_open_a_socket_again(serve_with: ServeWith) -> None:
    server = serve_with()
    user = server.client()
    token = server.token(user.user_id, ttl=1)
    sock = Phx.open(server, user.user_id, token=token)
    assert sock.closed_by_server(timeout=15)
    try:
        Phx.open(server, user.user_id, token=token)
    except Exception as error:  # refused upgrade (403)
        assert "403" in str(error)
    else:
        raise AssertionError("an expired token opened a socket")


def test_the_phoenix_client_reconnects_with_a_fresh_token_and_rejoins(serve_with: ServeWith, phoenix_js: Path) -> None:
    server = serve_with()
    alice, bob = server.client(), server.client()
    conv = alice.direct_with(bob)
    short, fresh = server.token(alice.user_id, ttl=TTL), server.token(alice.user_id, ttl=3600)
    env = {
        **os.environ,
        "RELAY_ENDPOINT": server.url.replace("http://", "ws://") + "/messaging/socket",
        "CONVERSATION_ID": conv["id"],
        "USER_ID": alice.user_id,
        "TOKENS": json.dumps([short, fresh]),
    }
    done = subprocess.run(
        ["node", "token_refresh.js"], cwd=phoenix_js, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["tokens_used"] == [short, fresh]  # the first socket with the short token, then the fresh one
    assert result["close_code"] == 4001
    assert result["joins"] == 2  # joined, then rejoined by itself after reconnecting
    sent = result["sent"]
    assert sent["content"] == "after reconnecting"
    history = bob.get(f"/conversations/{conv['id']}/messages").json()["data"]
    assert [m["id"] for m in history] == [sent["id"]]
