"""Parsing of path and query values: a bad id or number is a 400, never a 500."""

from __future__ import annotations

from datetime import datetime, timezone

from shared.domain.errors import BadRequest, Invalid

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def parse_int(raw: str | None, name: str, *, minimum: int | None = None) -> int | None:
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(
            f"{name} must be an integer", code="invalid_number", details={name: ["not an integer"]}
        ) from None
    if not INT64_MIN <= value <= INT64_MAX:  # the store's integers are 64-bit: no larger number means anything
        raise BadRequest(f"{name} is out of range", code="invalid_number", details={name: ["out of range"]})
    if minimum is not None and value < minimum:
        raise Invalid.field(name, f"must be at least {minimum}")
    return value


def parse_bool(raw: str | None, name: str) -> bool | None:
    if raw is None or raw == "":
        return None
    lowered = raw.lower()
    if lowered in {"true", "1", "yes"}:
        return True
    if lowered in {"false", "0", "no"}:
        return False
    raise BadRequest(f"{name} must be true or false", code="invalid_boolean", details={name: ["not a boolean"]})


def parse_time(raw: str | None, name: str) -> datetime | None:
    if raw is None or raw == "":
        return None
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(
            f"{name} must be an RFC 3339 time", code="invalid_time", details={name: ["not a time"]}
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
