"""Events consumed from sibling services (integration.md, "Events consumed"; the contract is in
docs/events.md): `user.blocked`, `user.unblocked`, `user.deleted`, `group.updated`.

`apply` runs one event in one transaction with its idempotency record: a redelivered event id
(per CloudEvents source) changes nothing. A type nobody here handles is acknowledged and logged
(siblings may publish more than this service listens to). An event whose data does not fit its
type raises `MalformedEvent`: the push endpoint answers 400 and Pub/Sub, after its retries,
sends it to the dead-letter topic.

A new type: a data model, a function, one line in `HANDLERS`, a section in docs/events.md.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from shared.app import conversations as conversation_uc
from shared.app import members as member_uc
from shared.app.services import Services, Unit
from shared.domain.errors import DomainError
from shared.domain.ids import parse_uuid
from shared.domain.models import Actor, Event
from shared.ports.bus import PublishedEvent
from shared.storage import conversations as store
from shared.storage import notifications as inbound

log = logging.getLogger(__name__)

TYPE_PREFIX = "whispr."  # `whispr.user.blocked`; the bare `user.blocked` is accepted too


class MalformedEvent(DomainError):
    """400: the event cannot be read (no id or type, or data that does not fit its type)."""

    code = "malformed_event"


@dataclass(frozen=True)
class SiblingEvent:
    id: str
    source: str
    type: str
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return self.type.removeprefix(TYPE_PREFIX)


Outcome = Literal["applied", "duplicate", "ignored"]


class _Data(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)


def _uuid(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError("not a UUID string")
    return parse_uuid(value, "id", invalid=ValueError)


class BlockChanged(_Data):
    user_id: str  # who blocks (or unblocks)
    blocked_user_id: str

    _ids = field_validator("user_id", "blocked_user_id", mode="before")(_uuid)


class UserDeleted(_Data):
    user_id: str

    _ids = field_validator("user_id", mode="before")(_uuid)


class GroupUpdated(_Data):
    conversation_id: str  # the group's conversation here (NotifyGroupCreation made it)
    name: str | None = Field(default=None, min_length=1)
    member_ids: list[str] | None = None  # the whole membership, when it changed
    actor_id: str | None = None  # who changed it, for the system messages (default: the owner)

    _id = field_validator("conversation_id", mode="before")(_uuid)
    _actor = field_validator("actor_id", mode="before")(lambda v: None if v is None else _uuid(v))

    @field_validator("member_ids", mode="before")
    @classmethod
    def _members(cls, value: object) -> list[str] | None:
        if value is None:
            return None
        if not isinstance(value, list):
            raise ValueError("a list of user ids")
        return list(dict.fromkeys(_uuid(v) for v in value))


def _read(model: type[_Data], event: SiblingEvent) -> Any:
    try:
        return model.model_validate(event.data)
    except ValidationError as exc:
        fields = {".".join(str(p) for p in e["loc"]) or "data": [e["msg"]] for e in exc.errors()}
        raise MalformedEvent(f"{event.type}: its data does not fit the type", details=fields) from None


# --- handlers -------------------------------------------------------------------------------


def _blocks_changed(svc: Services, unit: Unit, event: SiblingEvent) -> None:
    """Forget what the caches know of this pair: here at once, in every relay through the bus
    (`blocks_changed`), so the next send or new direct conversation asks user-service again."""
    data: BlockChanged = _read(BlockChanged, event)
    svc.users.forget_blocks(data.user_id, data.blocked_user_id)
    svc.users.forget_blocks(data.blocked_user_id, data.user_id)
    unit.record(Event("blocks_changed", {"user_id": data.user_id, "other_user_id": data.blocked_user_id}, ()))


def _user_deleted(svc: Services, unit: Unit, event: SiblingEvent) -> None:
    """Out of every conversation: groups get `member_removed` (reason `account_deleted`) and an
    owner if they lost their last one; direct conversations are closed for both (the other
    member keeps the history, nobody can send any more). Their messages stay, under their id,
    which user-service now resolves as a deleted account."""
    data: UserDeleted = _read(UserDeleted, event)
    svc.users.forget_blocks(data.user_id)
    unit.record(Event("blocks_changed", {"user_id": data.user_id, "other_user_id": None}, ()))
    gone = Actor(data.user_id)
    for conv, member in store.conversations_of_user(unit.conn, data.user_id, archived=None):
        member_uc.deactivate(unit, conv, member, gone, "member_removed", reason="account_deleted")
        if conv.type == "group":
            member_uc.hand_over_if_ownerless(unit, conv, gone)


def _group_updated(svc: Services, unit: Unit, event: SiblingEvent) -> None:
    """Name and members as user-service has them, with the usual system messages and events.
    A group this service does not know is logged and acknowledged."""
    data: GroupUpdated = _read(GroupUpdated, event)
    conv = store.get_conversation(unit.conn, data.conversation_id)
    if conv is None or conv.type != "group" or not conv.is_active:
        log.warning("group.updated %s: no active group conversation %s here; ignored", event.id, data.conversation_id)
        return
    members = store.list_members(unit.conn, conv.id)
    owner = next((m.user_id for m in members if m.role == "owner"), conv.created_by)
    actor = Actor(data.actor_id or owner)
    if data.name is not None:
        conversation_uc.rename_group(unit, svc.settings.limits, conv, actor, data.name)
    if data.member_ids is not None:
        wanted = set(data.member_ids)
        for member in members:
            if member.user_id not in wanted:
                member_uc.deactivate(unit, conv, member, actor, "member_removed")
        member_uc.admit(svc, unit, conv, actor, [u for u in data.member_ids if u not in {m.user_id for m in members}])
        member_uc.hand_over_if_ownerless(unit, conv, actor)


def follow_block_changes(svc: Services) -> Callable[[], None]:
    """Forget cached blocks when any instance hears of a change (`blocks_changed` on the bus);
    returns the function that stops it."""

    def heard(event: PublishedEvent) -> None:
        if event.name == "blocks_changed":
            user_id, other = event.payload.get("user_id"), event.payload.get("other_user_id")
            if isinstance(user_id, str):
                svc.users.forget_blocks(user_id, other if isinstance(other, str) else None)
                if isinstance(other, str):
                    svc.users.forget_blocks(other, user_id)

    return svc.bus.subscribe(heard)


HANDLERS: dict[str, Callable[[Services, Unit, SiblingEvent], None]] = {
    "user.blocked": _blocks_changed,
    "user.unblocked": _blocks_changed,
    "user.deleted": _user_deleted,
    "group.updated": _group_updated,
}


KEEP_RECORDS = timedelta(days=8)  # longer than Pub/Sub keeps an undelivered message (7 days)


def forget_old_records(svc: Services) -> int:
    """Drop idempotency records no redelivery can need any more (the periodic sweep)."""
    with svc.db.transaction() as conn:
        return inbound.forget_inbound_before(conn, svc.clock() - KEEP_RECORDS)


def apply(svc: Services, event: SiblingEvent) -> Outcome:
    """Apply one consumed event once (see the module's docstring)."""
    handler = HANDLERS.get(event.kind)
    if handler is None:
        log.info(
            "sibling event %s of type %r from %s: not handled here; acknowledged", event.id, event.type, event.source
        )
        return "ignored"
    try:
        with svc.unit() as unit:
            if not inbound.first_delivery(unit.conn, event.source, event.id, event.type, unit.now):
                log.info("sibling event %s (%s) delivered again; already applied", event.id, event.type)
                return "duplicate"
            handler(svc, unit, event)
    except MalformedEvent:
        raise
    except DomainError as exc:  # what the rules refuse (a full group, a kicked member...): for a person to look at
        raise MalformedEvent(f"{event.type}: {exc.message}", details=exc.details) from None
    log.info("sibling event %s (%s) applied", event.id, event.type)
    return "applied"
