"""Wiring: configuration picks the adapters; entry points ask for ready-made services."""

from __future__ import annotations

import threading

from shared.adapters.inprocess_bus import InProcessBus
from shared.adapters.local_siblings import PermissiveUserDirectory
from shared.adapters.memory_limiter import MemoryRateLimiter
from shared.app.services import Services
from shared.config import Settings, get_settings
from shared.storage.engine import Database, create_db_engine


def build_services(settings: Settings) -> Services:
    return Services(
        settings=settings,
        db=Database(create_db_engine(settings)),
        bus=InProcessBus(),
        users=PermissiveUserDirectory(),
        limiter=MemoryRateLimiter(),
    )


_lock = threading.Lock()
_services: Services | None = None


def process_services() -> Services:
    """The process-wide services (a function instance builds them once, at first request)."""
    global _services
    with _lock:
        if _services is None:
            _services = build_services(get_settings())
        return _services
