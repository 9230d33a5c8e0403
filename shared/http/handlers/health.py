"""Health: liveness answers while the process runs (with its version and time); readiness checks
the store and the bus (`shared.app.health`) and names what failed."""

from __future__ import annotations

from shared.app.health import DRAINING, SERVICE, check_readiness, service_version
from shared.app.views import timestamp
from shared.domain.errors import Unavailable
from shared.http.routing import Call, Reply


def live(call: Call) -> Reply:
    return Reply(
        {"status": "ok", "service": SERVICE, "version": service_version(), "time": timestamp(call.services.clock())}
    )


def ready(call: Call) -> Reply:
    readiness = check_readiness(call.services)
    if not readiness.ok:
        failed = readiness.failed
        if readiness.checks.get("instance") == DRAINING:
            message = "not ready: this instance is shutting down"
        else:
            message = f"not ready: {' and '.join('the ' + name for name in failed)} did not answer"
        raise Unavailable(
            message,
            code="not_ready",
            details={"failed": failed, "checks": readiness.checks},
        )
    return Reply(
        {
            "status": "ok",
            "service": SERVICE,
            "version": service_version(),
            "time": timestamp(readiness.checked_at),
            "checks": readiness.checks,
        }
    )
