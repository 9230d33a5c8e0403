"""Message events reach sockets in `seq` order, once, whatever order the bus brings them in, and a
message whose event never comes (its sender's instance died between commit and publish) is read
from the store.

The "crash between commit and publish" is made with the real send path's storage code
(`store_message` in a committed transaction) minus the publish step, which is exactly what such a
crash leaves behind: the message and its outbox row committed, nothing on the bus."""

from __future__ import annotations

import secrets
import uuid

from shared.app.message_log import store_message
from shared.app.services import Unit
from shared.domain.models import Message
from shared.ports.bus import PublishedEvent
from shared.storage import conversations as conv_store
from tests.relay.phx import Phx
from tests.support import RunningServer


def _commit_without_publishing(
    server: RunningServer, conversation_id: str, sender_id: str, content: str
) -> list[PublishedEvent]:
    svc = server.services
    with svc.db.transaction() as conn:
        unit = Unit(conn, svc.clock())
        conv = conv_store.get_conversation(conn, conversation_id)
        assert conv is not None
        store_message(
            unit,
            conv,
            Message(
                id=str(uuid.uuid4()),
                conversation_id=conversation_id,
                seq=0,
                sender_id=sender_id,
                sender_device_id="phone",
                client_random=secrets.randbits(32),
                message_type="text",
                content=content,
                metadata={},
                reply_to_id=None,
                forwarded_from_id=None,
                signature=None,
                sender_public_key=None,
                sent_at=unit.now,
            ),
        )
    return unit.events


def test_events_published_out_of_order_reach_sockets_in_seq_order(relay: RunningServer) -> None:
    alice, bob = relay.client(), relay.client()
    conv = alice.direct_with(bob)
    topic = f"conversation:{conv['id']}"
    sock = Phx.open(relay, bob.user_id)
    try:
        sock.join_ok(topic)
        sock.join_ok(f"user:{bob.user_id}")
        first = _commit_without_publishing(relay, conv["id"], alice.user_id, "one")
        second = _commit_without_publishing(relay, conv["id"], alice.user_id, "two")
        relay.services.publish(second + first)  # two publishers racing: the later seq first
        relay.services.publish(first)  # and a redelivery
        for on in (topic, f"user:{bob.user_id}"):
            got = [sock.event(on, "new_message")["message"] for _ in range(2)]
            assert [(m["seq"], m["content"]) for m in got] == [(1, "one"), (2, "two")]
        assert [m for m in sock.barrier() if m.event == "new_message"] == []
    finally:
        sock.close()


def test_a_message_whose_event_never_comes_is_read_from_the_store(relay: RunningServer) -> None:
    alice, bob = relay.client(), relay.client()
    conv = alice.direct_with(bob)
    topic = f"conversation:{conv['id']}"
    sock = Phx.open(relay, bob.user_id)
    try:
        sock.join_ok(topic)
        history = {}
        lost = _commit_without_publishing(relay, conv["id"], alice.user_id, "committed, never published")
        later = alice.send(conv["id"], "published")
        got = [sock.event(topic, "new_message")["message"] for _ in range(2)]
        for message in bob.get(f"/conversations/{conv['id']}/messages").json()["data"]:
            history[message["seq"]] = message
        assert got == [history[1], history[2]]  # in order, the first as the store has it
        assert got[1]["id"] == later["id"]
        relay.services.publish(lost)  # the outbox sweeper's late republish: not a second copy
        assert [m for m in sock.barrier() if m.event == "new_message"] == []
    finally:
        sock.close()
