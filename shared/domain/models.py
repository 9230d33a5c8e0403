"""Plain domain objects. Storage builds them from rows; use cases and renderers read them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from shared.domain.cloudevents import check_recorded

ConversationType = Literal["direct", "group"]
Role = Literal["owner", "admin", "moderator", "member"]
MessageType = Literal["text", "media", "system"]
MessageStatus = Literal["sent", "delivered", "read"]


@dataclass(frozen=True)
class Actor:
    """Who is calling: the token's `sub` and `deviceId`."""

    user_id: str
    device_id: str | None = None
    claims: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass
class Conversation:
    id: str
    type: ConversationType
    name: str | None
    metadata: dict[str, Any]
    created_by: str
    created_at: datetime
    updated_at: datetime
    is_active: bool
    last_seq: int
    last_message_at: datetime | None = None

    @property
    def e2ee_enabled(self) -> bool:
        e2ee = self.metadata.get("e2ee")
        return isinstance(e2ee, dict) and e2ee.get("enabled") is True


@dataclass
class Member:
    conversation_id: str
    user_id: str
    role: Role
    joined_at: datetime
    is_active: bool = True
    left_at: datetime | None = None
    last_read_seq: int = 0
    last_delivered_seq: int = 0
    notifications_enabled: bool = True
    muted_until: datetime | None = None
    show_read_receipts: bool = True
    show_typing: bool = True
    custom_name: str | None = None
    is_pinned: bool = False
    pinned_at: datetime | None = None
    is_archived: bool = False


@dataclass
class Message:
    id: str
    conversation_id: str
    seq: int
    sender_id: str
    sender_device_id: str | None
    client_random: int
    message_type: MessageType
    content: str
    metadata: dict[str, Any]
    reply_to_id: str | None
    forwarded_from_id: str | None
    signature: str | None
    sender_public_key: str | None
    sent_at: datetime
    edited_at: datetime | None = None
    is_deleted: bool = False
    deleted_at: datetime | None = None
    expires_at: datetime | None = None

    @property
    def is_edited(self) -> bool:
        return self.edited_at is not None


@dataclass(frozen=True)
class NewMessage:
    """What a sender asks to send, already validated by `rules.validate_new_message`."""

    content: str
    message_type: MessageType
    client_random: int
    metadata: dict[str, Any] = field(default_factory=dict)
    reply_to_id: str | None = None
    forwarded_from_id: str | None = None
    signature: str | None = None
    sender_public_key: str | None = None
    expires_in_seconds: int | None = None


@dataclass(frozen=True)
class Event:
    """One thing that happened, for the outbox: `topics` says who hears it."""

    name: str
    payload: dict[str, Any]
    topics: tuple[str, ...]
    conversation_id: str | None = None
    seq: int | None = None
    # Who replays it through /sync besides the conversation's members, when it is not simply
    # "the users of the user: topics" (e.g. member_removed: the removed user, no longer a member).
    sync_targets: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        check_recorded(self.name)  # every recorded name has its entry in the CloudEvents mapping

    @property
    def is_conversation_wide(self) -> bool:
        return self.conversation_id is not None and f"conversation:{self.conversation_id}" in self.topics

    def targets(self) -> tuple[str, ...]:
        """Users who get this event through /sync individually (not as conversation members)."""
        if self.sync_targets is not None:
            return self.sync_targets
        if self.is_conversation_wide:
            return ()
        return tuple(t.removeprefix("user:") for t in self.topics if t.startswith("user:"))


@dataclass
class Reaction:
    """One user's emoji on one message."""

    id: str
    message_id: str
    conversation_id: str
    user_id: str
    reaction: str
    created_at: datetime


@dataclass
class MessagePin:
    message_id: str
    conversation_id: str
    pinned_by: str
    pinned_at: datetime


@dataclass
class Draft:
    conversation_id: str
    user_id: str
    content: str
    metadata: dict[str, Any]
    updated_at: datetime


@dataclass
class Attachment:
    """A media-service object linked to a message."""

    id: str
    message_id: str
    conversation_id: str
    media_id: str
    media_type: str
    metadata: dict[str, Any]
    created_at: datetime


ScheduledStatus = Literal["pending", "sending", "sent", "failed", "cancelled"]


@dataclass
class ScheduledMessage:
    """A message to send later through the normal send path. `sending` is internal: claimed by
    one scheduler instance (clients see it as `pending`)."""

    id: str
    conversation_id: str
    sender_id: str
    sender_device_id: str | None
    content: str
    message_type: MessageType
    metadata: dict[str, Any]
    client_random: int
    scheduled_at: datetime
    status: ScheduledStatus
    created_at: datetime
    updated_at: datetime
    message_id: str | None = None
    failure_reason: str | None = None
