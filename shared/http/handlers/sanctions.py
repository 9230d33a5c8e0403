"""REST handlers for /conversations/:id/sanctions: mute, restrict or kick a member, for a time or until lifted."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field, StrictInt, StrictStr, field_validator

from shared.app import moderation as uc
from shared.app.commands import Body
from shared.domain.errors import Invalid
from shared.domain.ids import parse_uuid
from shared.domain.moderation import SANCTION_TYPES, SanctionKind, SanctionType
from shared.http.params import parse_bool
from shared.http.routing import Call, Reply


class CreateSanction(Body):
    """`type`: mute (cannot send), shadow_restrict (restrict: cannot send, react, pin or attach)
    or kick (removed; cannot be added back while in force). Until `expires_at`, for
    `duration_seconds`, or, with neither, until lifted. `kind` is the older name of `type`."""

    user_id: StrictStr
    type: SanctionType | None = None
    reason: StrictStr | None = Field(default=None, max_length=10_000)
    expires_at: datetime | None = None
    duration_seconds: StrictInt | None = None
    kind: SanctionKind | None = Field(default=None, description="older name of type (mute, restrict, kick)")

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


def _kind(body: CreateSanction) -> str:
    if body.type is None and body.kind is None:
        raise Invalid.field("type", "is required: mute, kick or shadow_restrict")
    kinds = {SANCTION_TYPES[t] for t in (body.type, body.kind) if t is not None}
    if len(kinds) > 1:
        raise Invalid.field("type", "differs from kind, its other name: give one of them")
    return kinds.pop()


def create_sanction(call: Call) -> Reply:
    body: CreateSanction = call.body
    view = uc.create_sanction(
        call.services,
        call.actor,
        call.path["conversation_id"],
        user_id=body.user_id,
        kind=_kind(body),
        duration_seconds=body.duration_seconds,
        expires_at=body.expires_at,
        reason=body.reason,
    )
    return Reply(view, status=201)


def revoke_sanction(call: Call) -> Reply:
    view = uc.revoke_sanction(call.services, call.actor, call.path["conversation_id"], call.path["sanction_id"])
    return Reply(view)
