"""Use cases sibling services call (the gRPC shim, `shared/rpc/`): the same code paths as REST
and the relay, entered by a service instead of a member. A service is trusted by its caller
identity (checked by the shim), so membership and role checks give way to the rules of the data:
a system notice is sequenced, stored and broadcast like any message; a group created by
user-service is a group like any other.

Who acts: the user the sibling names (`actor_id`), else `SERVICE_SENDER`, the nil UUID, which
is what a notice from a service shows as its sender."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError

from shared.app import attachments, conversations, members, scheduled
from shared.app.access import require_conversation, require_visible_message
from shared.app.services import Services, Unit
from shared.app.system_messages import post_system_message
from shared.domain import rules
from shared.domain.errors import Conflict, Forbidden, Invalid, NotFound, RateLimited
from shared.domain.ids import parse_uuid
from shared.domain.models import Actor, Attachment, Conversation, Member, Message, Role
from shared.storage import attachments as attachment_store
from shared.storage import conversations as conv_store
from shared.storage import messages as msg_store
from shared.storage import notifications as inbound
from shared.storage import scheduled as scheduled_store

SERVICE_SENDER = "00000000-0000-0000-0000-000000000000"
MAX_ACTION_CHARS = 64
ROLES: tuple[Role, ...] = ("owner", "admin", "moderator", "member")


def acting(actor_id: str) -> Actor:
    return Actor(user_id=parse_uuid(actor_id, "actor_id") if actor_id else SERVICE_SENDER)


def _ids(values: list[str], field: str) -> list[str]:
    return list(dict.fromkeys(parse_uuid(v, field) for v in values))


# -- conversations ---------------------------------------------------------------------------


@dataclass(frozen=True)
class GroupCreated:
    conversation_id: str
    created: bool


def create_group_for(
    svc: Services,
    group_id: str,
    name: str,
    creator_id: str,
    roles: dict[str, Role],
    metadata: dict[str, Any],
) -> GroupCreated:
    """user-service created a group: its conversation, with the group id as conversation id,
    the creator as owner and the members with their roles. Idempotent on the group id: a retry
    (or a concurrent duplicate) finds it and changes nothing."""
    limits = svc.settings.limits
    conversation_id = parse_uuid(group_id, "group_id")
    creator = parse_uuid(creator_id, "creator_id")
    clean_name = rules.check_group_name(name, limits)
    rules.check_metadata(metadata, limits)
    everyone: dict[str, str] = {creator: "owner"}
    for user_id, role in roles.items():
        everyone.setdefault(parse_uuid(user_id, "members"), role)
    if len(everyone) < 2:
        raise Invalid.field("members", "a group needs at least one member besides its creator")
    if len(everyone) > limits.max_group_members:
        raise Invalid.field("members", f"a group has at most {limits.max_group_members} members")
    with svc.db.transaction() as conn:
        existing = conv_store.get_conversation(conn, conversation_id)
    if existing is not None:
        if existing.type != "group":
            raise Conflict("this id belongs to a conversation that is not a group", code="conversation_exists")
        return GroupCreated(conversation_id, created=False)
    try:
        with svc.unit() as unit:
            conversations.insert_group(unit, conversation_id, clean_name, metadata, creator, everyone)
    except IntegrityError:  # created concurrently by the same notification
        with svc.db.transaction() as conn:
            if conv_store.get_conversation(conn, conversation_id) is None:
                raise
        return GroupCreated(conversation_id, created=False)
    return GroupCreated(conversation_id, created=True)


def _locked_group(conn: Any, conversation_id: str) -> Conversation:
    conv_store.lock_conversation(conn, conversation_id)
    conv = require_conversation(conn, conversation_id)
    if conv.type != "group":
        raise Invalid("a direct conversation has exactly two members", code="not_a_group")
    return conv


# NotifyConversationEvent's event ids are remembered with the CloudEvents consumed (the same
# table, forgotten after the same time): a key of their own, so neither can shadow the other.
NOTIFIED_EVENTS_SOURCE = "grpc:whispr.messaging.v1.MessagingService/NotifyConversationEvent"


def _first_time(unit: Unit, event_id: str, kind: str) -> bool:
    """Whether this NotifyConversationEvent is to be applied: False for a replay of an event id
    already applied (the caller's retry after a lost answer, maybe after later events: applying
    it again would undo them). Without an id, an event is applied by its effect alone (adding
    a member who already is one changes nothing)."""
    return not event_id or inbound.first_delivery(unit.conn, NOTIFIED_EVENTS_SOURCE, event_id, kind, unit.now)


def add_members_for(
    svc: Services, conversation_id: str, actor_id: str, user_ids: list[str], role: Role, event_id: str = ""
) -> int:
    """member_added from a sibling: how many became members (0 when all already were, or the
    event was applied before)."""
    actor, wanted = acting(actor_id), _ids(user_ids, "user_ids")
    if not wanted:
        raise Invalid.field("user_ids", "give at least one user id")
    with svc.unit() as unit:
        if not _first_time(unit, event_id, "member_added"):
            return 0
        conv = _locked_group(unit.conn, parse_uuid(conversation_id, "conversation_id"))
        return members.admit(svc, unit, conv, actor, wanted, role)


def remove_members_for(
    svc: Services, conversation_id: str, actor_id: str, user_ids: list[str], event_id: str = ""
) -> int:
    """member_removed from a sibling: how many active members were removed (0: none was in, or
    the event was applied before)."""
    actor, wanted = acting(actor_id), _ids(user_ids, "user_ids")
    if not wanted:
        raise Invalid.field("user_ids", "give at least one user id")
    removed = 0
    with svc.unit() as unit:
        if not _first_time(unit, event_id, "member_removed"):
            return 0
        conv = _locked_group(unit.conn, parse_uuid(conversation_id, "conversation_id"))
        for user_id in wanted:
            member = conv_store.get_member(unit.conn, conv.id, user_id)
            if member is not None and member.is_active:
                members.deactivate(unit, conv, member, actor, "member_removed")
                removed += 1
    return removed


def change_settings_for(
    svc: Services, conversation_id: str, actor_id: str, settings: dict[str, Any], event_id: str = ""
) -> bool:
    """settings_changed from a sibling: merged into the conversation's metadata (a `name` renames
    a group) and announced; False when it changes nothing or the event was applied before."""
    actor = acting(actor_id)
    if not settings:
        raise Invalid.field("settings", "give the changed settings")
    clean_id = parse_uuid(conversation_id, "conversation_id")
    with svc.unit() as unit:
        if not _first_time(unit, event_id, "settings_changed"):
            return False
        conv_store.lock_conversation(unit.conn, clean_id)
        conv = require_conversation(unit.conn, clean_id)
        if all(conv.metadata.get(k) == v for k, v in settings.items()):
            return False
        active = conv_store.list_members(unit.conn, conv.id)
        if not active:
            raise NotFound("conversation not found", code="conversation_not_found")
        viewer = next((m for m in active if m.role == "owner"), active[0])
        name = settings.get("name") if conv.type == "group" else None
        conversations.apply_update(
            unit,
            svc.settings.limits,
            conv,
            actor,
            viewer,
            name=name if isinstance(name, str) else None,
            metadata=settings,
        )
    return True


def last_seq(svc: Services, conversation_id: str) -> int:
    with svc.db.transaction() as conn:
        return require_conversation(conn, parse_uuid(conversation_id, "conversation_id")).last_seq


@dataclass(frozen=True)
class Stats:
    conversation: Conversation
    message_count: int
    unread_count: int
    last_activity: datetime
    member_count: int


def conversation_stats(svc: Services, conversation_id: str, user_id: str) -> Stats:
    with svc.db.transaction() as conn:
        conv = require_conversation(conn, parse_uuid(conversation_id, "conversation_id"))
        count, last_sent = msg_store.activity(conn, conv.id)
        unread = 0
        if user_id:
            member = conv_store.get_member(conn, conv.id, parse_uuid(user_id, "user_id"))
            if member is None:
                raise NotFound("no such member", code="member_not_found")
            unread = conv_store.unread_counts(conn, member.user_id, [conv.id]).get(conv.id, 0)
        active = conv_store.list_members(conn, conv.id)
    last = max(t for t in (last_sent, conv.updated_at) if t is not None)
    return Stats(conv, count, unread, last, len(active))


def participants(svc: Services, conversation_id: str, include_inactive: bool) -> tuple[Conversation, list[Member]]:
    with svc.db.transaction() as conn:
        conv = require_conversation(conn, parse_uuid(conversation_id, "conversation_id"))
        return conv, conv_store.list_members(conn, conv.id, active_only=not include_inactive)


# -- messages --------------------------------------------------------------------------------


def get_message_for(svc: Services, message_id: str, requester_id: str) -> tuple[Message, list[Attachment]]:
    """One message with its attachments; with `requester_id`, only if that user may see it now."""
    clean_id = parse_uuid(message_id, "message_id")
    with svc.db.transaction() as conn:
        if requester_id:
            message, _ = require_visible_message(conn, clean_id, parse_uuid(requester_id, "requester_id"), svc.clock())
        else:
            found = msg_store.get_message(conn, clean_id)
            if found is None:
                raise NotFound("message not found", code="message_not_found")
            message = found
        return message, attachment_store.list_for_message(conn, message.id)


@dataclass(frozen=True)
class Notice:
    message: Message
    duplicate: bool


def send_system_notice(
    svc: Services, conversation_id: str, action: str, actor_id: str, details: dict[str, Any], client_random: int
) -> Notice:
    """A system message from a sibling, sequenced and delivered like any other; a retry with the
    same `client_random` (per conversation and sender) returns the original."""
    clean_action = action.strip()
    if not 1 <= len(clean_action) <= MAX_ACTION_CHARS:
        raise Invalid.field("action", f"must be 1 to {MAX_ACTION_CHARS} characters")
    if client_random <= 0:
        raise Invalid.field("client_random", "must be a positive integer (the retry key)")
    limits = svc.settings.limits
    rules.check_metadata(details, limits)
    actor = acting(actor_id)
    clean_id = parse_uuid(conversation_id, "conversation_id")
    # a runaway sibling must not flood a conversation's members: the send rate, per conversation
    wait = svc.limiter.acquire(
        f"system_notice:{clean_id}", per_second=limits.messages_per_minute / 60, burst=limits.messages_burst
    )
    if wait:
        raise RateLimited("too many system messages in this conversation; slow down", retry_after=wait)
    since = svc.clock() - timedelta(seconds=limits.client_random_window_seconds)
    with svc.unit() as unit:
        conv_store.lock_conversation(unit.conn, clean_id)
        conv = require_conversation(unit.conn, clean_id)
        key = (conv.id, actor.user_id, client_random)
        original = msg_store.find_by_client_randoms(unit.conn, {key}, since).get(key)
        if original is not None:
            return Notice(original, duplicate=True)
        return Notice(post_system_message(unit, conv, actor, clean_action, details, client_random), duplicate=False)


@dataclass(frozen=True)
class MediaLinked:
    attachment: Attachment
    created: bool


def link_media_for(
    svc: Services,
    message_id: str,
    media_id: str,
    media_type: str,
    metadata: dict[str, Any],
    conversation_id: str,
    user_id: str,
) -> MediaLinked:
    """media-service links an uploaded object to a message (idempotent per media id)."""
    limits = svc.settings.limits
    clean_media = rules.check_attachment(media_id, media_type, metadata, limits)
    clean_id = parse_uuid(message_id, "message_id")
    with svc.unit() as unit:
        message = msg_store.get_message(unit.conn, clean_id)
        if message is None or (conversation_id and message.conversation_id != conversation_id):
            raise NotFound("message not found", code="message_not_found")
        if user_id and message.sender_id != user_id:
            raise Forbidden("only the sender's media can be attached to a message", code="not_sender")
        rules.check_attachable(message, message.sender_id)
        linked = attachments.link(unit, message, clean_media, media_type, metadata, limits)
        stored = attachment_store.find(unit.conn, message.id, clean_media)
    assert stored is not None
    return MediaLinked(stored, linked.created)


# -- scheduling ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fired:
    message: Message
    already_sent: bool


def fire_scheduled_for(svc: Services, scheduled_id: str) -> Fired:
    """Send a due scheduled message now; a second call returns the message the first one sent."""
    clean_id = parse_uuid(scheduled_id, "scheduled_message_id")
    with svc.db.transaction() as conn:
        before = scheduled_store.get_scheduled(conn, clean_id)
    if before is None:
        raise NotFound("scheduled message not found", code="scheduled_not_found")
    outcome = "skipped" if before.status == "sent" else scheduled.fire_scheduled(svc, clean_id)
    with svc.db.transaction() as conn:
        item = scheduled_store.get_scheduled(conn, clean_id)
        message = msg_store.get_message(conn, item.message_id) if item and item.message_id else None
    if item is None or message is None:
        status = item.status if item else "gone"
        raise Invalid(f"the scheduled message was not sent ({status})", code=f"scheduled_{status}")
    return Fired(message, already_sent=outcome != "sent")


def expire_messages_for(svc: Services, before: datetime | None, limit: int, conversation_id: str) -> tuple[int, bool]:
    """Expire ephemeral messages due by `before` (now by default), at most `limit`: (how many,
    whether the limit was reached, so that more may remain)."""
    if limit < 0:
        raise Invalid.field("limit", "must be 0 (the default batch) or more")
    cap = limit or scheduled.BATCH
    target = parse_uuid(conversation_id, "conversation_id") if conversation_id else None
    count = scheduled.expire_due_messages(svc, before, limit=cap, conversation_id=target)
    return count, count >= cap
