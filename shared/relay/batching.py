"""Group commit for socket sends: `new_message` pushes from every channel of this relay are
collected for a short window (`send_batch_window_ms`, counted from the first one waiting) or
until `send_batch_max` are waiting, then run together by one worker-thread call of
`shared.app.batch_send.send_batch`: one transaction, one commit, one outbox publication.

At most `send_batch_parallel` batches are in flight (one by default); sends arriving meanwhile
wait and make the next batch bigger, which is what keeps the commit rate, not the message rate,
the bottleneck. One is faster than two in this process: a batch's waits for PostgreSQL would
overlap with another's, but both threads and the event loop then take turns with the GIL after
every round trip, and two half-size batches pay the per-batch work twice (docs/performance.md,
"One batch in flight"). When more than one slot is free, what is waiting is split between them
(never below `MIN_SPLIT` sends a batch; batches on different conversations overlap, shared ones
serialise on their row locks).
A group submitted together (consecutive pushes of one channel) is never split across batches,
so its sends take their `seq` in push order. Callers get the outcomes only once the batch has
committed (persist before acknowledge).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time
from collections import deque
from dataclasses import dataclass

import anyio.to_thread

from shared.app.batch_send import Outcome, SendRequest, send_batch
from shared.app.services import Services
from shared.telemetry import tracing
from shared.telemetry.metrics import SEND_BATCH_SIZE, SEND_COMMIT_SECONDS

log = logging.getLogger(__name__)

MIN_SPLIT = 8


@dataclass
class _Group:
    requests: list[SendRequest]
    future: asyncio.Future[list[Outcome]]
    arrived: float
    trace: str | None  # the pushes' span (tracing on): the batch's span links to it


class SendBatcher:
    def __init__(self, services: Services, workers: anyio.CapacityLimiter | None = None):
        """`workers`: the worker threads batches run in (the relay's share; None: anyio's default)."""
        settings = services.settings
        self.services = services
        self.workers = workers
        self.window = max(0.0, settings.send_batch_window_ms / 1000.0)
        self.max_items = max(1, settings.send_batch_max)
        self.parallel = max(1, settings.send_batch_parallel)
        self.batches = 0  # batches run so far, and the sends in them (observability, tests)
        self.sends = 0
        self._pending: deque[_Group] = deque()
        self._count = 0
        self._wake: asyncio.Event | None = None
        self._full: asyncio.Event | None = None
        self._slots: asyncio.Semaphore | None = None
        self._task: asyncio.Task[None] | None = None
        self._flushing: set[asyncio.Task[None]] = set()
        self._in_flight = 0

    def submit(self, requests: list[SendRequest], trace: str | None = None) -> asyncio.Future[list[Outcome]]:
        """Queue sends to run together in one batch; the future has one outcome per request.
        `trace`: the `traceparent` of the span the sends belong to (tracing on)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[Outcome]] = loop.create_future()
        if not requests:
            future.set_result([])
            return future
        if self._task is None or self._task.done():
            self._wake, self._full, self._slots = asyncio.Event(), asyncio.Event(), asyncio.Semaphore(self.parallel)
            # a context of its own, not that of the push that happened to start it (its request
            # id, its span): each batch is traced and logged as the sends it carries say
            self._task = loop.create_task(self._run(), name="relay send batcher", context=contextvars.Context())
        assert self._wake is not None and self._full is not None
        self._pending.append(_Group(requests, future, loop.time(), trace))
        self._count += len(requests)
        self._wake.set()
        if self._count >= self.max_items:
            self._full.set()
        return future

    async def _run(self) -> None:
        assert self._wake is not None and self._full is not None and self._slots is not None
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            while self._count < self.max_items:
                left = self._pending[0].arrived + self.window - loop.time()
                if left <= 0:
                    break
                self._full.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._full.wait(), left)
            await self._slots.acquire()
            free = self.parallel - self._in_flight  # this one included
            share = max(min(MIN_SPLIT, self._count), -(-self._count // free))
            groups = self._take(min(self.max_items, share))
            self._in_flight += 1
            if not self._pending:
                self._wake.clear()
            if self._count < self.max_items:
                self._full.clear()
            task = loop.create_task(self._flush(groups), name="relay send batch")
            self._flushing.add(task)
            task.add_done_callback(self._flushing.discard)

    def _take(self, limit: int) -> list[_Group]:
        """Whole groups, oldest first, up to `limit` sends (at least one group)."""
        groups = [self._pending.popleft()]
        taken = len(groups[0].requests)
        while self._pending and taken + len(self._pending[0].requests) <= limit:
            group = self._pending.popleft()
            groups.append(group)
            taken += len(group.requests)
        self._count -= taken
        return groups

    async def _flush(self, groups: list[_Group]) -> None:
        assert self._slots is not None
        requests = [r for g in groups for r in g.requests]
        started = time.perf_counter()
        traces = [g.trace for g in groups if g.trace is not None]
        try:
            with tracing.for_many("send_batch", traces, attributes={"whispr.sends": len(requests)}):
                outcomes = await anyio.to_thread.run_sync(send_batch, self.services, requests, limiter=self.workers)
        except BaseException as error:
            failure = error if isinstance(error, Exception) else RuntimeError("the relay is shutting down")
            for group in groups:
                if not group.future.done():
                    group.future.set_exception(failure)
            if not isinstance(error, Exception):
                raise
            log.exception("a batch of %d sends failed", len(requests))
            return
        finally:
            self._in_flight -= 1
            self._slots.release()
        SEND_COMMIT_SECONDS.observe(time.perf_counter() - started)
        SEND_BATCH_SIZE.observe(len(requests))
        self.batches += 1
        self.sends += len(requests)
        start = 0
        for group in groups:
            end = start + len(group.requests)
            if not group.future.done():  # the channel may be gone (socket closed)
                group.future.set_result(outcomes[start:end])
            start = end

    async def drain(self) -> None:
        """Until every send submitted so far is committed (or failed): the instance is stopping
        and nothing submitted is dropped. The caller bounds the wait."""
        while self._pending or self._flushing:
            if self._flushing:
                await asyncio.wait(set(self._flushing))
            else:
                await asyncio.sleep(self.window or 0.001)  # the batcher takes them at its next turn

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        for group in self._pending:
            if not group.future.done():
                group.future.cancel()
        self._pending.clear()
        self._count = 0
