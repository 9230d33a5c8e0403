"""Business rules from rules.md as pure functions: no I/O, no clock (callers pass `now`)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

import orjson

from shared.config import Limits
from shared.domain import nesting
from shared.domain.emoji import is_single_emoji
from shared.domain.errors import Forbidden, Invalid, TooLarge
from shared.domain.models import Conversation, Member, Message, MessageStatus, Role

ROLE_RANK: dict[str, int] = {"member": 0, "moderator": 1, "admin": 2, "owner": 3}
ROLES: tuple[Role, ...] = ("owner", "admin", "moderator", "member")
CLIENT_MESSAGE_TYPES = ("text", "media")
EPHEMERAL_DURATIONS = (3600, 21600, 86400, 604800)
UINT32_MAX = 2**32 - 1


def direct_key(user_a: str, user_b: str) -> str:
    """The unique key of a direct conversation: the same whichever side creates it."""
    low, high = sorted((user_a, user_b))
    return f"{low}:{high}"


def check_content(content: str, limits: Limits, field: str = "content") -> None:
    try:
        size = len(content.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise Invalid.field(field, "must be valid UTF-8 text") from exc
    if size > limits.max_content_bytes:
        raise TooLarge(
            f"{field} is {size} bytes; the limit is {limits.max_content_bytes} bytes",
            code="content_too_large",
            details={field: [f"at most {limits.max_content_bytes} bytes"]},
        )


def json_depth_limit(limits: Limits) -> int:
    """How deep a client's JSON value may nest: the configured bound, kept under the depth that
    stored values are read back within (shared.domain.nesting)."""
    return max(1, min(limits.max_json_depth, nesting.MAX_STORED_DEPTH))


def envelope_depth_limit(limits: Limits) -> int:
    """How deep a whole request body or socket frame may nest (its JSON values and its own levels)."""
    return json_depth_limit(limits) + nesting.ENVELOPE_DEPTH


def nesting_too_deep(field: str, limit: int) -> Invalid:
    return Invalid(
        f"{field} nests deeper than {limit} levels",
        code="nesting_too_deep",
        details={field: [f"at most {limit} levels of nested objects and arrays"]},
    )


def check_json_depth(value: Any, limits: Limits, field: str = "metadata") -> None:
    """A client-supplied JSON value nests at most `max_json_depth` levels (422 otherwise)."""
    limit = json_depth_limit(limits)
    if nesting.exceeds(value, limit):
        raise nesting_too_deep(field, limit)


def check_metadata(metadata: dict[str, Any], limits: Limits) -> None:
    """Depth first: the size is measured by encoding, which must never see a value too deep."""
    check_json_depth(metadata, limits)
    check_metadata_size(metadata, limits)


def check_metadata_size(metadata: dict[str, Any], limits: Limits) -> None:
    size = len(orjson.dumps(metadata))
    if size > limits.max_metadata_bytes:
        raise TooLarge(
            f"metadata is {size} bytes; the limit is {limits.max_metadata_bytes} bytes",
            code="metadata_too_large",
            details={"metadata": [f"at most {limits.max_metadata_bytes} bytes"]},
        )


def check_new_message(
    content: str,
    message_type: str,
    client_random: int,
    metadata: dict[str, Any],
    expires_in_seconds: int | None,
    limits: Limits,
    *,
    allow_system: bool = False,
) -> None:
    allowed = (*CLIENT_MESSAGE_TYPES, "system") if allow_system else CLIENT_MESSAGE_TYPES
    if message_type not in allowed:
        raise Invalid.field("message_type", f"must be one of {', '.join(allowed)}")
    if not 0 <= client_random <= UINT32_MAX:
        raise Invalid.field("client_random", "must be an unsigned 32-bit integer")
    if expires_in_seconds is not None and expires_in_seconds not in EPHEMERAL_DURATIONS:
        raise Invalid.field("expires_in_seconds", f"must be one of {', '.join(map(str, EPHEMERAL_DURATIONS))}")
    check_content(content, limits)
    check_text_content(message_type, content)
    check_metadata(metadata, limits)


def check_text_content(message_type: str, content: str) -> None:
    """A text message says something: empty or blank content is refused (media messages may
    have none, their substance is in metadata and attachments; an E2E envelope is never blank)."""
    if message_type == "text" and not content.strip():
        raise Invalid(
            "a text message needs some content: it is empty or only blank",
            code="empty_content",
            details={"content": ["must not be empty or blank in a text message"]},
        )


def check_group_name(name: str | None, limits: Limits) -> str:
    cleaned = (name or "").strip()
    if not 1 <= len(cleaned) <= limits.max_group_name_chars:
        raise Invalid.field("name", f"must be 1 to {limits.max_group_name_chars} characters")
    return cleaned


def require_role(member: Member, minimum: Role, action: str) -> None:
    if ROLE_RANK[member.role] < ROLE_RANK[minimum]:
        raise Forbidden(f"only a {minimum} or above can {action}", code="insufficient_role")


def can_manage_members(role: str) -> bool:
    return ROLE_RANK[role] >= ROLE_RANK["admin"]


def check_role_change(actor: Member, target: Member, new_role: str, active_owners: int) -> None:
    """Owners/admins change roles, never above their own; the last owner stays an owner."""
    if new_role not in ROLE_RANK:
        raise Invalid.field("role", f"must be one of {', '.join(ROLES)}")
    require_role(actor, "admin", "change roles")
    if ROLE_RANK[new_role] > ROLE_RANK[actor.role]:
        raise Forbidden("you cannot grant a role above your own", code="insufficient_role")
    if ROLE_RANK[target.role] > ROLE_RANK[actor.role]:
        raise Forbidden("you cannot change the role of someone above you", code="insufficient_role")
    if target.role == "owner" and new_role != "owner" and active_owners <= 1:
        raise Forbidden("the last owner cannot be demoted; name another owner first", code="last_owner")


def check_removal(actor: Member, target: Member) -> None:
    require_role(actor, "admin", "remove members")
    if ROLE_RANK[target.role] > ROLE_RANK[actor.role]:
        raise Forbidden("you cannot remove someone above you", code="insufficient_role")


def check_leave(member: Member, conversation: Conversation, active_owners: int, active_members: int) -> None:
    if conversation.type == "group" and member.role == "owner" and active_owners <= 1 and active_members > 1:
        raise Forbidden("the last owner cannot leave without handing over ownership", code="last_owner")


def check_edit(message: Message, actor_id: str, now: datetime, limits: Limits) -> None:
    if message.sender_id != actor_id:
        raise Forbidden("only the sender can edit a message", code="not_sender")
    if message.message_type == "system" or message.is_deleted:
        raise Invalid("deleted and system messages cannot be edited", code="not_editable")
    if now - message.sent_at > timedelta(seconds=limits.edit_window_seconds):
        raise Forbidden("the edit window has passed", code="edit_window_expired")


def check_deletable(message: Message) -> None:
    """System messages (joins, leaves, renames, role changes) are the conversation's record:
    nobody deletes them, for everyone or for themselves."""
    if message.message_type == "system":
        raise Invalid(
            "system messages cannot be deleted",
            code="not_deletable",
            details={"message_id": ["system messages cannot be deleted"]},
        )


def check_delete_for_everyone(
    message: Message, actor: Member, conversation: Conversation, now: datetime, limits: Limits
) -> None:
    if conversation.type == "group" and ROLE_RANK[actor.role] >= ROLE_RANK["admin"]:
        return
    if message.sender_id != actor.user_id:
        raise Forbidden("only the sender can delete a message for everyone", code="not_sender")
    if now - message.sent_at > timedelta(seconds=limits.delete_for_everyone_window_seconds):
        raise Forbidden("the delete-for-everyone window has passed", code="delete_window_expired")


def message_status(seq: int, readers: Iterable[Member]) -> MessageStatus:
    """Aggregate status for the sender: read/delivered once every other active member is."""
    others = list(readers)
    if not others:
        return "sent"
    if all(visible_read_seq(m) >= seq for m in others):
        return "read"
    if all(max(m.last_delivered_seq, m.last_read_seq) >= seq for m in others):
        return "delivered"
    return "sent"


def visible_read_seq(member: Member) -> int:
    """What a sender may learn of this reader's read watermark (receipts can be turned off)."""
    return member.last_read_seq if member.show_read_receipts else 0


