"""Moderation use cases (rules.md: Abuse): user reports of messages and users, the moderators'
queue and resolution, and conversation sanctions (mute, restrict, kick) with expiry.

Who moderates: *global moderators* (token claims, or WHISPR_MODERATOR_IDS; see
`shared.domain.moderation.is_global_moderator`) see the queue and stats, resolve reports and
sanction anyone in any conversation; in a conversation, its owners, admins and moderators
sanction the members ranked below them.

Reports: the reporter must see the message they report. One report per reporter and message
per 24 h (per reporter and user for reports on a user without a message): a repeat within the
cooldown is a 409 `already_reported` (the report exists: this is a conflict with it, not a
matter of pace), with `details.report_id` and `details.retry_after`. Independently, at most 20
reports per reporter per rolling 24 h: 429 `rate_limited` with Retry-After.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection

from shared.app.access import require_conversation, require_member, topic_conversation, topic_user
from shared.app.members import deactivate
from shared.app.services import Services, Unit
from shared.app.views import message_view, timestamp
from shared.app.visibility import require_visible_message
from shared.domain import moderation as rules
from shared.domain.errors import Conflict, Forbidden, Invalid, NotFound, RateLimited
from shared.domain.models import Actor, Conversation, Event
from shared.domain.rules import ROLE_RANK
from shared.storage import conversations as conv_store
from shared.storage import messages as msg_store
from shared.storage import moderation as store
from shared.storage import search as search_index

DAY = timedelta(days=1)


def is_moderator(svc: Services, actor: Actor) -> bool:
    return rules.is_global_moderator(actor.user_id, actor.claims, svc.settings.moderators)


def require_moderator(svc: Services, actor: Actor) -> None:
    if not is_moderator(svc, actor):
        raise Forbidden("only moderators can do this", code="not_a_moderator")


# views


def resolution_view(report: rules.Report, *, for_moderator: bool) -> dict[str, Any] | None:
    """The Whispr client's `resolution`: null while open, else what was decided and when; who
    decided and their notes are for moderators only (null for the reporter)."""
    if report.resolved_at is None:
        return None
    return {
        "action": "dismiss" if report.resolution == "dismissed" else report.action,
        "resolved_by": report.resolved_by if for_moderator else None,
        "resolved_at": timestamp(report.resolved_at),
        "notes": report.note if for_moderator else None,
    }


def report_view(report: rules.Report, *, for_moderator: bool) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": report.id,
        "reporter_id": report.reporter_id,
        "message_id": report.message_id,
        "reported_user_id": report.reported_user_id,
        "conversation_id": report.conversation_id,
        "category": report.category,
        "description": report.reason,
        "reason": report.reason,  # the older name of description
        "status": report.status,
        "resolution": resolution_view(report, for_moderator=for_moderator),
        "auto_escalated": False,  # nothing escalates reports by itself here
        "created_at": timestamp(report.created_at),
        "updated_at": timestamp(report.resolved_at or report.created_at),
        "resolved_at": timestamp(report.resolved_at),
    }
    if for_moderator:  # who resolved it, how, and the evidence are for moderators only
        view.update(
            action=report.action,
            note=report.note,
            sanction_id=report.sanction_id,
            resolved_by=report.resolved_by,
            evidence=report.evidence,
        )
    return view


def sanction_view(sanction: rules.Sanction, now: datetime) -> dict[str, Any]:
    in_force = sanction.in_force(now)
    return {
        "id": sanction.id,
        "conversation_id": sanction.conversation_id,
        "user_id": sanction.user_id,
        "type": rules.sanction_type(sanction.kind),
        "kind": sanction.kind,
        "reason": sanction.reason,
        "created_by": sanction.created_by,
        "issued_by": sanction.created_by,  # the client's name of created_by
        "created_at": timestamp(sanction.created_at),
        "expires_at": timestamp(sanction.expires_at),
        "revoked_at": timestamp(sanction.revoked_at),
        "is_active": in_force,
        "active": in_force,  # the client's name of is_active
    }


# reports


def create_report(
    svc: Services,
    actor: Actor,
    *,
    category: str,
    message_id: str | None = None,
    user_id: str | None = None,
    conversation_id: str | None = None,
    reason: str | None = None,
) -> dict[str, Any]:
    limits = svc.settings.limits
    rules.check_category(category)
    clean_reason = rules.clean_text(reason, "reason", limits.max_report_reason_chars)
    if message_id is None and user_id is None:
        raise Invalid.field("message_id", "give message_id (a message) or reported_user_id (a user) to report")
    with svc.unit() as unit:
        conn, now = unit.conn, unit.now
        evidence = None
        if message_id is not None:
            message, conv, _ = require_visible_message(conn, message_id, actor.user_id, now)
            if message.message_type == "system" or message.is_deleted:
                raise Invalid.field(
                    "message_id", "system and deleted messages cannot be reported", code="not_reportable"
                )
            if user_id is not None and user_id != message.sender_id:
                raise Invalid.field("user_id", "is not the sender of that message")
            if conversation_id is not None and conversation_id != conv.id:
                raise Invalid.field("conversation_id", "is not the conversation of that message")
            user_id, conversation_id = message.sender_id, conv.id
            evidence = message_view(message)
        elif conversation_id is not None:
            require_member(conn, conversation_id, actor.user_id)
            if conv_store.get_member(conn, conversation_id, user_id or "") is None:
                raise Invalid.field("user_id", "is not a member of that conversation")
        if user_id == actor.user_id:
            raise Invalid.field(
                "user_id" if message_id is None else "message_id",
                "you cannot report yourself",
                code="cannot_report_self",
            )
        store.lock_reporter(conn, actor.user_id)
        cooldown = timedelta(seconds=limits.report_cooldown_seconds)
        earlier = store.latest_report_on(
            conn, actor.user_id, message_id=message_id, user_id=user_id, since=now - cooldown
        )
        if earlier is not None:
            wait = (earlier.created_at + cooldown - now).total_seconds()
            target = "message" if message_id is not None else "user"
            raise Conflict(
                f"you already reported this {target} in the last {limits.report_cooldown_seconds // 3600} hours",
                code="already_reported",
                details={"report_id": earlier.id, "retry_after": max(1, round(wait))},
            )
        made, oldest = store.reports_since(conn, actor.user_id, now - DAY)
        if made >= limits.reports_per_day and oldest is not None:
            raise RateLimited(
                f"at most {limits.reports_per_day} reports per day", retry_after=(oldest + DAY - now).total_seconds()
            )
        report = rules.Report(
            id=str(uuid.uuid4()),
            reporter_id=actor.user_id,
            message_id=message_id,
            reported_user_id=user_id,
            conversation_id=conversation_id,
            category=category,
            reason=clean_reason,
            status="pending",
            resolution=None,
            action=None,
            note=None,
            sanction_id=None,
            evidence=evidence,
            resolved_by=None,
            resolved_at=None,
            created_at=now,
        )
        store.insert_report(conn, report)
        # for the moderation tooling (domain events); no member's socket hears of it
        unit.record(
            Event(
                "moderation.report_created",
                {"report": report_view(report, for_moderator=True)},
                (),
                conversation_id=report.conversation_id,  # the ordering key of its CloudEvent
            )
        )
        return report_view(report, for_moderator=False)


@dataclass(frozen=True)
class ReportPage:
    reports: list[dict[str, Any]]
    has_more: bool


def list_my_reports(svc: Services, actor: Actor, *, limit: int, offset: int) -> ReportPage:
    moderator = is_moderator(svc, actor)
    with svc.db.transaction() as conn:
        found = store.reports_by(conn, actor.user_id, limit=limit + 1, offset=offset)
    return ReportPage([report_view(r, for_moderator=moderator) for r in found[:limit]], len(found) > limit)


def get_report(svc: Services, actor: Actor, report_id: str) -> dict[str, Any]:
    moderator = is_moderator(svc, actor)
    with svc.db.transaction() as conn:
        report = store.get_report(conn, report_id)
    if report is None or (report.reporter_id != actor.user_id and not moderator):
        raise NotFound("report not found", code="report_not_found")
    return report_view(report, for_moderator=moderator)


def report_queue(
    svc: Services, actor: Actor, *, limit: int, offset: int, status: str = "pending", category: str | None = None
) -> ReportPage:
    require_moderator(svc, actor)
    statuses = rules.queue_statuses(status)
    if category is not None:
        rules.check_category(category)
    with svc.db.transaction() as conn:
        found = store.queued_reports(conn, limit=limit + 1, offset=offset, statuses=statuses, category=category)
    return ReportPage([report_view(r, for_moderator=True) for r in found[:limit]], len(found) > limit)


def report_stats(svc: Services, actor: Actor) -> dict[str, Any]:
    """The Whispr client's dashboard (`pending`, `under_review`, `resolved_today` since 00:00
    UTC, `by_category`: the open reports per category that has some), then counts per status,
    per category of all reports, per resolution, and pending per category."""
    require_moderator(svc, actor)
    with svc.db.transaction() as conn:
        now = svc.clock()
        rows = store.report_counts(conn)
        today = store.resolved_since(conn, now.replace(hour=0, minute=0, second=0, microsecond=0))
    by_status = dict.fromkeys(rules.STATUSES, 0)
    total_by_category = dict.fromkeys(rules.CATEGORIES, 0)
    by_resolution = dict.fromkeys(rules.RESOLUTIONS, 0)
    pending_by_category = dict.fromkeys(rules.CATEGORIES, 0)
    open_by_category: dict[str, int] = {}
    for status, category, resolution, n in rows:
        by_status[status] = by_status.get(status, 0) + n
        total_by_category[category] = total_by_category.get(category, 0) + n
        if resolution is not None:
            by_resolution[resolution] = by_resolution.get(resolution, 0) + n
        if status == "pending":
            pending_by_category[category] = pending_by_category.get(category, 0) + n
        if status in rules.OPEN_STATUSES:
            open_by_category[category] = open_by_category.get(category, 0) + n
    return {
        "pending": by_status["pending"],
        "under_review": by_status["under_review"],
        "resolved_today": today,
        "by_category": open_by_category,
        "total": sum(by_status.values()),
        "by_status": by_status,
        "total_by_category": total_by_category,
        "by_resolution": by_resolution,
        "pending_by_category": pending_by_category,
    }


def resolve_report(
    svc: Services,
    actor: Actor,
    report_id: str,
    *,
    resolution: str | None = None,
    action: str | None = None,
    duration_seconds: int | None = None,
    note: str | None = None,
) -> dict[str, Any]:
    """Close a pending report: dismissed (`action: dismiss`), or action taken, the action carried
    out here: `delete_message` (deleted for everyone), or a `mute`/`restrict`/`kick` sanction on
    the reported user in the report's conversation, for `duration_seconds` or until lifted."""
    require_moderator(svc, actor)
    limits = svc.settings.limits
    resolution, action = rules.resolution_of(resolution, action)
    clean_note = rules.clean_text(note, "note", limits.max_report_reason_chars)
    with svc.unit() as unit:
        report = store.get_report(unit.conn, report_id)
        if report is None:
            raise NotFound("report not found", code="report_not_found")
        if report.status not in rules.OPEN_STATUSES:
            raise Conflict("this report is already resolved", code="already_resolved")
        sanction_id = None
        if action in rules.SANCTION_KINDS:
            if report.conversation_id is None or report.reported_user_id is None:
                raise Invalid.field("action", "the report names no conversation to sanction the user in")
            conv = require_conversation(unit.conn, report.conversation_id)
            expires_at = rules.sanction_expiry(unit.now, duration_seconds, None, limits)
            sanction = _apply(
                unit,
                actor,
                conv,
                report.reported_user_id,
                action,
                expires_at,
                f"report {report.id}: {report.category}",
                global_moderator=True,
            )
            sanction_id = sanction.id
        elif action == "delete_message":
            if report.message_id is None:
                raise Invalid.field("action", "the report names no message to delete")
            _delete_for_everyone(unit, report.message_id)
        resolved = store.resolve_report(
            unit.conn,
            report.id,
            status=rules.resolved_status(resolution),
            resolution=resolution,
            action=action,
            note=clean_note,
            sanction_id=sanction_id,
            resolved_by=actor.user_id,
            resolved_at=unit.now,
        )
        if not resolved:
            raise Conflict("this report is already resolved", code="already_resolved")
        report.status, report.resolution = rules.resolved_status(resolution), resolution
        report.action, report.note = action, clean_note
        report.sanction_id, report.resolved_by, report.resolved_at = sanction_id, actor.user_id, unit.now
        unit.record(
            Event(
                "moderation.report_resolved",
                # the reporter's view of the decision, as their GET /reports/:id shows it
                {
                    "report_id": report.id,
                    "status": report.status,
                    "resolution": resolution_view(report, for_moderator=False),
                },
                (topic_user(report.reporter_id),),
            )
        )
        return report_view(report, for_moderator=True)


