"""The outbox sweeper: republish events a crash (or a bus outage) left unpublished.

Publishing normally happens right after commit (`Services.publish`); this catches the rest.
Delivery is at-least-once, so an event published twice is fine: consumers deduplicate.
"""

from __future__ import annotations

from datetime import timedelta

from shared.app.services import Services
from shared.storage import outbox


def sweep_outbox(svc: Services, *, older_than_seconds: float = 5.0, batch: int = 500) -> int:
    """Republish up to `batch` events older than the grace period; the number republished
    (0 if the bus is still unreachable: they stay in the outbox for the next sweep)."""
    cutoff = svc.clock() - timedelta(seconds=older_than_seconds)
    with svc.db.transaction() as conn:
        pending = outbox.unpublished(conn, cutoff, batch)
    if pending and svc.publish(pending):
        return len(pending)
    return 0
