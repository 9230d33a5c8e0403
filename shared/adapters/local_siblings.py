"""Permissive local policies for unconfigured sibling services (each logged once, at start)."""

from __future__ import annotations

import logging

from shared.ports.siblings import MediaCheck, MessageNotification

log = logging.getLogger(__name__)


class PermissiveUserDirectory:
    def __init__(self) -> None:
        log.info("user-service not configured: local permissive policy (nobody blocks anybody)")

    def is_blocked(self, user_id: str, other_user_id: str) -> bool:
        return False

    def forget_blocks(self, user_id: str, other_user_id: str | None = None) -> None:
        return None


class PermissiveMediaLibrary:
    def __init__(self) -> None:
        log.info("media-service not configured: local permissive policy (every media id may be attached)")

    def validate_access(self, media_id: str, user_id: str, conversation_id: str) -> MediaCheck:
        return MediaCheck(allowed=True)


class DiscardingNotifier:
    def __init__(self) -> None:
        log.info("notification-service not configured: pushes to offline members are not sent")

    def notify_message(self, notification: MessageNotification) -> None:
        return None

    def mark_read(self, user_id: str, conversation_id: str, up_to_seq: int) -> None:
        return None