def _delete_for_everyone(unit: Unit, message_id: str) -> None:
    message = msg_store.get_message(unit.conn, message_id)
    if message is None or message.is_deleted:
        return
    msg_store.update_message(
        unit.conn, message.id, content="", metadata={}, signature=None, is_deleted=True, deleted_at=unit.now
    )
    search_index.remove_message(unit.conn, message.id)
    members = conv_store.list_members(unit.conn, message.conversation_id)
    payload = {
        "message_id": message.id,
        "conversation_id": message.conversation_id,
        "seq": message.seq,
        "delete_for_everyone": True,
    }
    topics = (topic_conversation(message.conversation_id), *[topic_user(m.user_id) for m in members])
    unit.record(Event("message_deleted", payload, topics, conversation_id=message.conversation_id, seq=message.seq))


# sanctions


def _apply(
    unit: Unit,
    actor: Actor,
    conv: Conversation,
    user_id: str,
    kind: str,
    expires_at: datetime | None,
    reason: str | None,
    *,
    global_moderator: bool,
) -> rules.Sanction:
    me = conv_store.get_member(unit.conn, conv.id, actor.user_id)
    target = conv_store.get_member(unit.conn, conv.id, user_id)
    target = rules.check_can_sanction(
        actor.user_id,
        me,
        target if target and target.is_active else None,
        user_id,
        global_moderator=global_moderator,
    )
    if kind == "kick":
        owners = sum(1 for m in conv_store.list_members(unit.conn, conv.id) if m.role == "owner")
        rules.check_kick(conv, target, owners)
    store.revoke_in_force(unit.conn, conv.id, user_id, kind, unit.now)  # the newest decision replaces older
    sanction = rules.Sanction(
        id=str(uuid.uuid4()),
        conversation_id=conv.id,
        user_id=user_id,
        kind=kind,
        reason=reason,
        created_by=actor.user_id,
        created_at=unit.now,
        expires_at=expires_at,
    )
    store.insert_sanction(unit.conn, sanction)
    unit.record(
        Event(
            "moderation.sanction_applied",
            {"sanction": sanction_view(sanction, unit.now)},
            (topic_user(user_id),),
            conversation_id=conv.id,
        )
    )
    if kind == "kick":  # out now, through the members flow (system message, member_removed)
        deactivate(unit, conv, target, actor, "member_kicked")
    return sanction


