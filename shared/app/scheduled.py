"""Use cases on scheduled messages (schedule, list, edit, cancel) and the firing code every
scheduler adapter calls: the local timer, and Cloud Tasks through `functions/tasks`.

A scheduled message is sent through `send_message`, the one send path, at its due time, with
its own `client_random`: membership, sanctions, limits and signatures are checked again then,
and a retried firing (a crash after the send, a second instance, a redelivered task) finds the
message already sent instead of sending it twice.
"""

from __future__ import annotations

import logging
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

from shared.app.access import require_member, topic_conversation, topic_user
from shared.app.messages import send_message
from shared.app.services import Services
from shared.app.views import message_view, timestamp
from shared.domain import rules
from shared.domain.errors import Conflict, DomainError, Invalid, NotFound, RateLimited
from shared.domain.models import Actor, Event, Member, MessageType, NewMessage, ScheduledMessage
from shared.ports.scheduler import Kind
from shared.storage import conversations as conv_store
from shared.storage import messages as msg_store
from shared.storage import outbox
from shared.storage import scheduled as store
from shared.storage import search as search_index
from shared.telemetry.context import work_scope
from shared.telemetry.metrics import SCHEDULER_LAG_SECONDS

log = logging.getLogger(__name__)

STATUSES = ("pending", "sent", "failed", "cancelled")
# Why a firing is cancelled rather than failed: the sender can no longer write there.
_CANCELLING_CODES = frozenset({"not_a_member", "conversation_not_found"})
BATCH = 100

FireResult = Literal["sent", "cancelled", "failed", "retry", "skipped"]


def scheduled_view(item: ScheduledMessage) -> dict[str, Any]:
    return {
        "id": item.id,
        "conversation_id": item.conversation_id,
        "content": item.content,
        "message_type": item.message_type,
        "metadata": item.metadata,
        "client_random": item.client_random,
        "scheduled_at": timestamp(item.scheduled_at),
        # `sending` is a scheduler's claim, not a state clients know
        "status": "pending" if item.status == "sending" else item.status,
        "message_id": item.message_id,
        "failure_reason": item.failure_reason,
        "created_at": timestamp(item.created_at),
        "updated_at": timestamp(item.updated_at),
    }


@dataclass(frozen=True)
class NewScheduled:
    conversation_id: str
    content: str
    scheduled_at: datetime
    message_type: MessageType = "text"
    client_random: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ScheduledChanges:
    content: str | None = None
    message_type: MessageType | None = None
    scheduled_at: datetime | None = None
    metadata: dict[str, Any] | None = None


def _utc(value: datetime) -> datetime:
    """Times without an offset are UTC; every time is kept and shown in UTC."""
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def create_scheduled(svc: Services, actor: Actor, new: NewScheduled) -> tuple[dict[str, Any], bool]:
    """Schedule a message; (view, created). A retry with the same `client_random` answers the
    scheduled message the first request made (created False)."""
    limits = svc.settings.limits
    client_random = new.client_random if new.client_random is not None else secrets.randbits(32)
    scheduled_at = _utc(new.scheduled_at)
    rules.check_new_message(new.content, new.message_type, client_random, new.metadata, None, limits)
    rules.check_scheduled_at(scheduled_at, svc.clock(), limits)
    with svc.unit() as unit:
        conv, _ = require_member(unit.conn, new.conversation_id, actor.user_id)
        if new.client_random is not None:
            conv_store.lock_conversation(unit.conn, conv.id)  # serialises retries of one POST
            since = unit.now - timedelta(seconds=limits.client_random_window_seconds)
            existing = store.find_by_client_random(unit.conn, actor.user_id, conv.id, client_random, since)
            if existing is not None:
                return scheduled_view(existing), False
        rules.check_pending_scheduled(store.count_pending(unit.conn, actor.user_id), limits)
        wait = svc.limiter.acquire(
            f"schedule:{actor.user_id}", per_second=limits.scheduled_per_hour / 3600, burst=limits.scheduled_per_hour
        )
        if wait:
            raise RateLimited(f"at most {limits.scheduled_per_hour} scheduled messages per hour", retry_after=wait)
        item = ScheduledMessage(
            id=str(uuid.uuid4()),
            conversation_id=conv.id,
            sender_id=actor.user_id,
            sender_device_id=actor.device_id,
            content=new.content,
            message_type=new.message_type,
            metadata=new.metadata,
            client_random=client_random,
            scheduled_at=scheduled_at,
            status="pending",
            created_at=unit.now,
            updated_at=unit.now,
        )
        store.insert_scheduled(unit.conn, item)
    svc.scheduler.schedule("scheduled", item.id, item.scheduled_at)
    return scheduled_view(item), True


