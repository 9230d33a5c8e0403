"""Task targets (Cloud Tasks, Cloud Scheduler; anything that must fire at a time): fire one
scheduled message, expire due ephemeral messages, or sweep (everything due, the outbox, and what
came within Cloud Tasks' 30-day range).

Not for clients: no user token. The caller proves itself with the shared secret
`WHISPR_TASKS_SECRET`, in `X-Whispr-Tasks-Secret`, as `Authorization: Bearer <secret>` or as the
query parameter `token` (what a Pub/Sub push endpoint can carry: `functions/events`)
(OIDC tokens from the Cloud Tasks service account can replace it later). Without a configured
secret the targets answer 403 (`tasks_not_configured`): nothing fires by accident. Every target is idempotent, so a
redelivered task does no harm.
"""

from __future__ import annotations

import hmac
from typing import Literal

from pydantic import Field

from shared.app import notifications, sibling_events
from shared.app import scheduled as uc
from shared.app.outbox_sweeper import sweep_outbox
from shared.domain.errors import Forbidden, Unauthorized
from shared.http.responses import ResponseDoc, Uuid, View
from shared.http.routing import Call, Reply

SECRET_HEADER = "x-whispr-tasks-secret"


class FireResultDoc(View):
    scheduled_id: Uuid
    result: Literal["sent", "cancelled", "failed", "retry", "skipped"] = Field(
        description="skipped: not due, not pending, or another instance has it"
    )


class ExpireResultDoc(View):
    expired: int = Field(ge=0, description="messages expired by this call")


class SweepResultDoc(View):
    sent: int = Field(ge=0, description="scheduled messages sent by this call")
    expired: int = Field(ge=0, description="messages expired by this call")
    enqueued: int = Field(
        ge=0,
        description="scheduled messages and expiries that came within the scheduler's "
        "horizon (Cloud Tasks: 30 days), handed to it by this call",
    )
    republished: int = Field(
        ge=0, description="outbox events a crash or a bus outage had left unpublished, republished by this call"
    )


FIRE_DOC = ResponseDoc(FireResultDoc, description="What firing did (idempotent)")
EXPIRE_DOC = ResponseDoc(ExpireResultDoc)
SWEEP_DOC = ResponseDoc(SweepResultDoc)


def check_secret(call: Call) -> None:
    secret = call.services.settings.tasks_secret
    if not secret:
        raise Forbidden("task targets are disabled here: WHISPR_TASKS_SECRET is not set", code="tasks_not_configured")
    given = call.headers.get(SECRET_HEADER, "") or call.query.get("token", "")  # token: a push endpoint's
    if not given:
        scheme, _, token = call.headers.get("authorization", "").partition(" ")
        given = token.strip() if scheme.lower() == "bearer" else ""
    if not given or not hmac.compare_digest(given.encode(), secret.encode()):
        raise Unauthorized("a valid task secret is required", code="invalid_task_secret")


def fire_scheduled(call: Call) -> Reply:
    check_secret(call)
    scheduled_id = call.path["scheduled_id"]
    return Reply({"scheduled_id": scheduled_id, "result": uc.fire_scheduled(call.services, scheduled_id)})


def expire(call: Call) -> Reply:
    check_secret(call)
    return Reply({"expired": uc.expire_due_messages(call.services)})


def sweep(call: Call) -> Reply:
    """The periodic sweep (Cloud Scheduler, every minute): republish what the outbox holds,
    send what is due, expire what is due, and hand the scheduler what came within its range."""
    check_secret(call)
    svc = call.services
    republished = sweep_outbox(svc)
    notifications.run_once(svc, max_batches=20)  # pushes owed, should no long-lived process run them
    sibling_events.forget_old_records(svc)
    sent = uc.fire_due_scheduled(svc)
    expired = uc.expire_due_messages(svc)
    enqueued = uc.enqueue_upcoming(svc)
    return Reply({"sent": sent, "expired": expired, "enqueued": enqueued, "republished": republished})
