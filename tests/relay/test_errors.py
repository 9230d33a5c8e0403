"""Refused upgrades, refused joins, and bad frames: each gets an HTTP status, an error reply or a
close, and other sockets carry on."""

from __future__ import annotations

import base64
import json
import logging

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect
from websockets.typing import Subprotocol

from shared.relay import calls
from tests.relay.phx import Phx, socket_url
from tests.support import RunningServer, client_random, new_id


def _refused_status(url: str) -> int:
    with pytest.raises(InvalidStatus) as refused:
        connect(url, open_timeout=10).close()
    return refused.value.response.status_code


def test_upgrade_without_a_valid_token_is_refused_with_403(relay: RunningServer) -> None:
    user = new_id()
    assert _refused_status(socket_url(relay, vsn="2.0.0")) == 403
    assert _refused_status(socket_url(relay, token="not-a-jwt", vsn="2.0.0")) == 403
    expired = relay.token(user, ttl=-3600)
    assert _refused_status(socket_url(relay, token=expired, vsn="2.0.0")) == 403
    assert _refused_status(socket_url(relay, token=relay.token(user), user_id=new_id())) == 403
    assert _refused_status(socket_url(relay, path="/socket/websocket", token="x.y.z")) == 403


def test_user_id_matching_the_token_and_no_vsn_are_accepted(relay: RunningServer) -> None:
    user = new_id()
    ws = connect(socket_url(relay, token=relay.token(user), user_id=user), open_timeout=10)
    try:
        ws.send(json.dumps([None, "1", "phoenix", "heartbeat", {}]))  # v2 is the default serializer
        assert json.loads(ws.recv(timeout=10)) == [None, "1", "phoenix", "phx_reply", {"status": "ok", "response": {}}]
    finally:
        ws.close()


def test_unsupported_serializer_version_is_refused(relay: RunningServer) -> None:
    assert _refused_status(socket_url(relay, token=relay.token(new_id()), vsn="3.0.0")) == 400


def test_joins_the_user_may_not_make_are_refused(relay: RunningServer) -> None:
    alice, bob, mallory = relay.client(), relay.client(), relay.client()
    conv = alice.direct_with(bob)
    sock = Phx.open(relay, mallory.user_id)
    try:
        assert sock.join(f"conversation:{conv['id']}")[1]["reason"] == "not_authorized"
        assert sock.join(f"conversation:{new_id()}")[1]["reason"] == "not_found"
        assert sock.join("conversation:not-a-uuid")[1]["reason"] == "not_found"
        status, response = sock.join(f"user:{alice.user_id}")
        assert (status, response["reason"]) == ("error", "not_authorized")
        assert sock.join("lobby:everyone")[1]["reason"] == "unmatched topic"
        assert sock.join("user:")[1]["reason"] == "unmatched topic"
        # a refused join leaves nothing joined: pushes there are unmatched
        response = sock.error(f"conversation:{conv['id']}", "new_message", {"content": "x", "client_random": 1})
        assert response["reason"] == "unmatched topic"
        assert sock.join_ok(f"user:{mallory.user_id}") == {"user_id": mallory.user_id}
    finally:
        sock.close()


def test_join_with_a_bad_last_seq_is_a_validation_error(relay: RunningServer) -> None:
    alice, bob = relay.client(), relay.client()
    conv = alice.direct_with(bob)
    sock = Phx.open(relay, alice.user_id)
    try:
        status, response = sock.join(f"conversation:{conv['id']}", {"last_seq": "three"})
        assert status == "error" and response["reason"] == "validation_failed"
        assert "last_seq" in response["details"]
        status, response = sock.join(f"conversation:{conv['id']}", {"last_seq": -1})
        assert status == "error" and response["reason"] == "validation_failed"
    finally:
        sock.close()


def test_bad_frames_get_error_replies_and_the_socket_goes_on(relay: RunningServer) -> None:
    alice, bob = relay.client(), relay.client()
    conv = alice.direct_with(bob)
    topic = f"conversation:{conv['id']}"
    bad, good = Phx.open(relay, alice.user_id), Phx.open(relay, bob.user_id)
    try:
        bad.join_ok(topic)
        good.join_ok(topic)

        bad.send_raw("this is not json")
        reply = bad.wait(lambda m: m.event == "phx_reply")
        assert reply.payload["status"] == "error" and reply.payload["response"]["reason"] == "invalid_json"

        bad.send_raw(json.dumps(["1", "7", topic, "new_message"]))  # four elements
        reply = bad.reply("7")
        assert reply.payload["response"]["reason"] == "invalid_frame" and reply.topic == topic

        bad.send_raw(json.dumps({"topic": topic, "event": "new_message"}))  # a v1 object on a v2 socket
        assert bad.wait(lambda m: m.event == "phx_reply").payload["response"]["reason"] == "invalid_frame"

        bad.send_raw(json.dumps([None, "8", topic, "new_message", "not an object"]))
        assert bad.reply("8").payload["response"]["reason"] == "invalid_frame"

        bad.send_raw(b"\x00\x01binary")
        assert bad.wait(lambda m: m.event == "phx_reply").payload["response"]["reason"] == "invalid_frame"

        huge = {"content": "x" * (70 * 1024), "message_type": "text", "client_random": client_random()}
        bad.send_raw(json.dumps([bad.join_refs[topic], "9", topic, "new_message", huge]))
        reply = bad.reply("9")
        assert reply.payload["status"] == "error"
        assert reply.payload["response"]["reason"] == "frame_too_large"
        assert reply.payload["response"]["details"] == {"max_bytes": 64 * 1024}

        assert bad.error(topic, "no_such_event")["reason"] == "unknown_event"
        assert bad.error("phoenix", "not_a_heartbeat")["reason"] == "unknown_event"

        # the same socket still works, and so does everyone else's
        sent = bad.ok(
            topic, "new_message", {"content": "still here", "message_type": "text", "client_random": client_random()}
        )["message"]
        assert good.event(topic, "new_message")["message"]["id"] == sent["id"]
        assert [m.payload["message"]["content"] for m in bad.barrier() if m.event == "new_message"] == ["still here"]
        assert [m for m in good.barrier() if m.event == "new_message"] == []
    finally:
        bad.close()
        good.close()


