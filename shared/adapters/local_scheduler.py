"""The embedded scheduler: one in-process timer thread over the store.

No queue of its own: the store says what is waiting (`scheduled_messages` pending rows,
ephemeral `messages` not yet expired), so a restart loses nothing: on start the thread fires
whatever came due while it was down and sleeps until the next due time the store reports.
`schedule()` only wakes it earlier when something sooner arrives; every `rescan_seconds` it
rereads the store anyway, to pick up items another instance scheduled. Several instances on
one database are fine: firing claims each item atomically (see `shared.app.scheduled`).

Times are the service clock's (`Services.clock`), so tests that move the clock can `wake()` it.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timedelta

from shared.app.scheduled import expire_due_messages, fire_due_scheduled, next_due
from shared.app.services import Services
from shared.ports.scheduler import Kind

log = logging.getLogger(__name__)

_MARGIN = 0.01  # seconds past a due time before looking: never wake a hair too early and spin
_MAX_BACKOFF = 5.0  # seconds between passes while something due keeps failing


class LocalScheduler:
    horizon: timedelta | None = None  # it reads the store itself: any due time is fine

    def __init__(self, services: Services, *, rescan_seconds: float | None = None):
        self._svc = services
        self._rescan = rescan_seconds if rescan_seconds is not None else services.settings.scheduler_rescan_seconds
        self._cond = threading.Condition()
        self._hint: datetime | None = None  # the earliest due time told since the last pass
        self._kick = False
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.passes = 0  # completed passes over the store (diagnostics, tests)

    # the port

    def schedule(self, kind: Kind, item_id: str, due_at: datetime) -> None:
        with self._cond:
            if self._hint is None or due_at < self._hint:
                self._hint = due_at
                self._cond.notify_all()

    def cancel(self, kind: Kind, item_id: str, due_at: datetime | None = None) -> None:
        """Nothing to do: a cancelled row is no longer pending, so firing skips it."""

    def start(self) -> None:
        with self._cond:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stopping = False
            self._thread = threading.Thread(target=self._run, name="whispr-local-scheduler", daemon=True)
            self._thread.start()
        log.info("local scheduler started")

    def stop(self, timeout: float = 30.0) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
            thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    # extras of this adapter

    @property
    def running(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive()

    def wake(self) -> None:
        """Look at the store now (after the service clock moved, or to pick up another
        instance's items without waiting for the rescan)."""
        with self._cond:
            self._kick = True
            self._cond.notify_all()

    def run_once(self) -> datetime | None:
        """One pass: fire what is due, expire what is due; the next due time in the store."""
        fire_due_scheduled(self._svc)
        expire_due_messages(self._svc)
        return next_due(self._svc)

    # the thread

    def _run(self) -> None:
        backoff = 0.0
        while True:
            with self._cond:
                if self._stopping:
                    return
                self._hint, self._kick = None, False
            try:
                target = self.run_once()
            except Exception:
                log.exception("scheduler pass failed; retrying")
                target = None
                backoff = min(_MAX_BACKOFF, max(0.1, backoff * 2))
            else:
                # due already after a full pass: new arrivals (go again), or an item that keeps
                # failing (do not spin on it)
                overdue = target is not None and target <= self._svc.clock()
                backoff = min(_MAX_BACKOFF, max(0.05, backoff * 2)) if overdue else 0.0
            self.passes += 1
            self._wait(target, backoff)

    def _wait(self, target: datetime | None, backoff: float) -> None:
        started = time.monotonic()
        rescan_at = started + self._rescan
        with self._cond:
            while not self._stopping and not self._kick:
                now = time.monotonic()
                timeout = rescan_at - now
                due = min((t for t in (target, self._hint) if t is not None), default=None)
                if due is not None:
                    until_due = (due - self._svc.clock()).total_seconds() + _MARGIN
                    timeout = min(timeout, max(until_due, started + backoff - now))
                if timeout <= 0:
                    return
                self._cond.wait(timeout)
