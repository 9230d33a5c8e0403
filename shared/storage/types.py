"""Column types that behave the same on PostgreSQL and SQLite."""

from __future__ import annotations

import os
from collections import deque
from datetime import datetime, timezone
from typing import Any

import orjson
from sqlalchemy import DateTime, LargeBinary, Text
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

from shared.domain.nesting import loaded_within


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes in, aware UTC datetimes out, on every backend."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to UTCDateTime")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


class JSONText(TypeDecorator[Any]):
    """JSON stored as text. Not JSONB: jsonb refuses `\\u0000`, and content must round-trip.
    A value nested too deep to encode again (stored before writes were bounded) reads back cut
    at `MAX_STORED_DEPTH` (shared.domain.nesting), so that no read fails on it."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        return None if value is None else orjson.dumps(value).decode()

    def process_result_value(self, value: str | None, dialect: Dialect) -> Any:
        return None if value is None else loaded_within(value, orjson.loads(value))


class UTF8Bytes(TypeDecorator[str]):
    """A string kept as its UTF-8 bytes, so it is returned byte for byte (NUL included)."""

    impl = LargeBinary
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> bytes | None:
        return None if value is None else value.encode("utf-8")

    def process_result_value(self, value: bytes | None, dialect: Dialect) -> str | None:
        return None if value is None else bytes(value).decode("utf-8")


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
