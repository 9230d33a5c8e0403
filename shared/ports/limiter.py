"""Rate limiting port: token buckets keyed by (action, subject)."""

from __future__ import annotations

from typing import Protocol


class RateLimiter(Protocol):
    def acquire(self, key: str, *, per_second: float, burst: int) -> float:
        """Take one token; return 0 if allowed, else the seconds to wait before retrying."""
        ...
