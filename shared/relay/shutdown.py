"""Graceful shutdown of a process that serves sockets: `whispr-messaging relay` (Cloud Run sends
SIGTERM, then SIGKILL 10 s later), `dev` and each worker of `dev --workers N`.

On the first SIGTERM (or SIGINT), within `WHISPR_DRAIN_SECONDS`:

1. readiness answers 503 at once and new upgrades are refused (`Services.draining`); the
   listening sockets close, so new connections go to the other instances;
2. every socket is told to reconnect elsewhere (close 1012 "service restart"), spread over the
   first half of the window, each once the pushes it had admitted are answered
   (`Relay.drain`); the group commit's last batches commit;
3. HTTP requests in flight finish (uvicorn's own shutdown, bounded by what is left);
4. events committed but not yet published leave the outbox (`publish_outbox`);

then the process exits 0. A second signal exits at once. docs/operations.md, "Shutting down".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Generator, Iterable
from types import FrameType

import uvicorn

from shared.app.outbox_sweeper import sweep_outbox
from shared.app.services import Services
from shared.relay.server import Relay

log = logging.getLogger(__name__)

SOCKETS_SHARE = 0.75  # of the window for the sockets; the rest for HTTP requests and the outbox


class GracefulServer(uvicorn.Server):
    """uvicorn, draining the relay's sockets before its own shutdown (which would close them all
    at once), and exiting 0 once drained (uvicorn raises the signal again once it has served)."""

    def __init__(self, config: uvicorn.Config, relay: Relay, signals: Iterable[int] = (signal.SIGTERM, signal.SIGINT)):
        super().__init__(config)
        self.relay = relay
        self.services: Services = relay.services
        self.window = self.services.settings.drain_seconds
        self.signals = tuple(signals)
        self.deadline: float | None = None  # time.monotonic() by which the process is done

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        if threading.current_thread() is not threading.main_thread():  # signals reach the main thread only
            yield
            return
        original = {sig: signal.signal(sig, self.handle_exit) for sig in self.signals}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        name = signal.Signals(sig).name
        if self.should_exit:
            log.warning("%s again: exiting now, without draining", name)
            os._exit(128 + sig)
        self.begin()
        log.info("%s: draining, at most %.1f s (a second signal exits at once)", name, self.window)

    def begin(self) -> None:
        """From now on: not ready, no new socket; the drain runs once the serving loop notices."""
        if self.deadline is None:
            self.deadline = time.monotonic() + self.window
        self.services.draining.set()
        self.should_exit = True

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.begin()  # also when the loop ended without a signal
        assert self.deadline is not None
        for server in self.servers:  # no new connection: the kernel or the load balancer sends them elsewhere
            server.close()
        for sock in sockets or []:
            sock.close()
        loop = asyncio.get_running_loop()
        until = loop.time() + (self.deadline - time.monotonic())
        sockets_until = until - self.window * (1 - SOCKETS_SHARE)
        try:
            async with asyncio.timeout_at(sockets_until):
                await self.relay.drain(sockets_until)
        except TimeoutError:
            log.warning("drain window over: the sockets left are closed now")
        # HTTP requests in flight get what is left (uvicorn hands it to asyncio.wait_for: a float)
        self.config.timeout_graceful_shutdown = max(0.1, until - loop.time())  # type: ignore[assignment]
        await super().shutdown(sockets)


def publish_outbox(services: Services, deadline: float) -> None:
    """Publish what the outbox holds unpublished (a publish that failed, e.g. Pub/Sub
    unreachable), until `deadline` (time.monotonic()). Anyone's events, not only this process's:
    delivery is at least once and consumers deduplicate. What is left waits for the sweep."""
    done = threading.Event()

    def publish() -> None:
        try:
            while time.monotonic() < deadline and sweep_outbox(services, older_than_seconds=0) > 0:
                pass
        except Exception:
            log.exception("publishing the outbox at shutdown failed; left for the sweep")
        finally:
            done.set()

    threading.Thread(target=publish, name="outbox at shutdown", daemon=True).start()
    if not done.wait(max(0.0, deadline - time.monotonic())):
        log.warning("drain window over while publishing the outbox; the rest is left for the sweep")


def serve(
    config: uvicorn.Config,
    relay: Relay,
    sockets: list[socket.socket] | None = None,
    signals: Iterable[int] = (signal.SIGTERM, signal.SIGINT),
) -> None:
    """Serve until a signal, then drain (above) and return: the caller exits 0."""
    server = GracefulServer(config, relay, signals)
    server.run(sockets=sockets)
    if server.deadline is not None:
        publish_outbox(relay.services, server.deadline)
        log.info("drained in %.1f s", server.window - (server.deadline - time.monotonic()))