# Reactions, message pins, drafts, attachments, forwarding, mark unread.

MEDIA_TYPES = ("image", "video", "audio", "document")
MAX_MEDIA_ID_CHARS = 128


def check_reaction(reaction: str) -> str:
    """The reaction as stored: one emoji grapheme (surrounding whitespace dropped)."""
    cleaned = reaction.strip()
    if not is_single_emoji(cleaned):
        raise Invalid.field("reaction", "must be exactly one emoji", code="invalid_reaction")
    return cleaned


def check_reactable(message: Message) -> None:
    if message.is_deleted:
        raise Invalid(
            "a deleted message cannot get reactions",
            code="message_deleted",
            details={"message_id": ["the message is deleted"]},
        )


def check_reaction_limits(reaction: str, mine: Iterable[str], on_message: Iterable[str], limits: Limits) -> None:
    """A user's new emoji on a message: at most N different emojis per user per message and
    M distinct emojis per message. Repeating one the user already has is always fine."""
    my_reactions = set(mine)
    if reaction in my_reactions:
        return
    per_user = limits.max_reactions_per_user_per_message
    if len(my_reactions) >= per_user:
        raise Invalid(
            f"you can add at most {per_user} different reactions to a message",
            code="too_many_reactions",
            details={"reaction": [f"at most {per_user} per user per message"]},
        )
    distinct = set(on_message)
    per_message = limits.max_distinct_reactions_per_message
    if reaction not in distinct and len(distinct) >= per_message:
        raise Invalid(
            f"a message can have at most {per_message} different reactions",
            code="too_many_distinct_reactions",
            details={"reaction": [f"at most {per_message} distinct emojis per message"]},
        )


