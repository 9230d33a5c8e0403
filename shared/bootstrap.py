"""Wiring: configuration picks the adapters; entry points ask for ready-made services."""

from __future__ import annotations

import gc
import sys
import threading

from shared.adapters.inprocess_bus import InProcessBus
from shared.adapters.local_scheduler import LocalScheduler
from shared.adapters.local_siblings import DiscardingNotifier, PermissiveMediaLibrary, PermissiveUserDirectory
from shared.adapters.memory_limiter import MemoryRateLimiter
from shared.app.notifications import NotificationWorker
from shared.app.publication_marks import PublicationMarks
from shared.app.services import Services
from shared.config import Settings, get_settings
from shared.ports.bus import EventBus
from shared.ports.scheduler import Scheduler
from shared.ports.siblings import MediaLibrary, Notifier, UserDirectory
from shared.ports.state import StateStore
from shared.storage.engine import Database, create_db_engine
from shared.telemetry.tracing import setup_tracing


def build_bus(settings: Settings) -> EventBus:
    if settings.event_bus == "inprocess":
        return InProcessBus()
    if settings.event_bus == "local":
        from shared.adapters.local_bus import LocalBus

        if not settings.bus_socket:
            raise ValueError("WHISPR_EVENT_BUS=local needs WHISPR_BUS_SOCKET (the broker's socket)")
        return LocalBus(settings.bus_socket)
    if settings.event_bus == "pubsub":
        from shared.adapters.pubsub_bus import PubSubBus  # the Google client loads only when chosen

        return PubSubBus(
            settings.gcp_project,
            events_topic=settings.pubsub_conversation_topic,
            domain_topic=settings.pubsub_domain_topic,
            create_missing=settings.pubsub_create_missing,
            instance_id=settings.instance_id or None,
        )
    raise ValueError(f"unknown WHISPR_EVENT_BUS {settings.event_bus!r} (inprocess, local or pubsub)")


def build_state_store(settings: Settings) -> StateStore:
    if settings.state_store == "memory":
        from shared.relay.presence import Presence

        return Presence(
            instance_id=settings.instance_id or "local", away_after_seconds=settings.limits.presence_away_seconds
        )
    if settings.state_store == "firestore":
        from shared.adapters.firestore_state import FirestoreStateStore  # the Google client loads only when chosen

        return FirestoreStateStore(
            settings.gcp_project,
            database=settings.firestore_database,
            instance_id=settings.instance_id or None,
            away_after_seconds=settings.limits.presence_away_seconds,
            heartbeat_seconds=settings.presence_heartbeat_seconds,
            lease_seconds=settings.presence_lease_seconds,
        )
    raise ValueError(f"unknown WHISPR_STATE_STORE {settings.state_store!r} (memory or firestore)")


def build_user_directory(settings: Settings) -> UserDirectory:
    if not settings.user_service_grpc_endpoint:
        return PermissiveUserDirectory()
    from shared.adapters.grpc_siblings import GrpcUserDirectory, SiblingClient

    endpoint, audience = settings.user_service_grpc_endpoint, settings.user_service_audience
    client = SiblingClient.from_settings("user-service", endpoint, settings, audience)
    return GrpcUserDirectory(client, cache_seconds=settings.block_cache_seconds)


def build_media_library(settings: Settings) -> MediaLibrary:
    if not settings.media_service_grpc_endpoint:
        return PermissiveMediaLibrary()
    from shared.adapters.grpc_siblings import GrpcMediaLibrary, SiblingClient

    endpoint, audience = settings.media_service_grpc_endpoint, settings.media_service_audience
    return GrpcMediaLibrary(SiblingClient.from_settings("media-service", endpoint, settings, audience))


def build_notifier(settings: Settings) -> Notifier:
    if not settings.notification_service_grpc_endpoint:
        return DiscardingNotifier()
    from shared.adapters.grpc_siblings import GrpcNotifier, SiblingClient

    endpoint, audience = settings.notification_service_grpc_endpoint, settings.notification_service_audience
    return GrpcNotifier(SiblingClient.from_settings("notification-service", endpoint, settings, audience))


