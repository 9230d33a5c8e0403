"""Use cases on messages: send, history, read one, edit, delete."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from shared.app import enforcement
from shared.app.access import (
    require_message,
    require_reader,
    require_visible_message,
    topic_conversation,
    topic_user,
)
from shared.app.message_log import store_messages
from shared.app.services import Services, Unit
from shared.app.views import message_view
from shared.config import Limits
from shared.domain import rules
from shared.domain.errors import Forbidden, Invalid, NotFound, RateLimited
from shared.domain.ids import new_uuid
from shared.domain.models import Actor, Conversation, Event, Member, Message, NewMessage
from shared.domain.moderation import BLOCKS_SENDING, Sanction
from shared.domain.signatures import verify_signature
from shared.ports.siblings import SiblingUnavailable
from shared.storage import conversations as conv_store
from shared.storage import history as reads
from shared.storage import messages as store
from shared.storage import moderation as moderation_store
from shared.storage import outbox
from shared.storage import search as search_index
from shared.storage.sql import pipelined
from shared.telemetry import tracing

log = logging.getLogger(__name__)

DEFAULT_DEVICE = "default"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sent:
    message: Message
    created: bool


def check_sendable(svc: Services, conversation_id: str, new: NewMessage) -> None:
    """Everything about a send that needs no database: shape, limits, signature."""
    rules.check_new_message(
        new.content, new.message_type, new.client_random, new.metadata, new.expires_in_seconds, svc.settings.limits
    )
    if (new.signature is None) != (new.sender_public_key is None):
        raise Invalid("signature and sender_public_key go together", code="invalid_signature")
    if new.signature is not None and new.sender_public_key is not None:
        verify_signature(new.content, conversation_id, new.client_random, new.signature, new.sender_public_key)


def _check_sender_key(svc: Services, unit: Unit, actor: Actor, public_key: str) -> None:
    """Sender keys per (user, device), after the signature verified (rules.md, "Signatures";
    docs/decisions.md, "Sender key rotation"). The device's first key is recorded. A changed key
    is accepted whatever the token (the client makes one at every login and prekey
    replenishment), within the device's rate of key changes: recorded as the current key, the
    old one kept as history, and announced. A key the device replaced less than
    `replaced_key_grace_seconds` ago still signs (messages queued before the change) without
    becoming current again; an older one is refused."""
    device = actor.device_id or DEFAULT_DEVICE
    current = store.current_sender_key(unit.conn, actor.user_id, device)
    if current == public_key:
        return
    store.lock_sender_keys(unit.conn, actor.user_id, device)
    current = store.current_sender_key(unit.conn, actor.user_id, device)  # again, under the lock
    if current == public_key:
        return
    if current is not None:
        replaced_at = store.replaced_sender_key_at(unit.conn, actor.user_id, device, public_key)
        if replaced_at is not None:
            if unit.now - replaced_at <= timedelta(seconds=svc.settings.limits.replaced_key_grace_seconds):
                return  # stored as signed; recipients check it against the key it names
            raise Forbidden(
                "this device replaced that key too long ago; sign with its current key", code="key_replaced"
            )
        _take_key_change_token(svc, actor.user_id, device)
    store.record_sender_key(unit.conn, actor.user_id, device, public_key, unit.now)
    if current is not None:  # a safety-number change: told in every conversation the device writes to
        written = [c.id for c, _ in conv_store.conversations_of_user(unit.conn, actor.user_id, archived=None)]
        members = conv_store.members_of(unit.conn, written)
        for conversation_id in written:
            unit.record(
                Event(
                    "sender_key_changed",
                    {"user_id": actor.user_id, "device_id": device, "conversation_id": conversation_id},
                    (topic_conversation(conversation_id), *[topic_user(m.user_id) for m in members[conversation_id]]),
                    conversation_id=conversation_id,
                )
            )


def _take_key_change_token(svc: Services, user_id: str, device_id: str) -> None:
    """The per-device rate of key changes: 429 `key_change_rate_limited` past it."""
    limits = svc.settings.limits
    wait = svc.limiter.acquire(
        f"key_change:{user_id}:{device_id}",
        per_second=limits.key_changes_per_hour / 3600,
        burst=limits.key_change_burst,
    )
    if wait:
        raise RateLimited(
            "this device changes its key too often; try again later", retry_after=wait, code="key_change_rate_limited"
        )


class SendScope:
    """The conversations one transaction sends to, each locked and read once: the conversation row
    (locked like `lock_conversation`, which serialises the duplicate check and the `seq`) and its
    active members' user ids, read under that lock. Every send of the transaction to the same conversation
    reuses them: nobody can change the row or (through a system message) the membership until
    the transaction ends. It also knows the messages this transaction sent, and (once `prefetch`
    has read them for a batch) the stored ones that sends may duplicate, the sanctions on their
    senders and the messages they reply to."""

    def __init__(self, unit: Unit, limits: Limits):
        self.unit = unit
        self.since = unit.now - timedelta(seconds=limits.client_random_window_seconds)
        self._locked: dict[str, tuple[Conversation, list[str]] | None] = {}
        self._originals: dict[tuple[str, str, int], Message | None] = {}
        self._sanctions: dict[tuple[str, str], list[Sanction]] = {}
        self._replied: dict[str, Message | None] = {}

    def lock(self, conversation_ids: Iterable[str]) -> None:
        """Lock (in id order) and read every conversation not locked yet, in two queries (one
        round trip on psycopg)."""
        wanted = sorted({c for c in conversation_ids if c not in self._locked})
        if not wanted:
            return
        with pipelined(self.unit.conn):
            locking = conv_store.lock_conversations_later(self.unit.conn, wanted)
            listing = conv_store.member_ids_of_later(self.unit.conn, wanted)
        self._took(wanted, locking(), listing())

    def _took(self, wanted: list[str], found: dict[str, Conversation], members: dict[str, list[str]]) -> None:
        for conversation_id in wanted:
            conv = found.get(conversation_id)
            self._locked[conversation_id] = (conv, members[conversation_id]) if conv is not None else None

    def require_member(self, conversation_id: str, user_id: str) -> tuple[Conversation, list[str]]:
        """The locked conversation and its active members' user ids, or 404/403 as
        `require_member` says."""
        self.lock((conversation_id,))
        locked = self._locked[conversation_id]
        if locked is None or not locked[0].is_active:
            raise NotFound("conversation not found", code="conversation_not_found")
        if user_id not in locked[1]:
            raise Forbidden("you are not a member of this conversation", code="not_a_member")
        return locked

    def prefetch(self, sends: Iterable[tuple[str, str, NewMessage]]) -> None:
        """Lock the conversations of these (conversation_id, sender_id, message) sends, then read
        in one query each what all of them need: the messages they may duplicate, the sanctions
        on their senders, the messages they reply to. Group commit calls it once per batch.
        On psycopg the five queries go in one round trip (a pipeline): PostgreSQL runs them in
        order, so the reads still happen under the locks the first one took."""
        sends = list(sends)
        conn, now = self.unit.conn, self.unit.now
        wanted = sorted({c for c, _, _ in sends if c not in self._locked})
        # asked for every send; kept below only for locked conversations: the lock is what makes
        # the answers hold (the others fail `require_member` before anything asks)
        keys = {(c, u, new.client_random) for c, u, new in sends} - self._originals.keys()
        pairs = {(c, u) for c, u, _ in sends} - self._sanctions.keys()
        replied = {new.reply_to_id for _, _, new in sends if new.reply_to_id is not None} - self._replied.keys()
        with pipelined(conn):
            locking = conv_store.lock_conversations_later(conn, wanted)
            listing = conv_store.member_ids_of_later(conn, wanted)
            duplicates = store.find_by_client_randoms_later(conn, keys, self.since)
            sanctions = moderation_store.sanctions_in_force_among_later(conn, pairs, now, BLOCKS_SENDING)
            replies = store.get_messages_later(conn, replied)
        self._took(wanted, locking(), listing())
        found = duplicates()
        for key in keys:
            if self._locked.get(key[0]) is not None:
                self._originals[key] = found.get(key)
        blocking = sanctions()
        for pair in pairs:
            if self._locked.get(pair[0]) is not None:
                self._sanctions[pair] = blocking.get(pair, [])
        messages = replies()
        for message_id in replied:
            self._replied[message_id] = messages.get(message_id)

    # What a prefetched send asks (`prepare_send`, after `require_member`: its conversation is locked)

    def check_can_send(self, conversation_id: str, user_id: str) -> None:
        """403 `sanctioned` if the sender is muted or restricted there (mute/restrict)."""
        enforcement.refuse_sending(self._sanctions[(conversation_id, user_id)])

    def replied(self, message_id: str) -> Message | None:
        return self._replied[message_id]

    def original(self, conversation_id: str, sender_id: str, client_random: int) -> Message | None:
        """The message a send with this `client_random` duplicates (sent within the window, or
        earlier in this transaction), if any."""
        return self._originals[(conversation_id, sender_id, client_random)]

    def sent(self, message: Message) -> None:
        """A send of this transaction is storing `message`: later sends with its `client_random`
        duplicate it."""
        self._originals[(message.conversation_id, message.sender_id, message.client_random)] = message


@dataclass(frozen=True)
class Prepared:
    """A send that passed every check and is ready to store (`store_messages`)."""

    conv: Conversation
    member_ids: list[str]  # the active members' user ids
    message: Message


def prepare_send(
    svc: Services, scope: SendScope, actor: Actor, conversation_id: str, new: NewMessage
) -> Sent | Prepared:
    """Every check of one send inside a transaction the caller holds (`scope.unit`), after
    `check_sendable` and the rate limit, and the message it will store: a `Prepared`, or the
    `Sent` original when its `client_random` duplicates one. Writes nothing, except a first or
    new sender key (`_check_sender_key`), which is the last step and cannot fail after writing
    (its rate limit and refusals come before its writes)."""
    unit = scope.unit
    conv, member_ids = scope.require_member(conversation_id, actor.user_id)
    scope.check_can_send(conv.id, actor.user_id)
    if conv.type == "direct":
        refuse_if_blocked(svc, actor.user_id, member_ids)
    original = scope.original(conv.id, actor.user_id, new.client_random)
    if original is not None:
        return Sent(original, created=False)
    if conv.type == "direct" and len(member_ids) < 2:
        raise Forbidden(
            "this conversation is closed: the other member left or their account was deleted",
            code="conversation_closed",
        )
    if new.reply_to_id is not None:
        replied = scope.replied(new.reply_to_id)
        if replied is None or replied.conversation_id != conv.id:
            raise Invalid.field("reply_to_id", "must be a message of the same conversation")
    message = Message(
        id=new_uuid(),
        conversation_id=conv.id,
        seq=0,
        sender_id=actor.user_id,
        sender_device_id=actor.device_id,
        client_random=new.client_random,
        message_type=new.message_type,
        content=new.content,
        metadata=new.metadata,
        reply_to_id=new.reply_to_id,
        forwarded_from_id=new.forwarded_from_id,
        signature=new.signature,
        sender_public_key=new.sender_public_key,
        sent_at=unit.now,
        expires_at=unit.now + timedelta(seconds=new.expires_in_seconds) if new.expires_in_seconds else None,
    )
    if conv.e2ee_enabled:
        search_index.search_tokens(message)  # 422 now if malformed, not when indexing
    if new.sender_public_key is not None:
        _check_sender_key(svc, unit, actor, new.sender_public_key)
    return Prepared(conv, member_ids, message)


def send_in_unit(svc: Services, scope: SendScope, actor: Actor, conversation_id: str, new: NewMessage) -> Sent:
    """One send inside a transaction the caller holds (`scope.unit`, which has prefetched it), after
    `check_sendable` and the rate limit: everything `send_message` does in its transaction. A duplicate `client_random`
    returns the original and writes nothing. Group commit (`shared.app.batch_send`) runs the same
    `prepare_send` and `store_messages`, for many sends at once, so both have the same semantics."""
    prepared = prepare_send(svc, scope, actor, conversation_id, new)
    if isinstance(prepared, Sent):
        return prepared
    store_messages(scope.unit, [(prepared.conv, prepared.message, prepared.member_ids)], locked=True)
    scope.sent(prepared.message)  # last: a send that fails gives nothing to the ones after it
    return Sent(prepared.message, created=True)


def refuse_if_blocked(svc: Services, sender_id: str, member_ids: list[str]) -> None:
    """403 `user_blocked` when the other member of a direct conversation blocks the sender or is
    blocked by them (user-service, cached briefly). If user-service cannot answer, the send goes
    through: the conversation exists, so the pair was checked when it was opened, and an outage
    of a sibling must not stop every direct conversation (integration.md fails closed for new
    direct conversations only; docs/decisions.md)."""
    for other in (m for m in member_ids if m != sender_id):
        try:
            blocked = svc.users.is_blocked(sender_id, other)
        except SiblingUnavailable:
            log.warning("block check skipped (user-service unavailable) for a send into a direct conversation")
            return
        if blocked:
            raise Forbidden("one of you blocks the other", code="user_blocked")


def take_send_token(svc: Services, actor: Actor) -> None:
    """The per-user send rate (rules.md): 429 when the user sends faster than allowed."""
    limits = svc.settings.limits
    wait = svc.limiter.acquire(
        f"send:{actor.user_id}", per_second=limits.messages_per_minute / 60, burst=limits.messages_burst
    )
    if wait:
        raise RateLimited("too many messages; slow down", retry_after=wait)


def after_send(svc: Services, sent: Sent) -> None:
    """What follows a committed send: the scheduler purges an ephemeral message at expiry."""
    if sent.created and sent.message.expires_at is not None:
        svc.scheduler.schedule("expiry", sent.message.id, sent.message.expires_at)


def send_message(svc: Services, actor: Actor, conversation_id: str, new: NewMessage) -> Sent:
    with tracing.span("send_message", attributes={"whispr.conversation_id": conversation_id}):
        return _send_message(svc, actor, conversation_id, new)


def _send_message(svc: Services, actor: Actor, conversation_id: str, new: NewMessage) -> Sent:
    check_sendable(svc, conversation_id, new)
    take_send_token(svc, actor)
    with svc.unit() as unit:
        scope = SendScope(unit, svc.settings.limits)
        scope.prefetch([(conversation_id, actor.user_id, new)])
        sent = send_in_unit(svc, scope, actor, conversation_id, new)
    log_sent(sent)
    after_send(svc, sent)
    return sent


def log_sent(sent: Sent) -> None:
    """The use case's line for one send (debug), logged where the request's context is (its
    request id): by `send_message`, and by entry points whose sends join a group commit."""
    log.debug(
        "message %s %s in conversation %s at seq %d",
        sent.message.id,
        "stored" if sent.created else "was already stored (same client_random)",
        sent.message.conversation_id,
        sent.message.seq,
    )


def _render_for(message: Message, viewer: str, others: list[Member]) -> dict[str, Any]:
    status = rules.message_status(message.seq, others) if message.sender_id == viewer else None
    return message_view(message, status)


@dataclass(frozen=True)
class Page:
    messages: list[dict[str, Any]]
    has_more: bool
    next_before_seq: int | None
    next_after_seq: int | None


def history(
    svc: Services,
    actor: Actor,
    conversation_id: str,
    *,
    limit: int,
    before_seq: int | None = None,
    after_seq: int | None = None,
    before: datetime | None = None,
    after: datetime | None = None,
) -> Page:
    # two prebuilt statements (shared.storage.history): the membership check with the member list, then the page
    with reads.reading(svc.db) as conn:
        now = svc.clock()
        members = require_reader(conn, conversation_id, actor.user_id)
        page = reads.history(
            conn,
            conversation_id,
            actor.user_id,
            now,
            limit=limit,
            before_seq=before_seq,
            after_seq=after_seq,
            before=before,
            after=after,
        )
    others = [m for m in members if m.user_id != actor.user_id]
    seqs = [m.seq for m in page.messages]
    return Page(
        messages=[_render_for(m, actor.user_id, others) for m in page.messages],
        has_more=page.has_more,
        next_before_seq=min(seqs) if seqs else None,
        next_after_seq=max(seqs) if seqs else None,
    )


def get_message(svc: Services, actor: Actor, message_id: str) -> dict[str, Any]:
    with reads.reading(svc.db) as conn:
        message, members = require_visible_message(conn, message_id, actor.user_id, svc.clock())
    return _render_for(message, actor.user_id, [m for m in members if m.user_id != actor.user_id])


def edit_message(svc: Services, actor: Actor, message_id: str, content: str, signature: str | None) -> dict[str, Any]:
    rules.check_content(content, svc.settings.limits)
    with svc.unit() as unit:
        message, conv, _ = require_message(unit.conn, message_id, actor.user_id)
        rules.check_edit(message, actor.user_id, unit.now, svc.settings.limits)
        rules.check_text_content(message.message_type, content)
        if message.signature is not None and signature is None:
            raise Invalid.field("signature", "a signed message must be re-signed when edited")
        if signature is not None:
            key = message.sender_public_key
            if key is None:
                raise Invalid.field("signature", "this message has no sender key to check against")
            verify_signature(content, conv.id, message.client_random, signature, key)
        store.update_message(unit.conn, message.id, content=content, signature=signature, edited_at=unit.now)
        message.content, message.signature, message.edited_at = content, signature, unit.now
        search_index.reindex_message(unit.conn, conv, message)
        members = conv_store.list_members(unit.conn, conv.id)
        topics = (topic_conversation(conv.id), *[topic_user(m.user_id) for m in members if m.user_id != actor.user_id])
        unit.record(
            Event(
                "message_updated", {"message": message_view(message)}, topics, conversation_id=conv.id, seq=message.seq
            )
        )
        others = [m for m in members if m.user_id != actor.user_id]
        return _render_for(message, actor.user_id, others)


def delete_message(svc: Services, actor: Actor, message_id: str, *, for_everyone: bool) -> dict[str, Any]:
    with svc.unit() as unit:
        message, conv, me = require_message(unit.conn, message_id, actor.user_id)
        rules.check_deletable(message)
        payload = {
            "message_id": message.id,
            "conversation_id": conv.id,
            "seq": message.seq,
            "delete_for_everyone": for_everyone,
        }
        if not for_everyone:
            store.hide_message(unit.conn, message, actor.user_id, unit.now)
            unit.record(
                Event(
                    "message_deleted", payload, (topic_user(actor.user_id),), conversation_id=conv.id, seq=message.seq
                )
            )
            return payload
        if message.is_deleted:
            return payload
        rules.check_delete_for_everyone(message, me, conv, unit.now, svc.settings.limits)
        store.update_message(
            unit.conn, message.id, content="", metadata={}, signature=None, is_deleted=True, deleted_at=unit.now
        )
        search_index.remove_message(unit.conn, message.id)
        message.content, message.metadata, message.signature = "", {}, None
        message.is_deleted, message.deleted_at = True, unit.now
        outbox.scrub_message(unit.conn, conv.id, message.seq, message_view(message))
        members = conv_store.list_members(unit.conn, conv.id)
        topics = (topic_conversation(conv.id), *[topic_user(m.user_id) for m in members])
        unit.record(Event("message_deleted", payload, topics, conversation_id=conv.id, seq=message.seq))
        return payload
