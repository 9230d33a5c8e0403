"""Marking published events (the outbox rows the sweeper need not send again), gathered.

Where the bus is not in the process (Pub/Sub, the local broker of `dev --workers N`), every unit
of work publishes its events after commit and then marks them published: a transaction of its
own, which cost a long-running instance under load about as much as a tenth of a send (issue 16,
docs/performance.md "The publication marks"). A mark only spares the sweeper a republication
(consumers deduplicate by event id), so nothing waits for it: here the marks of every unit are
gathered and a thread writes them together, one transaction per `delay`. A mark that is never
written (the process died, the store was down) means the sweeper publishes the event again
after its grace period, which is already what a failed mark meant.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

from shared.storage import outbox
from shared.storage.engine import Database

log = logging.getLogger(__name__)


class PublicationMarks:
    """Marks gathered and written every `delay` seconds (the processes whose delay is 0 have
    none: each unit writes its own, `Services.publish`)."""

    def __init__(self, db: Database, delay: float):
        self.db = db
        self.delay = delay
        self._pending: list[int] = []
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def gather(self, positions: Sequence[int]) -> bool:
        """Take these events' marks to write with others (True), or False once closed: the
        caller writes them itself. Checked under the lock `close` takes, so that no mark is
        gathered after its last flush."""
        with self._lock:
            if self._stopped.is_set():
                return False
            self._pending.extend(positions)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="publication marks", daemon=True)
                self._thread.start()
        return True

    def _run(self) -> None:
        while not self._stopped.wait(self.delay):
            self.flush()

    def flush(self) -> None:
        """Write every mark gathered so far, in one transaction."""
        with self._lock:
            positions, self._pending = self._pending, []
        if not positions:
            return
        try:
            with self.db.transaction() as conn:
                outbox.mark_published(conn, positions, durable=False)
        except Exception as error:  # the sweeper publishes them again: consumers deduplicate
            log.warning("marking %d published events failed (the sweeper will resend them): %s", len(positions), error)

    def close(self) -> None:
        """Write what is gathered; gather no more."""
        with self._lock:
            self._stopped.set()
        if self._thread is not None:
            self._thread.join(5.0)
        self.flush()