def _can_moderate(conn: Connection, svc: Services, actor: Actor, conversation_id: str) -> tuple[Conversation, bool]:
    """The conversation, and whether the caller sees and manages all its sanctions (a global
    moderator, or one of its owners/admins/moderators). Other members see their own only."""
    if is_moderator(svc, actor):
        return require_conversation(conn, conversation_id), True
    conv, me = require_member(conn, conversation_id, actor.user_id)
    return conv, ROLE_RANK[me.role] >= ROLE_RANK["moderator"]


def create_sanction(
    svc: Services,
    actor: Actor,
    conversation_id: str,
    *,
    user_id: str,
    kind: str,
    duration_seconds: int | None = None,
    expires_at: datetime | None = None,
    reason: str | None = None,
) -> dict[str, Any]:
    limits = svc.settings.limits
    kind = rules.sanction_kind(kind)
    clean_reason = rules.clean_text(reason, "reason", limits.max_report_reason_chars)
    with svc.unit() as unit:
        conv, _ = _can_moderate(unit.conn, svc, actor, conversation_id)
        until = rules.sanction_expiry(unit.now, duration_seconds, expires_at, limits)
        sanction = _apply(
            unit, actor, conv, user_id, kind, until, clean_reason, global_moderator=is_moderator(svc, actor)
        )
        return sanction_view(sanction, unit.now)


