"""Appending messages to a conversation's ordered log: every message (sent over REST, the
socket, gRPC, by the scheduler, or written by the service itself) is stored here, with the
next `seq` of its conversation and its `new_message` event."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from shared.app.access import topic_conversation, topic_user
from shared.app.services import Unit
from shared.app.views import message_view
from shared.domain.models import Conversation, Event, Message
from shared.storage import conversations as conv_store
from shared.storage import messages as msg_store
from shared.storage import search as search_index
from shared.storage.sql import driver_connection, pipelined


def store_message(unit: Unit, conv: Conversation, message: Message, *, member_ids: list[str] | None = None) -> Message:
    """Give the message the next `seq`, store it, and record `new_message` for everyone who
    hears it: the conversation topic and every other active member's `user:` topic. `member_ids`:
    the active members' user ids if the caller has read them since it locked the conversation
    (sends do)."""
    store_messages(unit, [(conv, message, member_ids)])
    return message


def store_messages(
    unit: Unit, batch: Sequence[tuple[Conversation, Message, list[str] | None]], *, locked: bool = False
) -> None:
    """`store_message` for many messages, set-based: one UPDATE takes every conversation's
    `seq`s (in the order given within each conversation), one statement stores the messages, at
    most two index them. Each message gets its `seq` in place.

    `locked`: every conversation was read by `lock_conversations` in this transaction (a
    `SendScope`), so its `last_seq` is the stored one, and every member list (the active
    members' user ids) is given. On
    psycopg the `seq`s are then counted from it and everything is written in one round trip
    (`_store_pipelined`)."""
    if locked and driver_connection(unit.conn) is not None and all(m is not None for _, _, m in batch):
        _store_pipelined(unit, batch)
        return
    counts = Counter(conv.id for conv, _, _ in batch)
    last = conv_store.take_seqs(unit.conn, counts, unit.now)
    next_seq = {cid: last[cid] - n + 1 for cid, n in counts.items()}
    for conv, message, _ in batch:
        message.seq = next_seq[conv.id]
        next_seq[conv.id] += 1
        conv.last_seq = last[conv.id]
    # searchable once committed: the search columns are written with the message
    msg_store.insert_messages(
        unit.conn, [(message, search_index.search_values(conv, message)) for conv, message, _ in batch]
    )
    listed: dict[str, list[str]] = {}
    for conv, message, member_ids in batch:
        if member_ids is None:
            if conv.id not in listed:
                listed[conv.id] = [m.user_id for m in conv_store.list_members(unit.conn, conv.id)]
            member_ids = listed[conv.id]
        unit.record(_new_message(conv, message, member_ids))


def _store_pipelined(unit: Unit, batch: Sequence[tuple[Conversation, Message, list[str] | None]]) -> None:
    """`store_messages` in one round trip: the `seq`s counted from the locked rows' `last_seq`,
    then the `seq` UPDATE, the messages' INSERT and the events' INSERT (with the unit's deferred
    events) sent together. The UPDATE's answer is checked against the count afterwards (before
    the transaction can commit): a mismatch fails the whole store."""
    conn = unit.conn
    counts = Counter(conv.id for conv, _, _ in batch)
    next_seq: dict[str, int] = {}
    for conv, message, _ in batch:
        message.seq = next_seq.setdefault(conv.id, conv.last_seq + 1)
        next_seq[conv.id] += 1
    expected = {cid: seq - 1 for cid, seq in next_seq.items()}
    events = [_new_message(conv, message, member_ids or []) for conv, message, member_ids in batch]
    with pipelined(conn):
        taking = conv_store.take_seqs_later(conn, counts, unit.now)
        msg_store.insert_messages(
            conn, [(message, search_index.search_values(conv, message)) for conv, message, _ in batch]
        )
        writing = unit.write_events(events)
    taken = taking()
    if taken != expected:
        raise RuntimeError(f"seq taken {taken} where the locked rows said {expected}")
    for conv, _, _ in batch:
        conv.last_seq = expected[conv.id]
    writing()


def _new_message(conv: Conversation, message: Message, member_ids: list[str]) -> Event:
    topics = (
        topic_conversation(conv.id),
        *[topic_user(m) for m in member_ids if m != message.sender_id],
    )
    return Event("new_message", {"message": message_view(message)}, topics, conversation_id=conv.id, seq=message.seq)
