"""Permissive local policy for unconfigured sibling services (logged once at start)."""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


class PermissiveUserDirectory:
    def __init__(self) -> None:
        log.info("user-service not configured: local permissive policy (nobody blocks anybody)")

    def is_blocked(self, user_id: str, other_user_id: str) -> bool:
        return False
