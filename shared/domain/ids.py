"""Ids as the contract writes them: lowercase canonical UUID strings; anything else is a 400."""

from __future__ import annotations

import uuid

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
