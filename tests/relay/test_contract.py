"""The socket contract (AsyncAPI 3, generated from shared/relay/events.py): it validates, it
names every push the relay accepts, and it cannot drift from what the relay sends: the session
fixture `emitted_events` (tests/conftest.py) fails the run when any test makes the relay send an
event that the document lacks; the last test here shows that check failing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema

from shared.relay import asyncapi, events
from tests.relay.phx import Phx
from tests.relay.recorder import EventRecorder
from tests.support import RunningServer, client_random


def test_the_asyncapi_document_validates_against_the_official_schema(phoenix_js: Path) -> None:
    schema_file = phoenix_js / "node_modules" / "@asyncapi" / "specs" / "schemas" / "3.0.0-without-$id.json"
    schema = json.loads(schema_file.read_text())
    document = asyncapi.build_document()
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(document), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors[:10])
    assert document["asyncapi"] == "3.0.0"
    for message in document["components"]["messages"].values():
        jsonschema.Draft202012Validator.check_schema(message["payload"])


def test_every_push_the_relay_accepts_is_in_the_contract() -> None:
    assert events.check_pushes_documented() == []
    document = asyncapi.build_document()
    sends = {
        op["messages"][0]["$ref"].rsplit("/", 1)[-1] for op in document["operations"].values() if op["action"] == "send"
    }
    assert "conversation_push_new_message" in sends and "phoenix_push_heartbeat" in sends
    replies = [op for op in document["operations"].values() if op["action"] == "send" and "reply" in op]
    assert len(replies) == len([p for p in events.CLIENT_PUSHES if p.reply is not None]) + len(
        [p for p in events.CLIENT_PUSHES if p.reply is not None and len(p.topics) > 1]
    )


def _session(relay: RunningServer) -> set[str]:
    """A conversation's life over sockets and REST: what a client sees."""
    alice, bob, carol = relay.client(), relay.client(), relay.client()
    group = alice.group_with(bob, name="Contract")
    topic = f"conversation:{group['id']}"
    a, b = Phx.open(relay, alice.user_id), Phx.open(relay, bob.user_id)
    try:
        for sock, user in ((a, alice), (b, bob)):
            sock.join_ok(f"user:{user.user_id}")
            sock.event(f"user:{user.user_id}", "conversation_summaries")
            sock.join_ok(topic)
        body = {"content": "hello", "message_type": "text", "client_random": client_random()}
        message = a.ok(topic, "new_message", body)["message"]
        b.event(topic, "new_message")
        a.ok(topic, "edit_message", {"message_id": message["id"], "content": "hello!"})
        a.ok(topic, "add_reaction", {"message_id": message["id"], "reaction": "👍"})
        a.ok(topic, "remove_reaction", {"message_id": message["id"], "reaction": "👍"})
        a.ok(topic, "user_typing", {"typing": True})
        b.ok(topic, "mark_read", {"up_to_seq": message["seq"]})
        a.event(f"user:{alice.user_id}", "delivery_status")
        assert alice.post(f"/messages/{message['id']}/pin").status_code == 200
        assert bob.post(f"/messages/{message['id']}/unread").status_code == 200
        assert bob.post(f"/conversations/{group['id']}/archive").status_code == 200
        assert bob.put(f"/conversations/{group['id']}/draft", {"content": "later"}).status_code == 200
        assert alice.post(f"/conversations/{group['id']}/members", {"user_id": carol.user_id}).status_code == 201
        assert alice.put(f"/conversations/{group['id']}", {"name": "Renamed"}).status_code == 200
        a.ok(topic, "delete_message", {"message_id": message["id"], "delete_for_everyone": True})
        b.event(topic, "message_deleted")
        b.event(f"user:{bob.user_id}", "conversation_updated")
        a.barrier()
        b.barrier()
    finally:
        a.close()
        b.close()
    return {"new_message", "message_updated", "reaction_added", "user_typing", "message_deleted"}


def test_a_session_sends_only_documented_events(relay: RunningServer, emitted_events: EventRecorder) -> None:
    expected = _session(relay)
    sent = emitted_events.seen()
    assert expected <= sent, f"the recorder missed events: {expected - sent}"
    assert asyncapi.undocumented(sent, asyncapi.build_document()) == []


def test_the_drift_check_fails_when_a_sent_event_is_missing(
    relay: RunningServer, emitted_events: EventRecorder
) -> None:
    _session(relay)
    document: dict[str, Any] = asyncapi.build_document()
    document["components"]["messages"] = {
        key: message for key, message in document["components"]["messages"].items() if message["name"] != "new_message"
    }
    assert asyncapi.undocumented(emitted_events.seen(), document) == ["new_message"]
