"""Use cases on membership: list, add, remove, change role, leave."""

from __future__ import annotations

from typing import Any

from shared.app import enforcement
from shared.app.access import require_member, topic_conversation, topic_user
from shared.app.services import Services, Unit
from shared.app.system_messages import post_system_message
from shared.app.views import member_view
from shared.domain import rules
from shared.domain.errors import Invalid, NotFound
from shared.domain.models import Actor, Conversation, Event, Member, Role
from shared.storage import conversations as store


def list_members(svc: Services, actor: Actor, conversation_id: str) -> list[dict[str, Any]]:
    with svc.db.transaction() as conn:
        require_member(conn, conversation_id, actor.user_id)
        return [member_view(m) for m in store.list_members(conn, conversation_id)]


def _member_event(unit: Unit, name: str, conv: Conversation, member: Member, audience: list[str]) -> None:
    topics = (topic_conversation(conv.id), *[topic_user(u) for u in dict.fromkeys([*audience, member.user_id])])
    payload = {"conversation_id": conv.id, "user_id": member.user_id, "member": member_view(member)}
    # a removed member is no longer a member: /sync must still tell them they are out
    targets = (member.user_id,) if not member.is_active else ()
    unit.record(Event(name, payload, topics, conversation_id=conv.id, sync_targets=targets))


def add_members(svc: Services, actor: Actor, conversation_id: str, user_ids: list[str]) -> list[dict[str, Any]]:
    if not user_ids:
        raise Invalid.field("user_ids", "give at least one user id")
    with svc.unit() as unit:
        conv, me = require_member(unit.conn, conversation_id, actor.user_id)
        if conv.type != "group":
            raise Invalid("a direct conversation has exactly two members", code="not_a_group")
        rules.require_role(me, "admin", "add members")
        admit(svc, unit, conv, actor, user_ids)
        return [member_view(m) for m in store.list_members(unit.conn, conv.id)]


def admit(
    svc: Services, unit: Unit, conv: Conversation, actor: Actor, user_ids: list[str], role: Role = "member"
) -> int:
    """Make these users active members of the group with `role` (those already in are left as
    they are), each announced by a system message and `member_added`; how many were added. The
    caller checked who may add them."""
    current = store.list_members(unit.conn, conv.id)
    active = {m.user_id for m in current}
    new_ids = [u for u in dict.fromkeys(user_ids) if u not in active]
    enforcement.check_can_join(unit.conn, conv.id, new_ids, unit.now)  # kicked: 403 sanctioned
    if len(active) + len(new_ids) > svc.settings.limits.max_group_members:
        raise Invalid(f"a group has at most {svc.settings.limits.max_group_members} members", code="group_full")
    added = []
    for user_id in new_ids:
        existing = store.get_member(unit.conn, conv.id, user_id)
        if existing is None:
            member = Member(conversation_id=conv.id, user_id=user_id, role=role, joined_at=unit.now)
            store.insert_member(unit.conn, member, unit.now)
        else:  # a former member comes back with `role` (a plain member over REST), from now on
            store.update_member(
                unit.conn,
                conv.id,
                user_id,
                unit.now,
                is_active=True,
                left_at=None,
                role=role,
                joined_at=unit.now,
            )
            member = Member(conversation_id=conv.id, user_id=user_id, role=role, joined_at=unit.now)
        added.append(member)
    audience = [*active, *new_ids]
    for member in added:
        post_system_message(unit, conv, actor, "member_added", {"user_id": member.user_id})
        _member_event(unit, "member_added", conv, member, audience)
    return len(added)


def deactivate(unit: Unit, conv: Conversation, member: Member, actor: Actor, action: str, **details: Any) -> None:
    """`member` leaves (or is removed from) the conversation, announced (the system message
    `action` with `details`, in groups); the caller checked who may."""
    audience = [m.user_id for m in store.list_members(unit.conn, conv.id)]
    store.update_member(
        unit.conn, conv.id, member.user_id, unit.now, is_active=False, left_at=unit.now, is_pinned=False, pinned_at=None
    )
    member.is_active = False
    if conv.type == "group":
        post_system_message(unit, conv, actor, action, {"user_id": member.user_id, **details})
    _member_event(unit, "member_removed", conv, member, audience)


def hand_over_if_ownerless(unit: Unit, conv: Conversation, actor: Actor) -> None:
    """A group left without an owner (its last one's account was deleted, or user-service
    dropped them) gets one: the highest-ranked remaining member, the longest-standing first."""
    remaining = store.list_members(unit.conn, conv.id)
    if not remaining or any(m.role == "owner" for m in remaining):
        return
    heir = min(remaining, key=lambda m: (-rules.ROLE_RANK[m.role], m.joined_at))
    store.update_member(unit.conn, conv.id, heir.user_id, unit.now, role="owner")
    heir.role = "owner"
    post_system_message(unit, conv, actor, "role_changed", {"user_id": heir.user_id, "role": "owner"})
    _member_event(unit, "member_role_changed", conv, heir, [m.user_id for m in remaining])


def remove_member(svc: Services, actor: Actor, conversation_id: str, user_id: str) -> None:
    with svc.unit() as unit:
        conv, me = require_member(unit.conn, conversation_id, actor.user_id)
        if user_id == actor.user_id:
            _leave(unit, conv, me, actor)
            return
        if conv.type != "group":
            raise Invalid("a direct conversation has exactly two members", code="not_a_group")
        target = store.get_member(unit.conn, conv.id, user_id)
        if target is None or not target.is_active:
            raise NotFound("no such member", code="member_not_found")
        rules.check_removal(me, target)
        deactivate(unit, conv, target, actor, "member_removed")


def _leave(unit: Unit, conv: Conversation, me: Member, actor: Actor) -> None:
    members = store.list_members(unit.conn, conv.id)
    owners = sum(1 for m in members if m.role == "owner")
    rules.check_leave(me, conv, owners, len(members))
    deactivate(unit, conv, me, actor, "member_left")


def leave(svc: Services, actor: Actor, conversation_id: str) -> None:
    with svc.unit() as unit:
        conv, me = require_member(unit.conn, conversation_id, actor.user_id)
        _leave(unit, conv, me, actor)


def change_role(svc: Services, actor: Actor, conversation_id: str, user_id: str, role: str) -> dict[str, Any]:
    with svc.unit() as unit:
        conv, me = require_member(unit.conn, conversation_id, actor.user_id)
        if conv.type != "group":
            raise Invalid("roles exist only in groups", code="not_a_group")
        target = store.get_member(unit.conn, conv.id, user_id)
        if target is None or not target.is_active:
            raise NotFound("no such member", code="member_not_found")
        members = store.list_members(unit.conn, conv.id)
        owners = sum(1 for m in members if m.role == "owner")
        rules.check_role_change(me, target, role, owners)
        if role != target.role:
            store.update_member(unit.conn, conv.id, user_id, unit.now, role=role)
            target.role = role  # type: ignore[assignment]
            post_system_message(unit, conv, actor, "role_changed", {"user_id": user_id, "role": role})
            _member_event(unit, "member_role_changed", conv, target, [m.user_id for m in members])
        return member_view(target)
