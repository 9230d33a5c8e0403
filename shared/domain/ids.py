"""Ids as the contract writes them: lowercase canonical UUID strings; anything else is a 400."""

from __future__ import annotations

import os
import uuid
from collections import deque

from shared.domain.errors import BadRequest


def parse_uuid(value: str, name: str, *, invalid: type[Exception] = BadRequest) -> str:
    """A lowercase canonical UUID string."""
    try:
        return str(uuid.UUID(value))
    except (ValueError, AttributeError, TypeError):
        if invalid is BadRequest:
            raise BadRequest(
                f"{name} is not a valid UUID", code="invalid_id", details={name: ["not a valid UUID"]}
            ) from None
        raise invalid(f"{name}: not a valid UUID") from None


def random_uuids(count: int) -> list[str]:
    """`count` random (version 4) UUIDs as strings, like `str(uuid.uuid4())` each, from one
    `os.urandom` call: the group commit needs one per message and one per event, and
    `uuid.uuid4()` costs a system call and a `UUID` object apiece."""
    raw = bytearray(os.urandom(16 * count))
    for start in range(0, 16 * count, 16):
        raw[start + 6] = raw[start + 6] & 0x0F | 0x40  # version 4
        raw[start + 8] = raw[start + 8] & 0x3F | 0x80  # RFC 4122 variant
    digits = raw.hex()
    out = []
    for start in range(0, 32 * count, 32):
        h = digits[start : start + 32]
        out.append(f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}")
    return out


_UUID_POOL_SIZE = 256
_uuid_pool: deque[str] = deque()
os.register_at_fork(after_in_child=_uuid_pool.clear)  # a worker process never reuses its parent's


def new_uuid() -> str:
    """`str(uuid.uuid4())`, drawn from a pool filled `_UUID_POOL_SIZE` at a time (one system
    call each). Thread-safe: `deque.popleft` and `extend` are atomic; two threads refilling at
    once only put more in the pool."""
    try:
        return _uuid_pool.popleft()
    except IndexError:
        _uuid_pool.extend(random_uuids(_UUID_POOL_SIZE))
        return _uuid_pool.popleft()