def list_scheduled(
    svc: Services, actor: Actor, *, conversation_id: str | None = None, status: str = "pending"
) -> list[dict[str, Any]]:
    """The caller's scheduled messages, soonest first: pending ones unless `status` says
    otherwise (one of STATUSES, or `all`)."""
    if status == "all":
        statuses: tuple[str, ...] = (*STATUSES, "sending")
    elif status == "pending":
        statuses = ("pending", "sending")
    elif status in STATUSES:
        statuses = (status,)
    else:
        raise Invalid.field("status", f"must be one of {', '.join(STATUSES)} or all")
    with svc.db.transaction() as conn:
        items = store.list_for_sender(conn, actor.user_id, statuses, conversation_id)
    return [scheduled_view(i) for i in items]


def _own(svc: Services, actor: Actor, scheduled_id: str) -> ScheduledMessage:
    with svc.db.transaction() as conn:
        item = store.get_scheduled(conn, scheduled_id)
    if item is None or item.sender_id != actor.user_id:
        raise NotFound("scheduled message not found", code="scheduled_message_not_found")
    return item


def _not_pending(item: ScheduledMessage) -> Conflict:
    state = "being sent" if item.status == "sending" else item.status
    return Conflict(
        f"the scheduled message is {state}; only pending ones can be changed",
        code="scheduled_not_pending",
        details={"status": [scheduled_view(item)["status"]]},
    )


def update_scheduled(svc: Services, actor: Actor, scheduled_id: str, changes: ScheduledChanges) -> dict[str, Any]:
    limits = svc.settings.limits
    item = _own(svc, actor, scheduled_id)
    if item.status != "pending":
        raise _not_pending(item)
    content = item.content if changes.content is None else changes.content
    message_type = item.message_type if changes.message_type is None else changes.message_type
    metadata = item.metadata if changes.metadata is None else changes.metadata
    scheduled_at = None if changes.scheduled_at is None else _utc(changes.scheduled_at)
    rules.check_new_message(content, message_type, item.client_random, metadata, None, limits)
    if scheduled_at is not None:
        rules.check_scheduled_at(scheduled_at, svc.clock(), limits)
    values: dict[str, Any] = {"content": content, "message_type": message_type, "metadata": metadata}
    if scheduled_at is not None:
        values["scheduled_at"] = scheduled_at
    with svc.unit() as unit:
        require_member(unit.conn, item.conversation_id, actor.user_id)
        updated = store.update_pending(unit.conn, item.id, unit.now, **values)
        if updated is None:  # claimed or cancelled since we looked
            current = store.get_scheduled(unit.conn, item.id)
            raise _not_pending(current or item)
    if scheduled_at is not None and updated.scheduled_at != item.scheduled_at:
        svc.scheduler.cancel("scheduled", item.id, item.scheduled_at)  # the task for the old time
        svc.scheduler.schedule("scheduled", updated.id, updated.scheduled_at)
    return scheduled_view(updated)


def cancel_scheduled(svc: Services, actor: Actor, scheduled_id: str) -> dict[str, Any]:
    item = _own(svc, actor, scheduled_id)
    if item.status != "pending":
        raise _not_pending(item)
    with svc.unit() as unit:
        cancelled = store.update_pending(
            unit.conn, item.id, unit.now, status="cancelled", failure_reason="cancelled_by_sender"
        )
        if cancelled is None:
            current = store.get_scheduled(unit.conn, item.id)
            raise _not_pending(current or item)
    svc.scheduler.cancel("scheduled", item.id, item.scheduled_at)
    return scheduled_view(cancelled)


# firing: called by scheduler adapters (and functions/tasks), never by clients


def fire_scheduled(svc: Services, scheduled_id: str) -> FireResult:
    """Send one scheduled message if it is due and nobody else has it. Safe to call any number
    of times, from any number of instances: the claim is one conditional UPDATE, and the send
    reuses the row's `client_random`, so a retry after a crash finds the message already sent."""
    with work_scope("scheduled"):
        return _fire_scheduled(svc, scheduled_id)


def _fire_scheduled(svc: Services, scheduled_id: str) -> FireResult:
    lease = timedelta(seconds=svc.settings.scheduler_lease_seconds)
    with svc.unit() as unit:
        item = store.claim(unit.conn, scheduled_id, unit.now, unit.now - lease)
    if item is None:
        return "skipped"
    actor = Actor(user_id=item.sender_id, device_id=item.sender_device_id)
    new = NewMessage(
        content=item.content, message_type=item.message_type, client_random=item.client_random, metadata=item.metadata
    )
    try:
        sent = send_message(svc, actor, item.conversation_id, new)
    except RateLimited as error:
        # keep the claim; it is retried when the lease runs out (not sooner than the limiter asks)
        log.info("scheduled message %s rate limited; retrying in %ss", item.id, error.retry_after)
        svc.scheduler.schedule("scheduled", item.id, svc.clock() + max(lease, timedelta(seconds=error.retry_after)))
        return "retry"
    except DomainError as error:
        status: FireResult = "cancelled" if error.code in _CANCELLING_CODES else "failed"
        with svc.unit() as unit:
            store.finish(unit.conn, item.id, unit.now, status, failure_reason=error.code)
        log.info("scheduled message %s %s: %s", item.id, status, error.code)
        return status
    with svc.unit() as unit:
        store.finish(unit.conn, item.id, unit.now, "sent", message_id=sent.message.id)
    SCHEDULER_LAG_SECONDS.observe(max(0.0, (sent.message.sent_at - item.scheduled_at).total_seconds()))
    log.info("scheduled message %s sent as message %s (seq %s)", item.id, sent.message.id, sent.message.seq)
    return "sent"


