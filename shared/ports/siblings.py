"""Sibling services the core talks to (integration.md, "gRPC consumed"): the user service
(blocks), the media service (may this user attach this object?) and the notification service
(push to members who are not online).

Adapters: permissive local policies when an endpoint is not configured
(`shared/adapters/local_siblings.py`), gRPC clients otherwise. An adapter that cannot reach its
service raises `SiblingUnavailable`; each use case decides what that means (integration.md:
block checks fail closed for new direct conversations, media validation fails the attachment,
notifications are queued and retried, never blocking a send).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from shared.domain.errors import Unavailable


class SiblingUnavailable(Unavailable):
    """503: a sibling service did not answer (down, deadline passed, or its circuit is open)."""

    code = "sibling_unavailable"

    def __init__(self, service: str, message: str | None = None):
        super().__init__(
            message or f"the {service} is unavailable; try again shortly",
            details={"service": service, "retry_after": 5},
        )
        self.service = service


class UserDirectory(Protocol):
    def is_blocked(self, user_id: str, other_user_id: str) -> bool:
        """True if either user blocks the other."""
        ...

    def forget_blocks(self, user_id: str, other_user_id: str | None = None) -> None:
        """Drop what a cache knows of `user_id`'s blocks (with `other_user_id`, or all of them):
        called when a `user.blocked` / `user.unblocked` / `user.deleted` event arrives."""
        ...


@dataclass(frozen=True)
class MediaCheck:
    allowed: bool
    reason: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)  # what the media service knows of it


class MediaLibrary(Protocol):
    def validate_access(self, media_id: str, user_id: str, conversation_id: str) -> MediaCheck:
        """May `user_id` attach `media_id` to a message of `conversation_id`?"""
        ...


@dataclass(frozen=True)
class MessageNotification:
    """A push for recipients who are not online. No content for E2E conversations: `preview`
    is empty then (and in any case unless the client chose to share one)."""

    event_id: str  # the notification service dedupes by it
    message_id: str
    conversation_id: str
    sender_id: str
    recipient_ids: Sequence[str]
    message_type: str
    seq: int
    sent_at: datetime
    mention_ids: Sequence[str] = ()
    encrypted: bool = False
    preview: str = ""


class Notifier(Protocol):
    def notify_message(self, notification: MessageNotification) -> None:
        """Hand one push to the notification service (raises SiblingUnavailable when it cannot)."""
        ...

    def mark_read(self, user_id: str, conversation_id: str, up_to_seq: int) -> None:
        """The user read up to `up_to_seq`: clear their notifications of that conversation."""
        ...
