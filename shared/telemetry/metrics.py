"""Metrics (prometheus-client), exposed at `/metrics` on the relay and the local gateway, and on
`WHISPR_METRICS_PORT` by the gRPC shim.

The instruments are module-level: recording is a lock and an addition (a fraction of a
microsecond), cheap enough for the socket hot path. What is read rather than counted (the
database pool, the outbox's oldest unpublished event) is measured when `/metrics` is scraped,
by `ServiceCollector`. Names and what each is for: docs/operations.md, "Metrics".
"""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response

if TYPE_CHECKING:
    from shared.app.services import Services

log = logging.getLogger(__name__)

_FAST = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_LAG = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0)

HTTP_REQUESTS = Counter(
    "whispr_http_requests_total", "REST requests answered, by route template and status", ["route", "method", "status"]
)
HTTP_SECONDS = Histogram(
    "whispr_http_request_duration_seconds",
    "REST request latency, by route template",
    ["route", "method"],
    buckets=_FAST,
)
SOCKETS_OPEN = Gauge("whispr_sockets_open", "WebSockets open on this instance")
SOCKET_JOINS = Counter("whispr_socket_joins_total", "channel joins asked for")
FRAMES_IN = Counter("whispr_socket_frames_in_total", "frames received from clients")
FRAMES_OUT = Counter("whispr_socket_frames_out_total", "frames written to clients")
SEND_BATCH_SIZE = Histogram(
    "whispr_send_batch_size",
    "sends (socket, and REST in the gateway) per group-commit transaction",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
SEND_COMMIT_SECONDS = Histogram(
    "whispr_send_commit_duration_seconds", "time to store one group-commit batch", buckets=_FAST
)
BUS_PUBLISH_SECONDS = Histogram(
    "whispr_bus_publish_duration_seconds", "time to publish committed events to the bus", buckets=_FAST
)
BUS_PUBLISH_FAILURES = Counter("whispr_bus_publish_failures_total", "publishes left to the outbox sweeper")
SCHEDULER_LAG_SECONDS = Histogram(
    "whispr_scheduler_lag_seconds", "from a scheduled message's due time to its send", buckets=_LAG
)
SIBLING_CALL_SECONDS = Histogram(
    "whispr_sibling_call_duration_seconds", "gRPC calls to sibling services", ["service", "outcome"], buckets=_FAST
)
SIBLING_BREAKER_OPEN = Gauge(
    "whispr_sibling_breaker_open", "1 while a sibling service's circuit is open (calls fail at once)", ["service"]
)


def observe_request(route: str, method: str, status: int, seconds: float) -> None:
    HTTP_REQUESTS.labels(route, method, str(status)).inc()
    HTTP_SECONDS.labels(route, method).observe(seconds)


class ServiceCollector(Collector):
    """Read at scrape time, over every Services object of the process: the database pools'
    connections, and the age of the oldest event an outbox still holds (how far publishing is
    behind; the sweeper republishes it)."""

    def __init__(self) -> None:
        self.services: weakref.WeakValueDictionary[int, Services] = weakref.WeakValueDictionary()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        pools = GaugeMetricFamily("whispr_db_pool_connections", "database connections, by state", labels=["state"])
        in_use = idle = 0.0
        lag = 0.0
        for services in list(self.services.values()):
            pool = services.db.engine.pool
            checked_out, checked_in = getattr(pool, "checkedout", None), getattr(pool, "checkedin", None)
            if callable(checked_out) and callable(checked_in):
                in_use, idle = in_use + checked_out(), idle + checked_in()
            try:
                lag = max(lag, _outbox_lag(services))
            except Exception:  # the store is down: the scrape still answers
                log.warning("outbox lag unavailable", exc_info=True)
        pools.add_metric(["in_use"], in_use)
        pools.add_metric(["idle"], idle)
        yield pools
        outbox = GaugeMetricFamily("whispr_outbox_lag_seconds", "age of the oldest event not yet published (0: none)")
        outbox.add_metric([], lag)
        yield outbox


def _outbox_lag(services: Services) -> float:
    from shared.storage import outbox

    with services.db.transaction() as conn:
        oldest = outbox.oldest_unpublished(conn)
    return 0.0 if oldest is None else max(0.0, (services.clock() - oldest).total_seconds())


_COLLECTOR = ServiceCollector()
REGISTRY.register(_COLLECTOR)


def register_services(services: Services) -> None:
    """Measure these services' pool and outbox at every scrape."""
    _COLLECTOR.services[id(services)] = services


async def metrics_endpoint(request: Request) -> Response:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


@contextmanager
def served_apart(services: Services, host: str, port: int) -> Iterator[None]:
    """`/metrics` on a port of its own (WHISPR_METRICS_PORT; 0: none), from a daemon thread,
    while the block runs: where the Managed Prometheus sidecar scrapes it inside a Cloud Run
    instance, apart from the port the process takes requests on (the relay's is public, the gRPC
    shim's speaks no HTTP/1). Stopped after the block, so the last scrape sees all it did."""
    if not port:
        yield
        return
    register_services(services)
    server, _thread = start_http_server(port, host, REGISTRY)
    log.info("Prometheus metrics on http://%s:%s/metrics", host, port)
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()


class Stopwatch:
    """`with Stopwatch() as watch: ...; watch.seconds`."""

    __slots__ = ("seconds", "started")

    def __enter__(self) -> Stopwatch:
        self.started = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.started
