"""The scheduler port on Google Cloud Tasks (WHISPR_SCHEDULER=cloudtasks).

One NAMED HTTP task per scheduled message and per ephemeral message's expiry, dispatched at the
item's due time to the `tasks` function:

- scheduled message -> POST {WHISPR_TASKS_TARGET_URL}/messaging/api/v1/tasks/scheduled/{id}
- expiry            -> POST {WHISPR_TASKS_TARGET_URL}/messaging/api/v1/tasks/expire

with an OIDC token for WHISPR_TASKS_INVOKER_EMAIL (Cloud Run checks it: the `tasks` function
admits only the invoker) and the shared secret in `X-Whispr-Tasks-Secret` (the handlers check it).

Task names are derived from (kind, item id, due time), with a hash prefix (Cloud Tasks
recommends against sequential names): scheduling the same item at the same time twice gives
ALREADY_EXISTS, which is fine; moving an item to another time gives a new name, and the old task
is deleted through `cancel(kind, id, old_due_at)` (NOT_FOUND is fine). The store stays the truth:
firing claims the row, so a task delivered twice, a stale task left behind, or a task that fires
a little early sends nothing twice (`shared.app.scheduled.fire_scheduled`).

Cloud Tasks takes a schedule_time at most 30 days ahead: items due further out are not enqueued
here; the periodic sweep (`POST /tasks/sweep`, Cloud Scheduler) hands them over once within range
(`shared.app.scheduled.enqueue_upcoming`).

The client has no emulator variable of its own: with WHISPR_TASKS_EMULATOR_HOST set it talks
plain gRPC to that host (no credentials), as the tests and `whispr-messaging cloud-local` do.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import tasks_v2

from shared.ports.scheduler import Kind

log = logging.getLogger(__name__)

MAX_HORIZON = timedelta(days=30)  # Cloud Tasks refuses a schedule_time further ahead
# Dispatch this long after the due time: the claim in the store is `scheduled_at <= now`, so a
# task that arrived a hair early (clocks) would find nothing due. The sweep would catch it a
# minute later; the margin makes that path rare.
DISPATCH_MARGIN = timedelta(milliseconds=250)
RPC_TIMEOUT = 10.0  # seconds; schedule() runs on the request path, after commit
TASKS_PATH = "/messaging/api/v1/tasks"  # the task targets of the route table (shared/http/routes.py)
SECRET_HEADER = "X-Whispr-Tasks-Secret"
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def task_id(kind: Kind, item_id: str, due_at: datetime) -> str:
    """The task id (last part of the name) for an item at a due time: deterministic, at most a
    few dozen characters of [A-Za-z0-9_-], hash first."""
    micros = (_utc(due_at) - _EPOCH) // timedelta(microseconds=1)  # exact, no float rounding
    digest = hashlib.sha256(f"{kind}:{item_id}:{micros}".encode()).hexdigest()[:12]
    return f"{digest}-{kind}-{_UNSAFE.sub('_', item_id)[:100]}-{micros}"


def build_client(emulator_host: str = "") -> tasks_v2.CloudTasksClient:
    """The Cloud Tasks client: Google's endpoint with the default credentials, or an emulator
    over an insecure gRPC channel when `emulator_host` is set."""
    if emulator_host:
        import grpc
        from google.cloud.tasks_v2.services.cloud_tasks.transports import CloudTasksGrpcTransport

        channel = grpc.insecure_channel(emulator_host)
        return tasks_v2.CloudTasksClient(transport=CloudTasksGrpcTransport(channel=channel))
    return tasks_v2.CloudTasksClient()


class CloudTasksScheduler:
    def __init__(
        self,
        queue: str,
        target_url: str,
        *,
        secret: str = "",
        invoker_email: str = "",
        audience: str = "",
        horizon: timedelta = MAX_HORIZON - timedelta(hours=1),
        clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
        client_factory: Callable[[], tasks_v2.CloudTasksClient] = build_client,
    ):
        if not re.fullmatch(r"projects/[^/]+/locations/[^/]+/queues/[^/]+", queue):
            raise ValueError(f"WHISPR_TASKS_QUEUE must be projects/<p>/locations/<l>/queues/<q>, not {queue!r}")
        if not target_url.startswith(("http://", "https://")):
            raise ValueError(f"WHISPR_TASKS_TARGET_URL must be the tasks function's http(s) URL, not {target_url!r}")
        self.queue = queue
        self.target_url = target_url.rstrip("/")
        self.secret = secret
        self.invoker_email = invoker_email
        self.audience = audience or self.target_url
        self.horizon: timedelta | None = min(horizon, MAX_HORIZON)
        self._clock = clock
        self._factory = client_factory
        self._client: tasks_v2.CloudTasksClient | None = None
        self._lock = threading.Lock()

    # naming and targets

    def task_name(self, kind: Kind, item_id: str, due_at: datetime) -> str:
        return f"{self.queue}/tasks/{task_id(kind, item_id, due_at)}"

    def target(self, kind: Kind, item_id: str) -> str:
        if kind == "scheduled":
            return f"{self.target_url}{TASKS_PATH}/scheduled/{item_id}"
        return f"{self.target_url}{TASKS_PATH}/expire"

    def task(self, kind: Kind, item_id: str, due_at: datetime) -> tasks_v2.Task:
        due = _utc(due_at)
        request: dict[str, Any] = {
            "url": self.target(kind, item_id),
            "http_method": tasks_v2.HttpMethod.POST,
            "headers": {SECRET_HEADER: self.secret} if self.secret else {},
        }
        if self.invoker_email:
            request["oidc_token"] = tasks_v2.OidcToken(service_account_email=self.invoker_email, audience=self.audience)
        return tasks_v2.Task(
            name=self.task_name(kind, item_id, due),
            schedule_time=due + DISPATCH_MARGIN,
            http_request=tasks_v2.HttpRequest(**request),
        )

    # the port

    def schedule(self, kind: Kind, item_id: str, due_at: datetime) -> None:
        horizon = self.horizon or MAX_HORIZON
        if _utc(due_at) > self._clock() + horizon:
            log.debug("%s %s is due beyond the tasks horizon; the sweep enqueues it later", kind, item_id)
            return
        task = self.task(kind, item_id, due_at)
        try:
            self.client().create_task(parent=self.queue, task=task, timeout=RPC_TIMEOUT)
        except gexc.AlreadyExists:
            pass  # queued already (or ran recently) under this name: the same item at the same time
        except Exception:
            log.exception("enqueueing %s %s failed; the periodic sweep fires it when due", kind, item_id)

    def cancel(self, kind: Kind, item_id: str, due_at: datetime | None = None) -> None:
        if due_at is None:
            return  # the task cannot be named; it fires, finds the item not pending, and does nothing
        name = self.task_name(kind, item_id, due_at)
        try:
            self.client().delete_task(name=name, timeout=RPC_TIMEOUT)
        except gexc.NotFound:
            pass  # already ran, never enqueued (beyond the horizon), or deleted before
        except Exception as error:  # harmless: firing re-checks the store
            log.warning("deleting task %s failed (%s); it will fire and find nothing to do", name, error)

    def start(self) -> None:
        return None  # Cloud Tasks fires; nothing runs in this process

    def stop(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.transport.close()  # type: ignore[no-untyped-call]

    def client(self) -> tasks_v2.CloudTasksClient:
        with self._lock:
            if self._client is None:
                self._client = self._factory()
            return self._client
