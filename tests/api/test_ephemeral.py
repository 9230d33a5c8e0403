"""Ephemeral messages (rules.md: Messages, "Ephemeral"): allowed durations, and the scheduler
purging them at expiry and announcing `message_expired`."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import or_, select

from shared.adapters.local_scheduler import LocalScheduler
from shared.app import notifications
from shared.app.services import utcnow
from shared.domain.signatures import signed_bytes
from shared.storage import schema
from shared.storage.schema import messages
from tests import support
from tests.api.event_rows import recorded
from tests.support import RunningServer, UserClient, assert_error, client_random, fresh_database, make_settings, serve


def parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def stored(server: RunningServer, message_id: str) -> dict[str, Any]:
    with server.services.db.transaction() as conn:
        found = conn.execute(select(messages).where(messages.c.id == message_id)).first()
    assert found is not None
    return dict(found._mapping)


def scheduler_of(server: RunningServer) -> LocalScheduler:
    scheduler = server.services.scheduler
    assert isinstance(scheduler, LocalScheduler) and scheduler.running
    return scheduler


def one_pass(server: RunningServer) -> None:
    """Make the running scheduler look at the store now, and wait until it has."""
    scheduler = scheduler_of(server)
    done = scheduler.passes
    scheduler.wake()
    support.wait_for(lambda: scheduler.passes > done, "a scheduler pass")


def signed_send(client: UserClient, conversation_id: str, content: str, **fields: Any) -> dict[str, Any]:
    key = Ed25519PrivateKey.generate()
    public = base64.b64encode(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()
    random = client_random()
    signature = base64.b64encode(key.sign(signed_bytes(content, conversation_id, random))).decode()
    body = {"content": content, "client_random": random, "signature": signature, "sender_public_key": public, **fields}
    response = client.post(f"/conversations/{conversation_id}/messages", body)
    assert response.status_code == 201, response.text
    return dict(response.json()["data"])


def test_only_the_allowed_durations(server: RunningServer) -> None:
    alice, bob = server.client(), server.client()
    cid = alice.direct_with(bob)["id"]
    for bad in (0, 60, 3599, 3601, 7200, 604801, -3600):
        refused = assert_error(
            alice.post(
                f"/conversations/{cid}/messages",
                {"content": "x", "client_random": client_random(), "expires_in_seconds": bad},
            ),
            422,
        )
        assert "expires_in_seconds" in refused["details"], refused
    assert_error(
        alice.post(
            f"/conversations/{cid}/messages", {"content": "x", "client_random": 1, "expires_in_seconds": "3600"}
        ),
        422,
    )
    for seconds in (3600, 21600, 86400, 604800):
        message = alice.send(cid, f"lives {seconds}", expires_in_seconds=seconds)
        assert parse(message["expires_at"]) - parse(message["sent_at"]) == timedelta(seconds=seconds)
    plain = alice.send(cid, "forever")
    assert plain["expires_at"] is None


class Recording:
    """A scheduler that notes what it is asked, and passes it on."""

    horizon = None

    def __init__(self, inner: LocalScheduler) -> None:
        self.inner = inner
        self.calls: list[tuple[str, str, datetime]] = []

    def schedule(self, kind: Any, item_id: str, due_at: datetime) -> None:
        self.calls.append((kind, item_id, due_at))
        self.inner.schedule(kind, item_id, due_at)

    def cancel(self, kind: Any, item_id: str, due_at: datetime | None = None) -> None:
        self.inner.cancel(kind, item_id, due_at)

    def start(self) -> None:
        self.inner.start()

    def stop(self) -> None:
        self.inner.stop()


def test_sending_an_ephemeral_message_tells_the_scheduler_its_expiry(server: RunningServer) -> None:
    alice, bob = server.client(), server.client()
    cid = alice.direct_with(bob)["id"]
    recording = Recording(scheduler_of(server))
    server.services.scheduler = recording
    try:
        plain = alice.send(cid, "plain")
        ephemeral = alice.send(cid, "brief", expires_in_seconds=21600)
    finally:
        server.services.scheduler = recording.inner
    assert plain["expires_at"] is None
    assert recording.calls == [("expiry", ephemeral["id"], parse(ephemeral["expires_at"]))]


def test_expiry_purges_the_message_and_announces_it(server: RunningServer, time_travel: list[timedelta]) -> None:
    alice, bob = server.client(), server.client()
    cid = alice.direct_with(bob)["id"]
    keep = alice.send(cid, "stays")
    gone = signed_send(alice, cid, "self-destructs", expires_in_seconds=3600, metadata={"media": "x"})
    assert gone["signature"] is not None
    assert [m["id"] for m in bob.get(f"/conversations/{cid}/messages").json()["data"]] == [gone["id"], keep["id"]]
    while notifications.plan(server.services):  # pushes planned while it lives (message_recipients recorded)
        pass

    # a minute before its time, a pass of the scheduler leaves it alone
    time_travel.append(timedelta(minutes=59))
    one_pass(server)
    assert stored(server, gone["id"])["is_expired"] is False
    assert bob.get(f"/messages/{gone['id']}").status_code == 200

    time_travel.append(timedelta(hours=1, seconds=1))
    scheduler_of(server).wake()
    support.wait_for(lambda: stored(server, gone["id"])["is_expired"], "the expiry")
    row = stored(server, gone["id"])
    assert (row["content"], row["metadata"], row["signature"], row["is_expired"]) == ("", {}, None, True)
    assert stored(server, keep["id"])["content"] == "stays"
    for reader in (alice, bob):
        assert [m["id"] for m in reader.get(f"/conversations/{cid}/messages").json()["data"]] == [keep["id"]]
        assert_error(reader.get(f"/messages/{gone['id']}"), 404, "message_not_found")
    events = recorded(server, "message_expired", cid)
    assert [e["payload"] for e in events] == [{"message_id": gone["id"], "conversation_id": cid}]
    assert events[0]["seq"] == gone["seq"]
    assert set(events[0]["topics"]) == {f"conversation:{cid}", f"user:{alice.user_id}", f"user:{bob.user_id}"}
    # once is enough: another pass expires nothing again
    one_pass(server)
    assert len(recorded(server, "message_expired", cid)) == 1
    # nothing the outbox keeps holds the content any more, the push planner's
    # message_recipients (siblings' message.created) included
    with server.services.db.transaction() as conn:
        kept = conn.execute(
            select(schema.events.c.name, schema.events.c.payload).where(
                or_(schema.events.c.conversation_id == cid, schema.events.c.name == "message_recipients")
            )
        ).all()
    assert any(gone["id"] in json.dumps(payload) for name, payload in kept if name == "message_recipients")
    assert not [name for name, payload in kept if "self-destructs" in json.dumps(payload)]


def test_expiries_due_while_no_service_ran_are_done_at_the_next_start(pg_url: str, key_path: str) -> None:
    settings = make_settings(fresh_database(pg_url, "whispr_ephemeral_restart", key_path), key_path)
    with serve(settings) as first:
        alice, bob = first.client(), first.client()
        cid = alice.direct_with(bob)["id"]
        gone = alice.send(cid, "while you were away", expires_in_seconds=3600)
    with serve(settings) as second:
        second.services.clock = lambda: utcnow() + timedelta(hours=1, seconds=1)
        scheduler_of(second).wake()  # as if the service started an hour later
        support.wait_for(lambda: stored(second, gone["id"])["is_expired"], "the expiry")
        assert stored(second, gone["id"])["content"] == ""
        assert [e["payload"]["message_id"] for e in recorded(second, "message_expired", cid)] == [gone["id"]]
