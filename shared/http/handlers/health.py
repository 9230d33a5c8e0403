"""Health: liveness answers while the process runs; readiness checks the store."""

from __future__ import annotations

from shared.domain.errors import Unavailable
from shared.http.routing import Call, Reply

SERVICE = "whispr-messaging"


def live(call: Call) -> Reply:
    return Reply({"status": "ok", "service": SERVICE})


def ready(call: Call) -> Reply:
    try:
        call.services.db.ping()
    except Exception as exc:
        raise Unavailable("the store is not reachable", code="store_unavailable") from exc
    return Reply({"status": "ok", "service": SERVICE, "checks": {"store": "ok"}})