def check_pinnable(message: Message, member: Member) -> None:
    """System and deleted messages are not pinnable; members pin only their own messages,
    moderators and above any message."""
    if message.message_type == "system":
        raise Invalid(
            "system messages cannot be pinned",
            code="not_pinnable",
            details={"message_id": ["system messages cannot be pinned"]},
        )
    if message.is_deleted:
        raise Invalid(
            "deleted messages cannot be pinned", code="not_pinnable", details={"message_id": ["the message is deleted"]}
        )
    if ROLE_RANK[member.role] < ROLE_RANK["moderator"] and message.sender_id != member.user_id:
        raise Forbidden("members can pin only their own messages", code="insufficient_role")


def check_pin_limit(pinned: int, limits: Limits) -> None:
    """`pinned`: the conversation's pins before this one."""
    if pinned >= limits.max_pinned_messages:
        raise Invalid(
            f"a conversation can have at most {limits.max_pinned_messages} pinned messages",
            code="too_many_pins",
            details={"message_id": [f"at most {limits.max_pinned_messages} pins"]},
        )


def check_unpin(message: Message, member: Member, pinned_by: str) -> None:
    """Moderators and above unpin anything; a member unpins their own messages or their own pins."""
    if ROLE_RANK[member.role] >= ROLE_RANK["moderator"]:
        return
    if member.user_id not in (message.sender_id, pinned_by):
        raise Forbidden("members can unpin only their own messages or pins", code="insufficient_role")


