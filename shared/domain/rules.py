"""Business rules from rules.md as pure functions: no I/O, no clock (callers pass `now`)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

import orjson

from shared.config import Limits
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


def check_metadata(metadata: dict[str, Any], limits: Limits) -> None:
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
    check_metadata(metadata, limits)


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
