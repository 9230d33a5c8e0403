"""Wiring: configuration picks the adapters; entry points ask for ready-made services."""

from __future__ import annotations

import threading

from shared.adapters.inprocess_bus import InProcessBus
from shared.adapters.local_scheduler import LocalScheduler
from shared.adapters.local_siblings import PermissiveUserDirectory
from shared.adapters.memory_limiter import MemoryRateLimiter
from shared.app.services import Services
from shared.config import Settings, get_settings
from shared.ports.bus import EventBus
from shared.storage.engine import Database, create_db_engine


def build_bus(settings: Settings) -> EventBus:
    if settings.event_bus == "inprocess":
        return InProcessBus()
    if settings.event_bus == "pubsub":
        from shared.adapters.pubsub_bus import PubSubBus  # the Google client loads only when chosen

        return PubSubBus(
            settings.gcp_project,
            events_topic=settings.pubsub_conversation_topic,
            domain_topic=settings.pubsub_domain_topic,
            create_missing=settings.pubsub_create_missing,
            instance_id=settings.instance_id or None,
        )
    raise ValueError(f"unknown WHISPR_EVENT_BUS {settings.event_bus!r} (inprocess or pubsub)")


def build_services(settings: Settings) -> Services:
    services = Services(
        settings=settings,
        db=Database(create_db_engine(settings)),
        bus=build_bus(settings),
        users=PermissiveUserDirectory(),
        limiter=MemoryRateLimiter(),
    )
    # the scheduler fires through the services it belongs to; long-running entry points start it
    if settings.scheduler == "local":
        services.scheduler = LocalScheduler(services)
    elif settings.scheduler != "none":
        raise ValueError(f"unknown WHISPR_SCHEDULER {settings.scheduler!r} (local or none)")
    return services


_lock = threading.Lock()
_services: Services | None = None


def process_services() -> Services:
    """The process-wide services (a function instance builds them once, at first request)."""
    global _services
    with _lock:
        if _services is None:
            _services = build_services(get_settings())
        return _services
