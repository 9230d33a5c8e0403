"""REST handlers for /conversations/:id/sanctions: mute, restrict or kick a member for a time."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field, StrictInt, StrictStr, field_validator

from shared.app import moderation as uc
from shared.app.commands import Body
from shared.domain.ids import parse_uuid
from shared.domain.moderation import SanctionKind
from shared.http.params import parse_bool
from shared.http.routing import Call, Reply


class CreateSanction(Body):
    """`kind`: mute (cannot send), restrict (cannot send, react, pin or attach) or kick
    (removed; cannot be added back until it expires). For `duration_seconds`, or until
    `expires_at` (one of the two)."""

    user_id: StrictStr
    kind: SanctionKind
    duration_seconds: StrictInt | None = None
    expires_at: datetime | None = None
    reason: StrictStr | None = Field(default=None, max_length=10_000)

    @field_validator("user_id")
    @classmethod
    def _user(cls, value: str) -> str:
        return parse_uuid(value, "user_id", invalid=ValueError)

    @field_validator("expires_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("must carry a time zone (RFC 3339)")
        return value


def list_sanctions(call: Call) -> Reply:
    """Sanctions in force (all of them with `include_inactive=true`); members see their own."""
    include = parse_bool(call.query.get("include_inactive"), "include_inactive") or False
    views = uc.list_sanctions(call.services, call.actor, call.path["conversation_id"], include_inactive=include)
    return Reply(views, meta={"count": len(views)})


def create_sanction(call: Call) -> Reply:
    body: CreateSanction = call.body
    view = uc.create_sanction(
        call.services,
        call.actor,
        call.path["conversation_id"],
        user_id=body.user_id,
        kind=body.kind,
        duration_seconds=body.duration_seconds,
        expires_at=body.expires_at,
        reason=body.reason,
    )
    return Reply(view, status=201)


def revoke_sanction(call: Call) -> Reply:
    view = uc.revoke_sanction(call.services, call.actor, call.path["conversation_id"], call.path["sanction_id"])
    return Reply(view)