def fire_due_scheduled(svc: Services, now: datetime | None = None) -> int:
    """Fire every scheduled message due at `now` (default: the service clock); how many were sent."""
    lease = timedelta(seconds=svc.settings.scheduler_lease_seconds)
    sent = 0
    seen: set[str] = set()
    while True:
        at = now or svc.clock()
        with svc.db.transaction() as conn:
            ids = [i for i in store.due_ids(conn, at, at - lease, BATCH) if i not in seen]
        for scheduled_id in ids:
            seen.add(scheduled_id)
            try:
                sent += fire_scheduled(svc, scheduled_id) == "sent"
            except Exception:  # left claimed: retried when its lease runs out
                log.exception("firing scheduled message %s failed", scheduled_id)
        if len(ids) < BATCH:
            return sent


def expire_due_messages(
    svc: Services, now: datetime | None = None, *, limit: int | None = None, conversation_id: str | None = None
) -> int:
    """Purge every ephemeral message whose time has come (content, metadata, signature) and
    record `message_expired {message_id, conversation_id}` for its conversation and members.
    Each message is expired once, whoever calls this concurrently. Returns how many (at most
    `limit`, only in `conversation_id` when given)."""
    total = 0
    while True:
        batch = BATCH if limit is None else min(BATCH, limit - total)
        if batch <= 0:
            return total
        with svc.unit() as unit:
            expired = store.expire_due(unit.conn, now or unit.now, batch, conversation_id)
            search_index.remove_messages(unit.conn, [message_id for message_id, _, _ in expired])
            members: dict[str, list[Member]] = {}
            for message_id, conversation_id, seq in expired:
                purged = msg_store.get_message(unit.conn, message_id)
                if purged is not None:
                    outbox.scrub_message(unit.conn, conversation_id, seq, message_view(purged))
                if conversation_id not in members:
                    members[conversation_id] = conv_store.list_members(unit.conn, conversation_id)
                topics = (
                    topic_conversation(conversation_id),
                    *[topic_user(m.user_id) for m in members[conversation_id]],
                )
                unit.record(
                    Event(
                        "message_expired",
                        {"message_id": message_id, "conversation_id": conversation_id},
                        topics,
                        conversation_id=conversation_id,
                        seq=seq,
                    )
                )
        total += len(expired)
        if len(expired) < batch:
            return total


# How far back from the horizon's edge the sweep looks. Items that were within the horizon when
# they were created were handed to the scheduler then; the sweep hands over those that crossed
# the edge since, and looks this far back so that a few missed sweeps (it runs every minute)
# lose nothing. Anything that still slips through is fired by the sweep itself once due.
ENQUEUE_BAND = timedelta(minutes=10)


def enqueue_upcoming(svc: Services, *, band: timedelta = ENQUEUE_BAND) -> int:
    """Hand the scheduler the items that have come within its horizon (Cloud Tasks: 30 days):
    pending scheduled messages and ephemeral expiries due in (now + horizon - band, now +
    horizon]. Idempotent: the adapter names its tasks after (kind, id, due time), so handing an
    item over twice queues it once. Returns how many items were handed over (0 for a scheduler
    without a horizon: the local timer reads the store itself)."""
    horizon = svc.scheduler.horizon
    if horizon is None:
        return 0
    now = svc.clock()
    until = now + horizon
    after = max(now, until - band)
    handed = 0
    sources: tuple[tuple[Kind, Callable[..., list[tuple[str, datetime]]]], ...] = (
        ("scheduled", store.pending_due_between),
        ("expiry", store.expiring_between),
    )
    for kind, query in sources:
        start: tuple[datetime, str] | None = None
        while True:
            with svc.db.transaction() as conn:
                page = query(conn, after, until, BATCH, start)
            for item_id, due_at in page:
                svc.scheduler.schedule(kind, item_id, due_at)
            handed += len(page)
            if len(page) < BATCH:
                break
            start = (page[-1][1], page[-1][0])
    return handed


def next_due(svc: Services) -> datetime | None:
    """When something next needs firing, according to the store (None: nothing is waiting)."""
    with svc.db.transaction() as conn:
        times = [
            store.next_due(conn, svc.settings.scheduler_lease_seconds),
            store.next_expiry(conn),
        ]
    found = [t for t in times if t is not None]
    return min(found) if found else None
