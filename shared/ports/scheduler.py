"""The scheduler port: run something at a due time (scheduled messages, ephemeral expiries).

The store is the source of truth (`scheduled_messages.status`/`scheduled_at`,
`messages.expires_at`/`is_expired`): the scheduler is only told *when* to look, and whatever it
fires is claimed atomically in the store by `shared.app.scheduled`, so a duplicate or stale
timer (two instances, a retried Cloud Task, an edited due time) sends nothing twice.
Adapters: `shared.adapters.local_scheduler` (in-process timer over the store, the embedded
default); `shared.adapters.cloud_tasks_scheduler` (one named Cloud Task per item, HTTP target
`functions/tasks`; at most `horizon` ahead, the periodic sweep enqueues the rest later).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal, Protocol

Kind = Literal["scheduled", "expiry"]
KINDS: tuple[Kind, ...] = ("scheduled", "expiry")


class Scheduler(Protocol):
    # How far ahead schedule() can take an item; None: no limit. An item due further ahead is
    # not taken: the periodic sweep (`shared.app.scheduled.enqueue_upcoming`) hands it over
    # again once it is within range.
    horizon: timedelta | None

    def schedule(self, kind: Kind, item_id: str, due_at: datetime) -> None:
        """Make sure `item_id` is looked at no later than `due_at` (called after commit).
        Idempotent for the same (kind, item_id, due_at); never raises for the adapter's own
        failures (the sweep fires anything due anyway)."""
        ...

    def cancel(self, kind: Kind, item_id: str, due_at: datetime | None = None) -> None:
        """The item will not be needed at `due_at` (its previous due time, when it moved).
        Best effort: firing re-checks the store anyway."""
        ...

    def start(self) -> None:
        """Begin firing (a long-running process: the local gateway, tests). Idempotent."""
        ...

    def stop(self) -> None:
        """Stop firing and wait for the current item to finish. Idempotent."""
        ...


class NullScheduler:
    """Fires nothing: for processes that only serve requests while something else fires (a
    Cloud Function instance, tools). Everything due stays in the store for the next scheduler."""

    horizon: timedelta | None = None

    def schedule(self, kind: Kind, item_id: str, due_at: datetime) -> None:
        return None

    def cancel(self, kind: Kind, item_id: str, due_at: datetime | None = None) -> None:
        return None

    def start(self) -> None:
        return None

    def stop(self) -> None:
        return None