def list_sanctions(
    svc: Services, actor: Actor, conversation_id: str, *, include_inactive: bool = False
) -> list[dict[str, Any]]:
    with svc.db.transaction() as conn:
        now = svc.clock()
        conv, sees_all = _can_moderate(conn, svc, actor, conversation_id)
        found = store.list_sanctions(
            conn, conv.id, now, user_id=None if sees_all else actor.user_id, in_force_only=not include_inactive
        )
        return [sanction_view(s, now) for s in found]


def revoke_sanction(svc: Services, actor: Actor, conversation_id: str, sanction_id: str) -> dict[str, Any]:
    """Lift a sanction (idempotent). The same people who could impose it may lift it; a kicked
    member is not added back, but may be again."""
    with svc.unit() as unit:
        conv, manages = _can_moderate(unit.conn, svc, actor, conversation_id)
        sanction = store.get_sanction(unit.conn, sanction_id)
        if sanction is None or sanction.conversation_id != conv.id:
            raise NotFound("sanction not found", code="sanction_not_found")
        if not manages:
            raise Forbidden("only moderators, admins and owners can lift sanctions", code="insufficient_role")
        if not is_moderator(svc, actor):
            me = conv_store.get_member(unit.conn, conv.id, actor.user_id)
            target = conv_store.get_member(unit.conn, conv.id, sanction.user_id)
            assert me is not None
            if target is not None and ROLE_RANK[target.role] >= ROLE_RANK[me.role]:
                raise Forbidden("you can lift sanctions only on members ranked below you", code="insufficient_role")
        if sanction.revoked_at is None:
            store.revoke_sanction(unit.conn, sanction.id, unit.now)
            sanction.revoked_at = unit.now
            unit.record(
                Event(
                    "moderation.sanction_revoked",
                    {"sanction": sanction_view(sanction, unit.now)},
                    (topic_user(sanction.user_id),),
                    conversation_id=conv.id,
                )
            )
        return sanction_view(sanction, unit.now)
