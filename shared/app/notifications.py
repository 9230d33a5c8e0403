"""Pushes to members who are not online, and clearing them on read, through the notifier port,
never on a send's path (integration.md: "notifications are queued and retried, never blocking
a send").

Two passes, both off the request path and both safe to run on several instances at once:

1. **plan** reads the outbox (committed `new_message` and `conversation_read` events, past a
   durable cursor in (txid, id) order, so nothing that commits late is skipped). For a message it
   works out who should be pushed: active members other than the sender, notifications on, not
   muted, with no socket on any relay instance (presence in the state store). It records
   `message_recipients` (siblings hear it as `whispr.messaging.message.created`, listing them)
   and queues the push; for a read it queues `MarkNotificationsAsRead`. The cursor moves in the
   same transaction, so each event is planned once.
2. **deliver** hands queued calls to the notification service in order and deletes them once it
   took them. While it is down (`SiblingUnavailable`) they stay queued, on disk, and the worker
   backs off; each call carries the domain event id, which the notification service dedupes
   by, so a call repeated after a crash is harmless.

`NotificationWorker` runs both in a thread in long-lived processes (the relay, `dev`); the
periodic sweep (`/tasks/sweep`) runs them too, so nothing depends on one process being up.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from shared.app.services import Services, Unit
from shared.app.views import is_muted
from shared.domain.cloudevents import without_content
from shared.domain.models import Event, Member
from shared.ports.siblings import MessageNotification, SiblingUnavailable
from shared.storage import conversations as conv_store
from shared.storage import notifications as store

log = logging.getLogger(__name__)

CURSOR = "notifications"
PLAN_BATCH = 200
DELIVER_BATCH = 50
MAX_ATTEMPTS = 5  # a call the notification service keeps refusing (not "unavailable") is dropped after this


# --- plan -----------------------------------------------------------------------------------


def plan(svc: Services, batch: int = PLAN_BATCH) -> int:
    """One step of the plan pass: the number of outbox events it went through (0: none new, or
    another instance is planning)."""
    with svc.unit() as unit:
        unit.defer_events()  # its message_recipients in one INSERT at the end, not one per message
        cursor = store.claim_cursor(unit.conn, CURSOR)
        if cursor is None:
            return 0
        found, after = store.notifiable_after(unit.conn, cursor, batch)
        conversation_ids = list({e.conversation_id for e in found if e.conversation_id and e.name == "new_message"})
        members = conv_store.members_of(unit.conn, conversation_ids)
        encrypted = {
            cid: conv.e2ee_enabled for cid, conv in conv_store.get_conversations(unit.conn, conversation_ids).items()
        }
        online: dict[str, bool] = {}
        for event in found:
            if event.name == "new_message" and event.conversation_id:
                _plan_push(
                    svc,
                    unit,
                    event,
                    members[event.conversation_id],
                    encrypted.get(event.conversation_id, False),
                    online,
                )
            elif event.name == "conversation_read":
                _plan_read(unit, event)
        store.move_cursor(unit.conn, CURSOR, after)
        return len(found)


def _is_online(svc: Services, user_id: str, known: dict[str, bool]) -> bool:
    """A socket open on any relay instance (away counts: the socket is there). Without a state
    store nobody is known to be online, so everybody is pushed."""
    if user_id not in known:
        known[user_id] = svc.state is not None and svc.state.user_presence(user_id).status != "offline"
    return known[user_id]


def _offline(
    svc: Services, sender_id: str, members: Sequence[Member], now: datetime, known: dict[str, bool]
) -> list[str]:
    """Who is pushed a message: active members other than the sender, notifications on, not
    muted, and not online."""
    return [
        m.user_id
        for m in members
        if m.user_id != sender_id
        and m.is_active
        and m.notifications_enabled
        and not is_muted(m, now)
        and not _is_online(svc, m.user_id, known)
    ]


def _plan_push(
    svc: Services,
    unit: Unit,
    event: store.OutboxEvent,
    members: Sequence[Member],
    encrypted: bool,
    online: dict[str, bool],
) -> None:
    message = event.payload.get("message")
    if not isinstance(message, dict) or message.get("is_deleted"):
        return
    recipients = _offline(svc, str(message.get("sender_id")), members, unit.now, online)
    unit.record(
        Event(
            "message_recipients",  # siblings never get content: none is copied into the outbox either
            {"message": without_content(message), "recipient_ids": recipients, "encrypted": encrypted},
            (),
            conversation_id=event.conversation_id,
        )
    )
    if recipients:
        mentions = (message.get("metadata") or {}).get("mentions")
        payload = {
            "event_id": event.event_id,
            "message_id": message["id"],
            "conversation_id": event.conversation_id,
            "sender_id": message["sender_id"],
            "recipient_ids": recipients,
            "message_type": message.get("message_type", "text"),
            "seq": event.seq or message.get("seq") or 0,
            "sent_at": message.get("sent_at") or event.created_at.isoformat(),
            "mention_ids": [m for m in mentions if isinstance(m, str)] if isinstance(mentions, list) else [],
            "encrypted": encrypted,
        }
        store.enqueue(unit.conn, f"message:{event.event_id}", "message", payload, unit.now)


def _plan_read(unit: Unit, event: store.OutboxEvent) -> None:
    payload = event.payload
    if isinstance(payload.get("user_id"), str) and isinstance(payload.get("up_to_seq"), int):
        store.enqueue(
            unit.conn,
            f"read:{event.event_id}",
            "read",
            {
                "user_id": payload["user_id"],
                "conversation_id": event.conversation_id,
                "up_to_seq": payload["up_to_seq"],
            },
            unit.now,
        )


# --- deliver --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Delivered:
    calls: int  # taken by the notification service (or dropped as refused for good)
    unavailable: bool  # it is down: what is left stays queued


def deliver(svc: Services, batch: int = DELIVER_BATCH) -> Delivered:
    """Hand up to `batch` queued calls to the notification service, oldest first."""
    notifier = svc.notifier
    if notifier is None:
        return Delivered(0, False)
    with svc.db.transaction() as conn:
        owed = store.claim_owed(conn, batch)
        finished: list[int] = []
        refused: list[int] = []
        unavailable = False
        for item in owed:
            try:
                if item.kind == "message":
                    notifier.notify_message(_notification(item.payload))
                else:
                    p = item.payload
                    notifier.mark_read(p["user_id"], p["conversation_id"], int(p["up_to_seq"]))
            except SiblingUnavailable:
                unavailable = True
                break
            except Exception:
                log.exception("the notification service refused queued call %d (%s)", item.id, item.kind)
                (finished if item.attempts + 1 >= MAX_ATTEMPTS else refused).append(item.id)
            else:
                finished.append(item.id)
        store.done(conn, finished)
        store.failed(conn, refused)
    return Delivered(len(finished), unavailable)


def _notification(p: dict[str, object]) -> MessageNotification:
    return MessageNotification(
        event_id=str(p["event_id"]),
        message_id=str(p["message_id"]),
        conversation_id=str(p["conversation_id"]),
        sender_id=str(p["sender_id"]),
        recipient_ids=list(p["recipient_ids"]),  # type: ignore[call-overload]
        message_type=str(p["message_type"]),
        seq=int(p["seq"]),  # type: ignore[call-overload]
        sent_at=datetime.fromisoformat(str(p["sent_at"]).replace("Z", "+00:00")),
        mention_ids=list(p["mention_ids"]),  # type: ignore[call-overload]
        encrypted=bool(p["encrypted"]),
    )


def run_once(svc: Services, max_batches: int | None = None) -> Delivered:
    """Plan everything new, then deliver until the queue is empty, the service is down, or
    `max_batches` batches went (a request-bound caller, the sweep, stops there)."""
    planned = 1
    while plan(svc) >= PLAN_BATCH and (max_batches is None or planned < max_batches):
        planned += 1
    total, batches = 0, 0
    while True:
        step = deliver(svc)
        total, batches = total + step.calls, batches + 1
        if step.unavailable or step.calls < DELIVER_BATCH or (max_batches is not None and batches >= max_batches):
            return Delivered(total, step.unavailable)


# --- the worker -----------------------------------------------------------------------------


class NotificationWorker:
    """`run_once` in a thread, every `poll_seconds`, backing off (doubling, up to
    `max_backoff_seconds`) while the notification service is down or a pass fails."""

    def __init__(self, services: Services, *, poll_seconds: float = 1.0, max_backoff_seconds: float = 60.0):
        self._svc = services
        self._poll = poll_seconds
        self._max_backoff = max_backoff_seconds
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.passes = 0

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="whispr-notifications", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        self._wake.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def wake(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        backoff = 0.0
        while not self._stopping.is_set():
            try:
                result = run_once(self._svc)
            except Exception:
                log.exception("notification pass failed; retrying")
                unavailable = True
            else:
                unavailable = result.unavailable
            self.passes += 1
            if unavailable:
                backoff = min(self._max_backoff, max(self._poll, backoff * 2))
                log.warning("notification service unavailable: pushes stay queued, next try in %.0f s", backoff)
            else:
                backoff = 0.0
            self._wake.wait(backoff or self._poll)
            self._wake.clear()