def build_services(settings: Settings) -> Services:
    setup_tracing(settings)  # WHISPR_TRACE_EXPORTER (none: nothing)
    services = Services(
        settings=settings,
        db=Database(create_db_engine(settings)),
        bus=build_bus(settings),
        users=build_user_directory(settings),
        limiter=MemoryRateLimiter(),  # WHISPR_RATE_LIMITER=sql: replaced just below
        state=build_state_store(settings),
        media=build_media_library(settings),
        notifier=build_notifier(settings),
    )
    if settings.publication_marks_delay > 0:  # long-running components (a function marks each unit)
        services.marks = PublicationMarks(services.db, settings.publication_marks_delay)
    if settings.rate_limiter == "sql":  # one budget for every instance (shared/adapters/sql_limiter.py)
        from shared.adapters.sql_limiter import SqlRateLimiter

        services.limiter = SqlRateLimiter(services.db)
    services.notifications = NotificationWorker(
        services,
        poll_seconds=settings.notifications_poll_seconds,
        max_backoff_seconds=settings.notifications_max_backoff_seconds,
    )
    # the scheduler fires through the services it belongs to; long-running entry points start it
    if settings.scheduler == "local":
        services.scheduler = LocalScheduler(services)
    elif settings.scheduler == "cloudtasks":
        services.scheduler = build_cloud_tasks_scheduler(settings, services)
    elif settings.scheduler != "none":
        raise ValueError(f"unknown WHISPR_SCHEDULER {settings.scheduler!r} (local, cloudtasks or none)")
    return services


def build_cloud_tasks_scheduler(settings: Settings, services: Services) -> Scheduler:
    from datetime import timedelta

    from shared.adapters.cloud_tasks_scheduler import CloudTasksScheduler, build_client

    return CloudTasksScheduler(
        settings.tasks_queue,
        settings.tasks_target_url,
        secret=settings.tasks_secret,
        invoker_email=settings.tasks_invoker_email,
        audience=settings.tasks_audience,
        horizon=timedelta(seconds=settings.tasks_horizon_seconds),
        clock=lambda: services.clock(),  # follows the services' clock (tests move it)
        client_factory=lambda: build_client(settings.tasks_emulator_host),
    )


# Young collections after this many container allocations (CPython's default is 700), then older
# ones after this many young (10) and older-generation (10) collections: see `settle_interpreter`.
GC_THRESHOLDS = (10_000, 20, 20)
# How long a thread that wants the GIL waits before the holder is made to let go (CPython: 5 ms).
SWITCH_INTERVAL_SECONDS = 0.001


def settle_interpreter() -> None:
    """For a long-lived server (`dev`, `relay`, `grpc`), once everything is imported and built and
    before it serves: what the service made at startup (modules, routes, SQLAlchemy's tables and
    pydantic's validators: ~120,000 objects) is moved out of the collector's reach
    (`gc.freeze`, after a collection so that nothing dead is kept), and young collections run
    every 10,000 allocations instead of 700. A full collection went through all of it while
    holding the GIL, every thread stopped: 90-400 ms under B1 at 500 msgs/s, with every message
    in flight delayed by that much (the p99); now it walks what was made since (~15,000), and
    the service's own churn, mostly objects that live for one message, dies before being
    promoted.

    And the GIL changes hands after 1 ms instead of 5 when several threads want it. uvloop runs
    every libuv callback (each socket's read, each timer, the ready queue) taking the GIL anew,
    and the group commit's and the push planner's threads take it back after each PostgreSQL
    round trip: while one of them runs Python, each of those takes waited up to the interval,
    so a batch of ~16 round trips and a loop turn over a few sockets each took several
    intervals (docs/performance.md, issue 16, "the latency tail")."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)


_lock = threading.Lock()
_services: Services | None = None


def process_services() -> Services:
    """The process-wide services (a function instance builds them once, at first request)."""
    global _services
    with _lock:
        if _services is None:
            _services = build_services(get_settings())
        return _services
