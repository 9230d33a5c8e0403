"""Liveness and readiness, for every entry point's probe (REST `/health*`, the relay's).

Readiness asks each dependency a request needs whether it answers right now: the store (one
`SELECT 1`) and the event bus (`EventBus.ping`: the Pub/Sub topic exists and answers; the
in-process bus always does). Every check runs, so a probe says which of them failed, not only
the first."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from importlib import metadata

from shared.app.services import Services

log = logging.getLogger(__name__)

SERVICE = "whispr-messaging"
OK = "ok"


def service_version() -> str:
    """The installed package's version (pyproject.toml), or 0.0.0 when run from a bare tree."""
    try:
        return metadata.version(SERVICE)
    except metadata.PackageNotFoundError:
        return "0.0.0"


@dataclass(frozen=True)
class Readiness:
    checks: dict[str, str]  # check name -> "ok", or "failed (<error type>)"
    checked_at: datetime

    @property
    def failed(self) -> list[str]:
        return [name for name, outcome in self.checks.items() if outcome != OK]

    @property
    def ok(self) -> bool:
        return not self.failed


def dependency_checks(services: Services) -> dict[str, Callable[[], None]]:
    """What readiness asks, by name: each raises if its dependency does not answer."""
    return {"store": services.db.ping, "bus": services.bus.ping}


DRAINING = "draining"


def check_readiness(services: Services, checks: Mapping[str, Callable[[], None]] | None = None) -> Readiness:
    """Run every check (`dependency_checks` unless given) and say how each went. An instance
    told to stop (SIGTERM) is not ready whatever its dependencies say, from that moment: the
    load balancer stops sending it clients while it drains (docs/operations.md)."""
    if services.draining.is_set():
        return Readiness({"instance": DRAINING}, services.clock())
    outcomes: dict[str, str] = {}
    for name, check in (checks if checks is not None else dependency_checks(services)).items():
        try:
            check()
        except Exception as exc:  # any failure means not ready; the probe must answer, not raise
            log.warning("readiness check %s failed: %s", name, exc, exc_info=True)
            outcomes[name] = f"failed ({type(exc).__name__})"  # the details go to the log, not to the open probe
        else:
            outcomes[name] = OK
    return Readiness(outcomes, services.clock())