def check_draft(content: str, metadata: dict[str, Any], limits: Limits) -> None:
    try:
        size = len(content.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise Invalid.field("content", "must be valid UTF-8 text") from exc
    if size > limits.max_draft_bytes:
        raise TooLarge(
            f"the draft is {size} bytes; the limit is {limits.max_draft_bytes} bytes",
            code="draft_too_large",
            details={"content": [f"at most {limits.max_draft_bytes} bytes"]},
        )
    check_metadata(metadata, limits)


def check_attachment(media_id: str, media_type: str, metadata: dict[str, Any], limits: Limits) -> str:
    """The media id as stored (trimmed); the type one of MEDIA_TYPES; metadata within its limit."""
    cleaned = media_id.strip()
    if not 1 <= len(cleaned) <= MAX_MEDIA_ID_CHARS:
        raise Invalid.field("media_id", f"must be 1 to {MAX_MEDIA_ID_CHARS} characters")
    if media_type not in MEDIA_TYPES:
        raise Invalid.field("media_type", f"must be one of {', '.join(MEDIA_TYPES)}")
    check_metadata(metadata, limits)
    return cleaned


def check_attachable(message: Message, actor_id: str) -> None:
    if message.sender_id != actor_id:
        raise Forbidden("only the sender can attach media to a message", code="not_sender")
    if message.message_type == "system" or message.is_deleted:
        raise Invalid(
            "deleted and system messages cannot get attachments",
            code="not_attachable",
            details={"message_id": ["deleted and system messages cannot get attachments"]},
        )


def check_attachment_count(existing: int, limits: Limits) -> None:
    if existing >= limits.max_attachments_per_message:
        n = limits.max_attachments_per_message
        raise Invalid(
            f"a message can have at most {n} attachments",
            code="too_many_attachments",
            details={"media_id": [f"at most {n} attachments per message"]},
        )


def check_forwardable(message: Message, conversation: Conversation) -> None:
    """Deleted, system and ephemeral messages are not forwarded, nor E2E envelopes: their
    ciphertext is for the members of their own conversation (clients re-encrypt and send)."""
    reason = None
    if message.is_deleted:
        reason = "deleted messages cannot be forwarded"
    elif message.message_type == "system":
        reason = "system messages cannot be forwarded"
    elif message.expires_at is not None:
        reason = "ephemeral messages cannot be forwarded"
    elif conversation.e2ee_enabled:
        reason = "messages of end-to-end encrypted conversations are forwarded by the client, re-encrypted"
    if reason is not None:
        raise Invalid(reason, code="not_forwardable", details={"message_id": [reason]})


def check_forward_targets(conversation_ids: Iterable[str], limits: Limits) -> list[str]:
    """The target conversations, each once, in the order given."""
    targets = list(dict.fromkeys(conversation_ids))
    if not 1 <= len(targets) <= limits.max_forward_targets:
        raise Invalid.field("conversation_ids", f"give 1 to {limits.max_forward_targets} conversations")
    return targets


def check_forward_target(conversation: Conversation) -> None:
    if conversation.e2ee_enabled:
        reason = f"{conversation.id} is end-to-end encrypted"
        raise Invalid(
            "plaintext cannot be forwarded into an end-to-end encrypted conversation",
            code="not_forwardable",
            details={"conversation_ids": [reason]},
        )


def unread_watermark(message_seq: int) -> int:
    """The read watermark that makes this message and everything after it unread."""
    return max(0, message_seq - 1)


def check_scheduled_at(scheduled_at: datetime, now: datetime, limits: Limits) -> None:
    """Scheduled: between 1 minute and 1 year ahead (both bounds included, both configurable)."""
    lead = scheduled_at - now
    if lead < timedelta(seconds=limits.scheduled_min_lead_seconds):
        raise Invalid.field("scheduled_at", f"must be at least {limits.scheduled_min_lead_seconds} seconds ahead")
    if lead > timedelta(seconds=limits.scheduled_max_lead_seconds):
        raise Invalid.field("scheduled_at", f"must be at most {limits.scheduled_max_lead_seconds} seconds ahead")


def check_pending_scheduled(pending: int, limits: Limits) -> None:
    if pending >= limits.max_pending_scheduled_per_user:
        raise Invalid(
            f"at most {limits.max_pending_scheduled_per_user} scheduled messages may be pending",
            code="too_many_scheduled",
            details={"scheduled_at": [f"at most {limits.max_pending_scheduled_per_user} pending per user"]},
        )