def test_push_errors_carry_the_rest_codes(relay: RunningServer) -> None:
    alice, bob = relay.client(), relay.client()
    conv = alice.direct_with(bob)
    topic = f"conversation:{conv['id']}"
    a, b = Phx.open(relay, alice.user_id), Phx.open(relay, bob.user_id)
    try:
        a.join_ok(topic)
        b.join_ok(topic)
        missing = a.error(topic, "new_message", {"content": "no client_random"})
        assert missing["reason"] == "validation_failed" and "client_random" in missing["details"]
        assert (
            a.error(topic, "new_message", {"content": "x", "message_type": "system", "client_random": 1})["reason"]
            == "validation_failed"
        )
        mine = a.ok(topic, "new_message", {"content": "mine", "client_random": client_random()})["message"]
        assert b.error(topic, "edit_message", {"message_id": mine["id"], "content": "hijack"})["reason"] == "not_sender"
        assert b.error(topic, "edit_message", {"message_id": new_id(), "content": "x"})["reason"] == "message_not_found"
        assert b.error(topic, "delete_message", {"message_id": "nope"})["reason"] == "validation_failed"
        other = alice.direct_with(relay.client())
        elsewhere = alice.send(other["id"], "in another conversation")
        # a push on one conversation's topic cannot act on another conversation's messages
        assert (
            a.error(topic, "edit_message", {"message_id": elsewhere["id"], "content": "x"})["reason"]
            == "message_not_found"
        )
        assert alice.get(f"/messages/{elsewhere['id']}").json()["data"]["content"] == "in another conversation"
    finally:
        a.close()
        b.close()


def test_pushes_to_a_topic_not_joined_are_unmatched(relay: RunningServer) -> None:
    alice, bob = relay.client(), relay.client()
    conv = alice.direct_with(bob)
    sock = Phx.open(relay, alice.user_id)
    try:
        response = sock.error(
            f"conversation:{conv['id']}", "new_message", {"content": "before join", "client_random": client_random()}
        )
        assert response["reason"] == "unmatched topic"
        assert alice.get(f"/conversations/{conv['id']}/messages").json()["data"] == []
    finally:
        sock.close()


def test_a_crashing_push_gets_an_error_reply_then_phx_error_and_rejoin_works(
    relay: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice, bob = relay.client(), relay.client()
    conv = alice.direct_with(bob)
    topic = f"conversation:{conv['id']}"

    def broken(*args: object) -> dict[str, object]:
        raise RuntimeError("a bug, not a domain error")

    monkeypatch.setitem(calls.PUSHES, "message_delivered", broken)
    sock = Phx.open(relay, alice.user_id)
    try:
        sock.join_ok(topic)
        join_ref = sock.join_refs[topic]
        assert sock.error(topic, "message_delivered", {})["reason"] == "internal_error"
        crashed = sock.wait(lambda m: m.event == "phx_error")
        assert (crashed.topic, crashed.join_ref) == (topic, join_ref)
        assert sock.error(topic, "mark_read", {})["reason"] == "unmatched topic"
        sock.join_ok(topic)
        assert sock.ok(topic, "mark_read", {})["conversation_id"] == conv["id"]
    finally:
        sock.close()


def test_token_in_the_phoenix_auth_subprotocol_is_accepted(relay: RunningServer) -> None:
    """phoenix.js 1.8 `authToken`: the token travels in Sec-WebSocket-Protocol, not in the URL."""
    user = new_id()
    encoded = base64.urlsafe_b64encode(relay.token(user).encode()).decode().rstrip("=")
    url = socket_url(relay, vsn="2.0.0")
    ws = connect(
        url, subprotocols=[Subprotocol("phoenix"), Subprotocol(f"base64url.bearer.phx.{encoded}")], open_timeout=10
    )
    try:
        assert ws.subprotocol == "phoenix"
        sock = Phx(ws, user)
        assert sock.join_ok(f"user:{user}") == {"user_id": user}
    finally:
        ws.close()
    bad = base64.urlsafe_b64encode(b"not a token").decode().rstrip("=")
    with pytest.raises(InvalidStatus) as refused:
        connect(
            url, subprotocols=[Subprotocol("phoenix"), Subprotocol(f"base64url.bearer.phx.{bad}")], open_timeout=10
        ).close()
    assert refused.value.response.status_code == 403


def test_tokens_in_socket_urls_stay_out_of_the_logs(relay: RunningServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="uvicorn.error")
    server_log = logging.getLogger("uvicorn.error")  # uvicorn's loggers do not propagate to the root
    server_log.addHandler(caplog.handler)
    user = new_id()
    token = relay.token(user)
    sock = Phx.open(relay, user, token=token)
    try:
        sock.join_ok(f"user:{user}")
    finally:
        sock.close()
        server_log.removeHandler(caplog.handler)
    accepted = [r.getMessage() for r in caplog.records if "WebSocket" in r.getMessage()]
    assert accepted, "the server logged no socket at all"
    assert all(token not in line and "token=[redacted]" in line for line in accepted), accepted
