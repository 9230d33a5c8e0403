"""Typing indicators: never stored, broadcast as `user_typing {user_id, typing}`, and ended by the
relay when the typist stays silent for `typing_expiry_seconds` (10 s) or leaves."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

Publish = Callable[[str, str, dict[str, Any], str | None], None]  # (name, topic, payload, conversation_id)


class TypingIndicators:
    def __init__(self, publish: Publish, expiry_seconds: float):
        self._publish = publish
        self._expiry = expiry_seconds
        self._timers: dict[tuple[str, str], asyncio.TimerHandle] = {}

    def _announce(self, topic: str, conversation_id: str, user_id: str, typing: bool) -> None:
        self._publish("user_typing", topic, {"user_id": user_id, "typing": typing}, conversation_id)

    def typing(self, topic: str, conversation_id: str, user_id: str, typing: bool) -> None:
        if not typing:
            self.stop(topic, conversation_id, user_id)
            return
        key = (topic, user_id)
        previous = self._timers.pop(key, None)
        if previous is not None:
            previous.cancel()
        loop = asyncio.get_running_loop()
        self._timers[key] = loop.call_later(self._expiry, self._expire, topic, conversation_id, user_id)
        self._announce(topic, conversation_id, user_id, True)  # every refresh: clients expire theirs too

    def stop(self, topic: str, conversation_id: str, user_id: str) -> None:
        """End typing if it was on (stop push, leave, disconnect)."""
        handle = self._timers.pop((topic, user_id), None)
        if handle is not None:
            handle.cancel()
            self._announce(topic, conversation_id, user_id, False)

    def _expire(self, topic: str, conversation_id: str, user_id: str) -> None:
        if self._timers.pop((topic, user_id), None) is not None:
            self._announce(topic, conversation_id, user_id, False)

    def is_typing(self, topic: str, user_id: str) -> bool:
        return (topic, user_id) in self._timers
