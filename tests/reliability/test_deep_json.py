"""Deeply nested JSON from a client (issue 10, items 1 and 2).

A member who stored metadata nested 248 deep crashed the whole process on every later join
(orjson <= 3.11.4 overflowed while encoding the join's reply), and metadata nested >= 254 gave
500s on every write route and poisoned `GET /conversations` for every member. Now:

- every client-supplied JSON value (conversation, message, draft, attachment and scheduled
  metadata) nests at most `max_json_depth` (32) levels, a whole body or socket frame at most a
  few more: deeper is a 422 `nesting_too_deep` (socket: an error reply, the channel kept),
  checked before anything is stored;
- values already stored deeper (written before the bound existed) are read back cut at the
  storage's depth cap, so every route that renders them answers 200 and the socket joins.

The stored-deep test runs the service as its own process: a crash there fails the test (the
service died), not the whole test run.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from shared.bootstrap import build_services
from shared.devtools.postgres import free_port
from shared.http.routes import ROUTES
from tests.relay.conftest import FREE
from tests.relay.phx import Phx
from tests.support import (
    BASE,
    RunningServer,
    UserClient,
    assert_error,
    client_random,
    fresh_database,
    make_settings,
    moderator_client,
    service_env,
    service_process,
)

LIMIT = 32  # Limits.max_json_depth's default
TOO_DEEP = (LIMIT + 1, 254, 300, 2000)  # 2000: past orjson's own parser limit (1024)


def nested(depth: int, leaf: Any = 1) -> Any:
    """An object nested `depth` levels deep: {"a": {"a": ... leaf}}; {"a": 1} is depth 1."""
    value = leaf
    for _ in range(depth):
        value = {"a": value}
    return value


def nested_text(depth: int) -> str:
    """The JSON text of nested(depth), built as text (no encoder's depth limit involved)."""
    return '{"a":' * depth + "1" + "}" * depth


def depth_of(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((depth_of(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((depth_of(v) for v in value), default=0)
    return 0


def _later() -> str:
    return (datetime.now(timezone.utc) + timedelta(hours=2)).isoformat()


# -- writes: refused before anything is stored ----------------------------------------------


@pytest.fixture
def arranged(server: RunningServer) -> Iterator[tuple[UserClient, UserClient, dict[str, Any], dict[str, Any], str]]:
    alice, bob = server.client(), server.client()
    group = alice.group_with(bob)
    message = alice.send(group["id"], "with metadata")
    scheduled = alice.post(
        "/messages/scheduled",
        {
            "conversation_id": group["id"],
            "content": "later",
            "scheduled_at": _later(),
            "client_random": client_random(),
        },
    )
    assert scheduled.status_code == 201, scheduled.text
    try:
        yield alice, bob, group, message, scheduled.json()["data"]["id"]
    finally:
        alice.close()
        bob.close()


def _writes(
    group: dict[str, Any], message: dict[str, Any], scheduled_id: str, bob_id: str
) -> list[tuple[str, str, Any]]:
    """(method, path, body with METADATA where the JSON value goes) for every route that takes one."""
    cid = group["id"]
    return [
        ("POST", "/conversations", {"type": "group", "name": "Deep", "user_ids": [bob_id], "metadata": "METADATA"}),
        ("PUT", f"/conversations/{cid}", {"metadata": "METADATA"}),
        ("PUT", f"/conversations/{cid}", {"conversation": {"metadata": "METADATA"}}),
        (
            "POST",
            f"/conversations/{cid}/messages",
            {"content": "x", "message_type": "text", "client_random": "RANDOM", "metadata": "METADATA"},
        ),
        ("PUT", f"/conversations/{cid}/draft", {"content": "draft", "metadata": "METADATA"}),
        (
            "POST",
            f"/messages/{message['id']}/attachments",
            {"media_id": "m1", "media_type": "image", "metadata": "METADATA"},
        ),
        (
            "POST",
            "/messages/scheduled",
            {"conversation_id": cid, "content": "x", "scheduled_at": "LATER", "metadata": "METADATA"},
        ),
        ("PATCH", f"/messages/scheduled/{scheduled_id}", {"metadata": "METADATA"}),
    ]


def _body(template: Any, metadata_text: str) -> str:
    text = json.dumps(template).replace('"METADATA"', metadata_text)
    return text.replace('"RANDOM"', str(client_random())).replace('"LATER"', json.dumps(_later()))


def test_json_values_nested_too_deep_are_refused_on_every_write_route(
    server: RunningServer, arranged: tuple[UserClient, UserClient, dict[str, Any], dict[str, Any], str]
) -> None:
    alice, bob, group, message, scheduled_id = arranged
    for method, path, template in _writes(group, message, scheduled_id, bob.user_id):
        for depth in TOO_DEEP:
            response = alice.request(method, path, content=_body(template, nested_text(depth)))
            body = assert_error(response, 422, "nesting_too_deep")
            assert "metadata" in body["details"] or "body" in body["details"], (method, path, depth, body)
        # at the bound: accepted, and read back whole
        response = alice.request(method, path, content=_body(template, nested_text(LIMIT)))
        assert response.status_code in (200, 201), (method, path, response.text)
    # nothing deep was stored: the conversation, its history and the draft read back as before
    conversation = alice.get(f"/conversations/{group['id']}").json()["data"]
    assert depth_of(conversation["metadata"]) <= LIMIT
    for item in alice.get(f"/conversations/{group['id']}/messages").json()["data"]:
        assert depth_of(item["metadata"]) <= LIMIT
    assert alice.get("/conversations").status_code == 200
    assert bob.get("/conversations").status_code == 200


def test_a_deep_value_anywhere_in_a_body_is_refused(
    server: RunningServer, arranged: tuple[UserClient, UserClient, dict[str, Any], dict[str, Any], str]
) -> None:
    """Fields the route ignores are parsed too: a deep one is refused before validation."""
    alice, _bob, group, _message, _scheduled = arranged
    body = '{"content":"x","message_type":"text","client_random":5,"junk":' + nested_text(300) + "}"
    response = alice.request("POST", f"/conversations/{group['id']}/messages", content=body)
    assert_error(response, 422, "nesting_too_deep")
    deep_list = '{"content":"x","message_type":"text","client_random":6,"metadata":{"l":' + "[" * 40 + "]" * 40 + "}}"
    response = alice.request("POST", f"/conversations/{group['id']}/messages", content=deep_list)
    assert_error(response, 422, "nesting_too_deep")


def test_deep_socket_pushes_get_an_error_reply_and_the_channel_stays(
    relay: RunningServer,
) -> None:
    alice, bob = relay.client(), relay.client()
    group = alice.group_with(bob)
    topic = f"conversation:{group['id']}"
    sock = Phx.open(relay, alice.user_id)
    try:
        sock.join_ok(topic)
        for depth in TOO_DEEP:
            payload = {"content": "x", "message_type": "text", "client_random": client_random()}
            ref = sock.next_ref()
            text = json.dumps([sock.join_refs[topic], ref, topic, "new_message", payload])
            sock.send_raw(text[:-2] + ',"metadata":' + nested_text(depth) + "}]")
            # past what the parser reads at all (1024) too: the refs are read from the frame's head
            reply = sock.reply(ref).payload
            assert reply["status"] == "error", reply
            assert reply["response"]["reason"] == "nesting_too_deep", reply
        # the channel is kept: a normal push goes through, nothing deep was stored
        sent = sock.ok(topic, "new_message", {"content": "fine", "message_type": "text", "client_random": 1})
        assert sent["message"]["content"] == "fine"
        # a deep join payload: an error reply, the socket stays
        ref = sock.next_ref()
        sock.send_raw(
            json.dumps(["9", ref, "user:" + alice.user_id, "phx_join", {}])[:-2] + '"x":' + nested_text(300) + "}]"
        )
        assert sock.reply(ref).payload["status"] == "error"
        assert sock.ok(topic, "mark_read", {}) is not None
        history = alice.get(f"/conversations/{group['id']}/messages").json()["data"]
        assert [m["content"] for m in history if m["message_type"] == "text"] == ["fine"]
    finally:
        sock.close()
        alice.close()
        bob.close()


# -- reads: values already stored deep do not break anything -----------------------------------

JSON_COLUMNS = {  # table: the JSON column a client fills
    "conversations": "metadata",
    "messages": "metadata",
    "drafts": "metadata",
    "attachments": "metadata",
    "scheduled_messages": "metadata",
}


def _deepen(value: Any, text: str) -> Any:
    """`value` with every "metadata" object in it replaced by the deep one (events, evidence)."""
    if isinstance(value, dict):
        return {
            k: (json.loads(text) if k == "metadata" and isinstance(v, dict) else _deepen(v, text))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_deepen(v, text) for v in value]
    return value


def _store_deep(engine: sa.Engine, conversation_id: str, depth: int, *, everywhere: bool) -> None:
    """Write deep metadata straight into the store, as an older version of the service (with no
    bound) would have: the conversation's messages (as the issue's attacker did, with a send),
    their events' payloads and reports' evidence; `everywhere`: also the conversation's own
    metadata, its draft, attachments and scheduled messages."""
    text = nested_text(depth)
    messages = "SELECT id FROM messages WHERE conversation_id = :c"
    updates = ["UPDATE messages SET metadata = :t WHERE conversation_id = :c"]
    if everywhere:
        updates += [
            "UPDATE conversations SET metadata = :t WHERE id = :c",
            "UPDATE drafts SET metadata = :t WHERE conversation_id = :c",
            "UPDATE scheduled_messages SET metadata = :t WHERE conversation_id = :c",
            f"UPDATE attachments SET metadata = :t WHERE message_id IN ({messages})",
        ]
    with engine.begin() as conn:
        for update in updates:
            conn.execute(sa.text(update), {"t": text, "c": conversation_id})
        for table, column in (("events", "payload"), ("reports", "evidence")):
            rows = conn.execute(
                sa.text(f"SELECT id, {column} FROM {table} WHERE conversation_id = :c"), {"c": conversation_id}
            )
            for row_id, raw in rows.all():
                if raw is not None:
                    deep = json.dumps(_deepen(json.loads(raw), text))
                    conn.execute(sa.text(f"UPDATE {table} SET {column} = :t WHERE id = :i"), {"t": deep, "i": row_id})


def _arrange(server: RunningServer) -> tuple[UserClient, UserClient, dict[str, str]]:
    """A group with one of everything that carries client JSON; the ids every route needs."""
    alice, bob = server.client(), server.client()
    group = alice.group_with(bob)
    cid = group["id"]
    message = alice.send(cid, "hello deep", metadata={"k": "v"})
    mid = message["id"]
    assert (
        alice.post(
            f"/messages/{mid}/attachments", {"media_id": "m1", "media_type": "image", "metadata": {"w": 1}}
        ).status_code
        == 201
    )
    assert alice.post(f"/messages/{mid}/pin").status_code in (200, 201)
    assert alice.post(f"/messages/{mid}/reactions", {"reaction": "👍"}).status_code in (200, 201)
    assert alice.put(f"/conversations/{cid}/draft", {"content": "draft", "metadata": {"d": 1}}).status_code == 200
    scheduled = alice.post(
        "/messages/scheduled", {"conversation_id": cid, "content": "later", "scheduled_at": _later()}
    )
    assert scheduled.status_code == 201, scheduled.text
    report = bob.post("/reports", {"message_id": mid, "category": "spam", "description": "deep"})
    assert report.status_code == 201, report.text
    ids = {
        "conversation_id": cid,
        "message_id": mid,
        "user_id": bob.user_id,
        "scheduled_id": scheduled.json()["data"]["id"],
        "report_id": report.json()["data"]["id"],
        "sanction_id": "00000000-0000-4000-8000-000000000000",
        "emoji": "👍",
        "asset": "docs.js",  # one of the API reference's files (shared/http/handlers/docs.ASSETS)
    }
    return alice, bob, ids


def _read_everything(server: RunningServer, alice: UserClient, moderator: UserClient, ids: dict[str, str]) -> None:
    """Every GET route of the table, as a member and as a moderator: no 5xx, and the ones that
    render client JSON answer 200."""
    for route in ROUTES:
        if route.method != "GET":
            continue
        path = route.path.format(**ids)
        sample = {"q": "Team", "query": "hello", "since": "0-0", "include_archived": "true"}
        query = {name: value for name, value in sample.items() if name in {q.name for q in route.query}}
        answers = {who.user_id: who.get(path, params=query) for who in (alice, moderator)}
        for who, response in answers.items():
            assert response.status_code < 500, (route.path, who, response.status_code, response.text[:500])
        assert any(r.status_code == 200 for r in answers.values()), (
            route.path,
            {k: v.text[:300] for k, v in answers.items()},
        )
    history = alice.get(f"/conversations/{ids['conversation_id']}/messages")
    assert history.status_code == 200
    message = next(m for m in history.json()["data"] if m["id"] == ids["message_id"])
    assert isinstance(message["metadata"], dict) and "a" in message["metadata"], "read back, cut at the storage's cap"


def test_values_stored_deep_before_the_bound_still_read_everywhere(pg_url: str, key_path: str, tmp_path: Path) -> None:
    database_url = fresh_database(pg_url, "whispr_deep_reads", key_path)
    port = free_port()
    env = service_env(database_url, key_path, port, FREE)
    services = build_services(make_settings(database_url, key_path, **FREE))  # tokens and the store
    engine = sa.create_engine(database_url)
    try:
        server = RunningServer(f"http://127.0.0.1:{port}", services)
        with service_process(env, port, tmp_path / "service.log") as proc:
            moderator = moderator_client(server)
            # the case (a message 248 deep), then every client JSON column deep, at 248 and
            # past orjson's encoder limit (255)
            cases = ((248, False), (248, True), (300, True))
            arranged = [_arrange(server) for _ in cases]
            for (_alice, _bob, ids), (depth, everywhere) in zip(arranged, cases, strict=True):
                _store_deep(engine, ids["conversation_id"], depth, everywhere=everywhere)
            for alice, bob, ids in arranged:
                cid = ids["conversation_id"]
                for user in (bob, alice):  # the joins that used to bring the process down
                    sock = Phx.open(server, user.user_id)
                    try:
                        joined = sock.join_ok(f"conversation:{cid}")
                        assert joined["conversation"]["id"] == cid
                        sock.join_ok(f"user:{user.user_id}")
                        summaries = sock.event(f"user:{user.user_id}", "conversation_summaries")["summaries"]
                        assert cid in [s["id"] for s in summaries]
                        sock.join_ok(f"conversation:{cid}", {"last_seq": 0})  # a rejoin, with catch-up
                        replayed = sock.event(f"conversation:{cid}", "new_message")["message"]
                        assert replayed["id"] == ids["message_id"]
                        if user is alice:  # a live event that renders the deep message
                            edit = {"message_id": ids["message_id"], "content": "edited"}
                            assert (
                                sock.ok(f"conversation:{cid}", "edit_message", edit)["message"]["content"] == "edited"
                            )
                    finally:
                        sock.close()
                _read_everything(server, alice, moderator, ids)
                # writes on top of deep stored values: a clear answer, never a 5xx
                rename = alice.put(f"/conversations/{cid}", {"name": "Renamed"})
                assert rename.status_code == 200, rename.text
                forward = alice.post(f"/messages/{ids['message_id']}/forward", {"conversation_ids": [cid]})
                assert forward.status_code < 500, forward.text
                sent = alice.send(cid, "still going")
                assert sent["seq"] > 0
            assert proc.poll() is None, "the service is still running"
            assert httpx.get(f"{server.url}{BASE}/health", timeout=5).status_code == 200
            for alice, bob, _ids in arranged:
                alice.close()
                bob.close()
            moderator.close()
    finally:
        engine.dispose()
        services.close()
