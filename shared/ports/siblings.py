"""Sibling services the core asks before acting (user-service blocks, for now)."""

from __future__ import annotations

from typing import Protocol


class UserDirectory(Protocol):
    def is_blocked(self, user_id: str, other_user_id: str) -> bool:
        """True if either user blocks the other."""
        ...
