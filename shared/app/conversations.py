"""Use cases on conversations: create, list, read, update, delete, per-user settings."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from shared.app.access import require_member, topic_conversation, topic_user
from shared.app.services import Services, Unit
from shared.app.system_messages import post_system_message
from shared.app.views import conversation_view, message_view, settings_view
from shared.config import Limits
from shared.domain import rules
from shared.domain.errors import Forbidden, Invalid, RateLimited
from shared.domain.models import Actor, Conversation, Event, Member
from shared.storage import conversations as store
from shared.storage import messages as msg_store


@dataclass(frozen=True)
class Created:
    view: dict[str, Any]
    created: bool


def _new_member(conversation_id: str, user_id: str, role: str, now: datetime) -> Member:
    return Member(conversation_id=conversation_id, user_id=user_id, role=role, joined_at=now)  # type: ignore[arg-type]


def render_one(
    conn: Connection, conv: Conversation, me: Member, now: datetime, *, detail: bool = True
) -> dict[str, Any]:
    return render_many(conn, [(conv, me)], me.user_id, now, detail=detail)[0]


def render_many(
    conn: Connection, items: list[tuple[Conversation, Member]], user_id: str, now: datetime, *, detail: bool = False
) -> list[dict[str, Any]]:
    """Conversation objects for a listing: three queries whatever the number of conversations."""
    ids = [conv.id for conv, _ in items]
    members = store.members_of(conn, ids)
    lasts = msg_store.last_messages(conn, ids, user_id, now)
    unread = store.unread_counts(conn, user_id, ids)
    out = []
    for conv, me in items:
        last = lasts.get(conv.id)
        out.append(
            conversation_view(
                conv,
                me,
                members[conv.id],
                last_message=message_view(last) if last else None,
                unread_count=unread.get(conv.id, 0),
                now=now,
                detail=detail,
            )
        )
    return out


def _announce(unit: Unit, name: str, conv: Conversation, user_ids: list[str], payload: dict[str, Any]) -> None:
    topics = (topic_conversation(conv.id), *[topic_user(u) for u in user_ids])
    unit.record(Event(name, payload, topics, conversation_id=conv.id))


def create_direct(svc: Services, actor: Actor, other_user_id: str) -> Created:
    if other_user_id == actor.user_id:
        raise Invalid.field("other_user_id", "you cannot start a direct conversation with yourself")
    if svc.users.is_blocked(actor.user_id, other_user_id):
        raise Forbidden("one of you blocks the other", code="user_blocked")
    key = rules.direct_key(actor.user_id, other_user_id)
    with svc.unit() as unit:
        existing = store.find_direct(unit.conn, key)
        if existing is not None:
            me = store.get_member(unit.conn, existing.id, actor.user_id)
            assert me is not None
            if not existing.is_active:
                store.update_conversation(unit.conn, existing.id, is_active=True, updated_at=unit.now)
                existing.is_active = True
            for user_id in (actor.user_id, other_user_id):
                store.update_member(unit.conn, existing.id, user_id, unit.now, is_active=True, left_at=None)
            me.is_active = True
            return Created(render_one(unit.conn, existing, me, unit.now), created=False)
        conv = Conversation(
            id=str(uuid.uuid4()),
            type="direct",
            name=None,
            metadata={},
            created_by=actor.user_id,
            created_at=unit.now,
            updated_at=unit.now,
            is_active=True,
            last_seq=0,
        )
        store.insert_conversation(unit.conn, conv, key)
        for user_id in (actor.user_id, other_user_id):
            store.insert_member(unit.conn, _new_member(conv.id, user_id, "member", unit.now), unit.now)
        view = render_one(unit.conn, conv, _new_member(conv.id, actor.user_id, "member", unit.now), unit.now)
        _announce(unit, "conversation_created", conv, [actor.user_id, other_user_id], {"conversation": view})
        return Created(view, created=True)


def create_group(
    svc: Services, actor: Actor, name: str | None, user_ids: list[str], metadata: dict[str, Any]
) -> Created:
    limits = svc.settings.limits
    clean_name = rules.check_group_name(name, limits)
    rules.check_metadata(metadata, limits)
    others = list(dict.fromkeys(u for u in user_ids if u != actor.user_id))
    if not others:
        raise Invalid.field("user_ids", "a group needs at least one other member")
    if len(others) + 1 > limits.max_group_members:
        raise Invalid.field("user_ids", f"a group has at most {limits.max_group_members} members")
    wait = svc.limiter.acquire(
        f"group_create:{actor.user_id}",
        per_second=limits.group_creations_per_day / 86400,
        burst=limits.group_creations_per_day,
    )
    if wait:
        raise RateLimited("too many groups created today", retry_after=wait)
    with svc.unit() as unit:
        roles = {actor.user_id: "owner", **{user_id: "member" for user_id in others}}
        view = insert_group(unit, str(uuid.uuid4()), clean_name, metadata, actor.user_id, roles)
        return Created(view, created=True)


def insert_group(
    unit: Unit, conversation_id: str, name: str, metadata: dict[str, Any], created_by: str, roles: dict[str, str]
) -> dict[str, Any]:
    """Store a group with these members (user id -> role; `created_by` first, who sees the view)
    and announce `conversation_created` to them. Names and limits are already checked."""
    conv = Conversation(
        id=conversation_id,
        type="group",
        name=name,
        metadata={**metadata, "name": name},
        created_by=created_by,
        created_at=unit.now,
        updated_at=unit.now,
        is_active=True,
        last_seq=0,
    )
    store.insert_conversation(unit.conn, conv, None)
    members = [_new_member(conv.id, user_id, role, unit.now) for user_id, role in roles.items()]
    for member in members:
        store.insert_member(unit.conn, member, unit.now)
    viewer = next((m for m in members if m.user_id == created_by), members[0])
    view = render_one(unit.conn, conv, viewer, unit.now)
    _announce(unit, "conversation_created", conv, list(roles), {"conversation": view})
    return view


def list_conversations(svc: Services, actor: Actor, *, archived: bool | None) -> list[dict[str, Any]]:
    with svc.db.transaction() as conn:
        now = svc.clock()
        items = store.conversations_of_user(conn, actor.user_id, archived=archived)
        return render_many(conn, items, actor.user_id, now)


def get_conversation(svc: Services, actor: Actor, conversation_id: str) -> dict[str, Any]:
    with svc.db.transaction() as conn:
        conv, me = require_member(conn, conversation_id, actor.user_id)
        return render_one(conn, conv, me, svc.clock())


def update_conversation(
    svc: Services, actor: Actor, conversation_id: str, *, name: str | None, metadata: dict[str, Any] | None
) -> dict[str, Any]:
    with svc.unit() as unit:
        conv, me = require_member(unit.conn, conversation_id, actor.user_id)
        if conv.type == "group":
            rules.require_role(me, "admin", "change the group")
        return apply_update(unit, svc.settings.limits, conv, actor, me, name=name, metadata=metadata)


def apply_update(
    unit: Unit,
    limits: Limits,
    conv: Conversation,
    actor: Actor,
    viewer: Member,
    *,
    name: str | None,
    metadata: dict[str, Any] | None,
) -> dict[str, Any]:
    """Merge `metadata` (and a new `name`) into the conversation, announce `conversation_updated`
    (and a rename as a system message); the view rendered for `viewer`. The caller checked who
    may change it."""
    values: dict[str, Any] = {"updated_at": unit.now}
    # the caller's part is bounded; what is stored already was when it was written (or is
    # read back cut, if written before the bound existed)
    rules.check_json_depth(metadata or {}, limits)
    merged = {**conv.metadata, **(metadata or {})}
    if name is not None or (metadata and "name" in metadata and conv.type == "group"):
        if conv.type != "group":
            raise Invalid.field("name", "only groups have a name")
        new_name = rules.check_group_name(name if name is not None else str(merged.get("name")), limits)
        values["name"] = new_name
        merged["name"] = new_name  # the client shows metadata.name: keep both in step
    rules.check_metadata_size(merged, limits)
    values["metadata"] = merged
    store.update_conversation(unit.conn, conv.id, **values)
    renamed = "name" in values and values["name"] != conv.name
    conv.metadata, conv.name, conv.updated_at = merged, values.get("name", conv.name), unit.now
    if renamed:
        post_system_message(unit, conv, actor, "conversation_renamed", {"name": conv.name})
    view = render_one(unit.conn, conv, viewer, unit.now)
    members = [m.user_id for m in store.list_members(unit.conn, conv.id)]
    _announce(unit, "conversation_updated", conv, members, {"conversation": view})
    return view


def rename_group(unit: Unit, limits: Limits, conv: Conversation, actor: Actor, name: str) -> bool:
    """Rename group `conv` as told by a sibling (user-service's `group.updated`); False if it
    already had that name. The announced view is its owner's (any member's if none)."""
    if rules.check_group_name(name, limits) == conv.name:
        return False
    members = store.list_members(unit.conn, conv.id)
    if not members:
        return False
    viewer = min(members, key=lambda m: -rules.ROLE_RANK[m.role])
    apply_update(unit, limits, conv, actor, viewer, name=name, metadata=None)
    return True


def delete_conversation(svc: Services, actor: Actor, conversation_id: str) -> None:
    with svc.unit() as unit:
        conv, me = require_member(unit.conn, conversation_id, actor.user_id)
        if conv.type == "group":
            rules.require_role(me, "admin", "delete the group")
        members = [m.user_id for m in store.list_members(unit.conn, conv.id)]
        store.update_conversation(unit.conn, conv.id, is_active=False, updated_at=unit.now)
        _announce(unit, "conversation_deleted", conv, members, {"conversation_id": conv.id})


SETTINGS_FIELDS = ("notifications_enabled", "muted_until", "show_read_receipts", "show_typing", "custom_name")


def get_settings(svc: Services, actor: Actor, conversation_id: str) -> dict[str, Any]:
    with svc.db.transaction() as conn:
        _, me = require_member(conn, conversation_id, actor.user_id)
        return settings_view(me, svc.clock())


def update_settings(svc: Services, actor: Actor, conversation_id: str, changes: dict[str, Any]) -> dict[str, Any]:
    custom = changes.get("custom_name")
    if custom is not None and len(custom) > svc.settings.limits.max_custom_name_chars:
        raise Invalid.field("custom_name", f"at most {svc.settings.limits.max_custom_name_chars} characters")
    with svc.unit() as unit:
        conv, me = require_member(unit.conn, conversation_id, actor.user_id)
        values = {k: v for k, v in changes.items() if k in SETTINGS_FIELDS}
        if values:
            store.update_member(unit.conn, conv.id, actor.user_id, unit.now, **values)
        for key, value in values.items():
            setattr(me, key, value)
        view = settings_view(me, unit.now)
        unit.record(
            Event(
                "conversation_settings_updated",
                {"conversation_id": conv.id, "settings": view},
                (topic_user(actor.user_id),),
                conversation_id=conv.id,
            )
        )
        return view


def set_pinned(svc: Services, actor: Actor, conversation_id: str, pinned: bool) -> dict[str, Any]:
    with svc.unit() as unit:
        conv, me = require_member(unit.conn, conversation_id, actor.user_id)
        if me.is_pinned != pinned:
            if pinned and store.count_pinned(unit.conn, actor.user_id) >= svc.settings.limits.max_pinned_conversations:
                raise Invalid(
                    f"at most {svc.settings.limits.max_pinned_conversations} conversations can be pinned",
                    code="pin_limit_reached",
                )
            values: dict[str, Any] = {"is_pinned": pinned, "pinned_at": unit.now if pinned else None}
            if pinned:
                values["is_archived"] = False
            store.update_member(unit.conn, conv.id, actor.user_id, unit.now, **values)
            me.is_pinned, me.is_archived = pinned, me.is_archived and not pinned
            unit.record(
                Event(
                    "conversation_pinned",
                    {"conversation_id": conv.id, "pinned": pinned},
                    (topic_user(actor.user_id),),
                    conversation_id=conv.id,
                )
            )
        return {"conversation_id": conv.id, "is_pinned": me.is_pinned, "is_archived": me.is_archived}


def set_archived(svc: Services, actor: Actor, conversation_id: str, archived: bool) -> dict[str, Any]:
    with svc.unit() as unit:
        conv, me = require_member(unit.conn, conversation_id, actor.user_id)
        if me.is_archived != archived:
            values: dict[str, Any] = {"is_archived": archived}
            if archived:  # archiving unpins
                values.update(is_pinned=False, pinned_at=None)
            store.update_member(unit.conn, conv.id, actor.user_id, unit.now, **values)
            me.is_archived, me.is_pinned = archived, me.is_pinned and not archived
            unit.record(
                Event(
                    "conversation_archived",
                    {"conversation_id": conv.id, "archived": archived},
                    (topic_user(actor.user_id),),
                    conversation_id=conv.id,
                )
            )
        return {"conversation_id": conv.id, "is_archived": me.is_archived, "is_pinned": me.is_pinned}
