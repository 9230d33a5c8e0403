"""Pushes to members who are not online, and clearing them on read, through the notifier port,
never on a send's path (integration.md: "notifications are queued and retried, never blocking
a send").

Two passes, both off the request path and both safe to run on several instances at once:

1. **plan** reads the outbox (committed `new_message` and `conversation_read` events, past a
   durable cursor in (txid, id) order, so nothing that commits late is skipped). For a message it
   works out who should be pushed: active members other than the sender, notifications on, not
   muted, with no socket on any relay instance (presence in the state store). It records
   `message_recipients` (siblings hear one `whispr.messaging.message.created` per message,
   listing them; one row for the whole pass) and queues the push; for a read it queues
   `MarkNotificationsAsRead`. The cursor moves in the same transaction, so each event is
   planned once.
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
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.app.services import Services
from shared.domain.cloudevents import planned_message
from shared.domain.models import Event
from shared.ports.siblings import MessageNotification, SiblingUnavailable
from shared.storage import notifications as store

log = logging.getLogger(__name__)

CURSOR = "notifications"
PLAN_BATCH = 500  # events per pass: a pass costs ~1.4 ms of Python whatever its size (6 statements)
DELIVER_BATCH = 50
BUSY_POLL_SECONDS = 0.1  # the worker's wait after a pass that found events (NotificationWorker)
MAX_ATTEMPTS = 5  # a call the notification service keeps refusing (not "unavailable") is dropped after this

Call = tuple[str, str, dict[str, Any]]  # a call to queue: (dedupe key, kind, payload)


# --- plan -----------------------------------------------------------------------------------


def plan(svc: Services, batch: int = PLAN_BATCH) -> int:
    """One step of the plan pass: the number of outbox events it went through (0: none new, or
    another instance is planning).

    What it writes for the events it went through, whatever their number: one
    `message_recipients` event (a `message.created` per message, see
    shared/domain/cloudevents.py), the queued calls in one INSERT, the cursor. It reads the
    events, then the members who may be pushed and the conversations' E2E flags in one query,
    then asks the state store once who of them is present."""
    with svc.unit() as unit:
        cursor = store.claim_cursor(unit.conn, CURSOR)
        if cursor is None:
            return 0
        found, after = store.notifiable_after(unit.conn, cursor, batch)
        if not found:
            return 0
        conversation_ids = {e.conversation_id for e in found if e.name == "new_message" and e.conversation_id}
        audiences = store.audiences(unit.conn, conversation_ids, unit.now)
        present = _present(svc, {user_id for audience in audiences.values() for user_id in audience.user_ids})
        planned: list[dict[str, Any]] = []
        calls: list[Call] = []  # in event order
        for event in found:
            call: Call | None = None
            if event.name == "conversation_read":
                call = _plan_read(event)
            elif (message := _pushable(event)) is not None:
                entry, call = _plan_push(event, message, audiences.get(str(event.conversation_id)), present, unit.now)
                planned.append(entry)
            if call is not None:
                calls.append(call)
        if planned:  # siblings never get content: none is copied into the outbox either
            unit.record(Event("message_recipients", {"messages": planned}, ()))
        store.enqueue_many(unit.conn, calls, unit.now)
        store.move_cursor(unit.conn, CURSOR, after)
        return len(found)


def _pushable(event: store.OutboxEvent) -> dict[str, Any] | None:
    """The message of a `new_message` event, if it is one that gets a `message.created`."""
    if event.name != "new_message" or not event.conversation_id:
        return None
    message = event.payload.get("message")
    if not isinstance(message, dict) or message.get("is_deleted"):
        return None
    return message


def _present(svc: Services, user_ids: set[str]) -> set[str]:
    """Who of them has a socket open on any relay instance (away counts: the socket is there),
    in one question to the state store. Without a state store nobody is known to be online,
    so everybody is pushed."""
    if svc.state is None or not user_ids:
        return set()
    return svc.state.present_users(user_ids)


_NOBODY = store.Audience(False, ())


def _plan_push(
    event: store.OutboxEvent,
    message: dict[str, Any],
    audience: store.Audience | None,
    present: set[str],
    now: datetime,
) -> tuple[dict[str, Any], Call | None]:
    """The message's `message_recipients` entry, and its push if anybody is to get it: active
    members other than the sender, notifications on, not muted (the audience), not present."""
    audience = audience or _NOBODY
    sender_id = message.get("sender_id")
    recipients = [u for u in audience.user_ids if u != sender_id and u not in present]
    conversation_id = str(event.conversation_id)
    entry = planned_message(event.event_id, conversation_id, message, recipients, audience.encrypted)
    if not recipients:
        return entry, None
    payload = {
        "event_id": event.event_id,
        "message_id": message["id"],
        "conversation_id": conversation_id,
        "sender_id": sender_id,
        "recipient_ids": recipients,
        "message_type": message.get("message_type", "text"),
        "seq": event.seq or message.get("seq") or 0,
        "sent_at": message.get("sent_at") or now.isoformat(),
        "mention_ids": entry["message"].get("mention_ids", []),
        "encrypted": audience.encrypted,
    }
    return entry, (f"message:{event.event_id}", "message", payload)


def _plan_read(event: store.OutboxEvent) -> Call | None:
    payload = event.payload
    if not (isinstance(payload.get("user_id"), str) and isinstance(payload.get("up_to_seq"), int)):
        return None
    return (
        f"read:{event.event_id}",
        "read",
        {"user_id": payload["user_id"], "conversation_id": event.conversation_id, "up_to_seq": payload["up_to_seq"]},
    )


# --- deliver --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Delivered:
    calls: int  # taken by the notification service (or dropped as refused for good)
    unavailable: bool  # it is down: what is left stays queued
    planned: int = 0  # outbox events the plan pass went through


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
    planned, passes = 0, 0
    while True:
        went = plan(svc)
        planned, passes = planned + went, passes + 1
        if went < PLAN_BATCH or (max_batches is not None and passes >= max_batches):
            break
    total, batches = 0, 0
    while True:
        step = deliver(svc)
        total, batches = total + step.calls, batches + 1
        if step.unavailable or step.calls < DELIVER_BATCH or (max_batches is not None and batches >= max_batches):
            return Delivered(total, step.unavailable, planned)


# --- the worker -----------------------------------------------------------------------------


class NotificationWorker:
    """`run_once` in a thread, every `poll_seconds`, backing off (doubling, up to
    `max_backoff_seconds`) while the notification service is down or a pass fails.

    While passes find events, the next one comes after `BUSY_POLL_SECONDS` instead: at 2,500
    messages a second, a pass a second went through ~2,500 events in one go, ~100 ms of Python
    that the event loop shared the GIL with, and every socket's latency jumped for it once a
    second (docs/performance.md, "The push planner's pass"); passes ten times as often are ten
    times smaller. An idle instance still looks once every `poll_seconds`."""

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
                result = Delivered(0, unavailable=True)
            self.passes += 1
            if result.unavailable:
                backoff = wait = min(self._max_backoff, max(self._poll, backoff * 2))
                log.warning("notification service unavailable: pushes stay queued, next try in %.0f s", backoff)
            else:
                backoff, wait = 0.0, min(self._poll, BUSY_POLL_SECONDS) if result.planned else self._poll
            self._wake.wait(wait)
            self._wake.clear()
