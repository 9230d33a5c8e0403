"""Domain objects as the JSON the clients read (snake_case, RFC 3339 UTC with microseconds)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from shared.domain.models import (
    Attachment,
    Conversation,
    Draft,
    Member,
    Message,
    MessagePin,
    MessageStatus,
    Reaction,
)


def timestamp(value: datetime | None) -> str | None:
    """RFC 3339 in UTC, with microseconds and Z. Converts aware times from other offsets (naive
    ones are taken as UTC), and writes four-digit years (isoformat pads them, unlike strftime's
    %Y). isoformat, not strftime: this runs for every timestamp of every message rendered."""
    if value is None:
        return None
    if value.utcoffset():
        value = value.astimezone(timezone.utc)
    return value.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def message_view(message: Message, status: MessageStatus | None = None) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": message.id,
        "conversation_id": message.conversation_id,
        "seq": message.seq,
        "sender_id": message.sender_id,
        "sender_device_id": message.sender_device_id,
        "client_random": message.client_random,
        "message_type": message.message_type,
        "content": message.content,
        "metadata": message.metadata,
        "reply_to_id": message.reply_to_id,
        "forwarded_from_id": message.forwarded_from_id,
        "signature": message.signature,
        "sender_public_key": message.sender_public_key,
        "sent_at": timestamp(message.sent_at),
        "edited_at": timestamp(message.edited_at),
        "is_edited": message.is_edited,
        "is_deleted": message.is_deleted,
        "expires_at": timestamp(message.expires_at),
    }
    if status is not None:
        view["status"] = status
    return view


def member_view(member: Member) -> dict[str, Any]:
    return {
        "user_id": member.user_id,
        "role": member.role,
        "joined_at": timestamp(member.joined_at),
        "is_active": member.is_active,
    }


def is_muted(member: Member, now: datetime) -> bool:
    return member.muted_until is not None and member.muted_until > now


def settings_view(member: Member, now: datetime) -> dict[str, Any]:
    return {
        "conversation_id": member.conversation_id,
        "notifications_enabled": member.notifications_enabled,
        "muted_until": timestamp(member.muted_until),
        "show_read_receipts": member.show_read_receipts,
        "show_typing": member.show_typing,
        "custom_name": member.custom_name,
        "is_pinned": member.is_pinned,
        "is_archived": member.is_archived,
        "is_muted": is_muted(member, now),
    }


def conversation_view(
    conv: Conversation,
    me: Member,
    members: list[Member],
    *,
    last_message: dict[str, Any] | None,
    unread_count: int,
    now: datetime,
    detail: bool = False,
) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": conv.id,
        "type": conv.type,
        "name": conv.name,
        "metadata": conv.metadata,
        "created_at": timestamp(conv.created_at),
        "updated_at": timestamp(conv.updated_at),
        "is_active": conv.is_active,
        "last_seq": conv.last_seq,
        "last_message": last_message,
        "unread_count": unread_count,
        "last_read_seq": me.last_read_seq,
        "member_user_ids": [m.user_id for m in members],
        "is_pinned": me.is_pinned,
        "is_muted": is_muted(me, now),
        "is_archived": me.is_archived,
    }
    if detail:
        view["members"] = [member_view(m) for m in members]
        view["member_count"] = len(members)
    return view


def reaction_view(reaction: Reaction) -> dict[str, Any]:
    return {
        "id": reaction.id,
        "message_id": reaction.message_id,
        "user_id": reaction.user_id,
        "reaction": reaction.reaction,
        "created_at": timestamp(reaction.created_at),
    }


def pin_view(pin: MessagePin, message: Message) -> dict[str, Any]:
    return {
        "message_id": pin.message_id,
        "conversation_id": pin.conversation_id,
        "pinned_by": pin.pinned_by,
        "pinned_at": timestamp(pin.pinned_at),
        "message": message_view(message),
    }


def draft_view(draft: Draft) -> dict[str, Any]:
    return {
        "conversation_id": draft.conversation_id,
        "content": draft.content,
        "metadata": draft.metadata,
        "updated_at": timestamp(draft.updated_at),
    }


def attachment_view(attachment: Attachment) -> dict[str, Any]:
    return {
        "id": attachment.id,
        "message_id": attachment.message_id,
        "conversation_id": attachment.conversation_id,
        "media_id": attachment.media_id,
        "media_type": attachment.media_type,
        "metadata": attachment.metadata,
        "created_at": timestamp(attachment.created_at),
    }
