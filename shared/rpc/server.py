"""The gRPC shim's server: MessagingService, the standard health service (NOT_SERVING while a
dependency of readiness, the store or the bus, does not answer: the same checks as REST's
/health/ready), server reflection, caller authentication, and a graceful stop on SIGTERM
(new calls refused, in-flight ones given `grpc_shutdown_grace_seconds`)."""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from dataclasses import dataclass, field
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from grpc_reflection.v1alpha import reflection

from shared.app.health import check_readiness
from shared.app.services import Services
from shared.protogen.whispr.messaging.v1 import messaging_pb2, messaging_pb2_grpc
from shared.rpc.auth import CallerAuth, CallerCheck
from shared.rpc.servicer import MessagingServicer
from shared.rpc.telemetry import CallTelemetry
from shared.telemetry.metrics import served_apart

log = logging.getLogger(__name__)

SERVICE_NAME = messaging_pb2.DESCRIPTOR.services_by_name["MessagingService"].full_name
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class ReadinessHealth(health_aio.HealthServicer):
    """grpc.health.v1 whose status follows readiness: each Check reruns it (at most once a
    `fresh_for` seconds), and a background task keeps Watch streams current."""

    def __init__(self, services: Services, fresh_for: float = 1.0):
        super().__init__()
        self.services = services
        self.fresh_for = fresh_for
        self._checked_at = -float("inf")
        self._lock = asyncio.Lock()
        self.stopping = False

    async def refresh(self, *, force: bool = False) -> None:
        async with self._lock:
            if not force and time.monotonic() - self._checked_at < self.fresh_for:
                return
            readiness = await asyncio.to_thread(check_readiness, self.services)
            self._checked_at = time.monotonic()
            status = SERVING if readiness.ok and not self.stopping else NOT_SERVING
            for service in ("", SERVICE_NAME):
                await self.set(service, status)

    async def Check(self, request: health_pb2.HealthCheckRequest, context: Any) -> health_pb2.HealthCheckResponse:
        await self.refresh()
        return await super().Check(request, context)

    async def stop_serving(self) -> None:
        self.stopping = True
        await self.enter_graceful_shutdown()


@dataclass
class GrpcServer:
    """A started server: its port, and how to stop it."""

    server: grpc.aio.Server
    port: int
    health: ReadinessHealth
    grace: float
    _watch: asyncio.Task[None] | None = field(default=None, repr=False)

    async def stop(self) -> None:
        """Refuse new calls, let in-flight ones finish within the grace period, then close."""
        await self.health.stop_serving()
        if self._watch is not None:
            self._watch.cancel()
        await self.server.stop(self.grace)


async def start(services: Services, host: str, port: int, *, watch_seconds: float = 5.0) -> GrpcServer:
    """Build and start the server on host:port (0: a free port)."""
    settings = services.settings
    server = grpc.aio.server(
        interceptors=[CallTelemetry(), CallerAuth(CallerCheck(settings))],
        options=[("grpc.so_reuseport", 0), ("grpc.max_receive_message_length", settings.limits.max_request_bytes)],
    )
    messaging_pb2_grpc.add_MessagingServiceServicer_to_server(MessagingServicer(services), server)
    health = ReadinessHealth(services)
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    reflection.enable_server_reflection(
        [SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME], server
    )
    bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise OSError(f"cannot listen on {host}:{port}")
    await server.start()
    await health.refresh(force=True)

    async def watch() -> None:  # keeps Watch streams told when readiness changes
        while True:
            await asyncio.sleep(watch_seconds)
            try:
                await health.refresh(force=True)
            except Exception:  # the probe must keep going
                log.exception("health refresh failed")

    running = GrpcServer(server, bound, health, settings.grpc_shutdown_grace_seconds)
    running._watch = asyncio.create_task(watch())
    return running


async def serve_until_signalled(services: Services, host: str, port: int) -> None:
    """`whispr-messaging grpc`: serve until SIGTERM or SIGINT, then stop gracefully."""
    running = await start(services, host, port)
    log.info("Whispr messaging gRPC on %s:%s (%s, health, reflection)", host, running.port, SERVICE_NAME)
    with served_apart(services, host, services.settings.metrics_port):  # stopped after the calls
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        log.info("stopping: in-flight calls get %ss", running.grace)
        await running.stop()


class BackgroundGrpc:
    """The server on an event loop of its own, in a daemon thread: for `dev` (beside the HTTP
    gateway, which owns the main loop) and for tests."""

    def __init__(self, services: Services, host: str, port: int):
        import threading

        self.loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._error: BaseException | None = None
        self.running: GrpcServer | None = None
        self.thread = threading.Thread(target=self._run, args=(services, host, port), name="grpc", daemon=True)
        self.thread.start()
        self._started.wait(60)
        if self._error is not None:
            raise self._error
        if self.running is None:
            raise RuntimeError("the gRPC server did not start")
        self.port: int = self.running.port

    def _run(self, services: Services, host: str, port: int) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.running = self.loop.run_until_complete(start(services, host, port))
        except BaseException as exc:  # reported to the starting thread
            self._error = exc
            return
        finally:
            self._started.set()
        self.loop.run_forever()

    def stop(self) -> None:
        if self.running is not None and self.loop.is_running():
            asyncio.run_coroutine_threadsafe(self.running.stop(), self.loop).result(60)
            self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)
