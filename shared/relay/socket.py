"""One WebSocket connection: reads frames (size limit, rate limit, heartbeats, idle timeout),
routes them to its channels, and writes frames through a bounded queue.

An idle socket costs one task: the ASGI task that serves it reads its frames itself. Frames
queued during a loop turn are written together at its end, straight to the transport, under the
relay's own protocol (`shared.relay.wire`); a writer task exists only while the transport makes
writes wait. The send queue's buffers exist only while it holds frames, so that tens of
thousands of quiet sockets stay small (docs/performance.md, B3).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import types
from collections import deque
from collections.abc import Awaitable, Coroutine, Generator
from typing import Any, cast

from starlette.types import Scope, Send
from starlette.websockets import WebSocket

from shared.domain.models import Actor
from shared.relay import protocol
from shared.relay.channels import UNMATCHED, Channel, RelayContext, topic_kind
from shared.relay.protocol import Frame, Ref, Version
from shared.relay.wire import EXTENSION as WIRE_EXTENSION
from shared.relay.wire import RelayWebSocketProtocol
from shared.telemetry.metrics import FRAMES_IN, FRAMES_OUT, SOCKET_JOINS

log = logging.getLogger(__name__)

MAX_CHANNELS = 1_000  # joined topics per socket

CLOSE_IDLE = 4000  # no frame (not even a heartbeat) for the idle timeout
CLOSE_TOKEN_EXPIRED = 4001  # the token expired: reconnect with a fresh one (phoenix.js reconnects on any close)
CLOSE_SLOW = 1013  # "try again later": the client did not read its frames fast enough
# The instance is stopping (SIGTERM): reconnect, to another one. 1012 is "service restart" in
# the WebSocket close code registry; phoenix.js reconnects after any close it did not ask for.
CLOSE_DRAINING = (1012, "service restart")


class TokenBucket:
    __slots__ = ("burst", "per_second", "stamp", "tokens")

    def __init__(self, per_second: float, burst: int):
        self.per_second = per_second
        self.burst = float(max(1, burst))
        self.tokens = self.burst
        self.stamp = time.monotonic()

    def take(self) -> float:
        """0 when allowed, else the seconds until a token is there."""
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.per_second)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.per_second if self.per_second > 0 else 60.0


class Outbound:
    """The socket's send queue, bounded in characters. Live events never wait: past the bound the
    socket is a slow consumer and is closed. Replies and catch-up wait for room instead.

    The frame deque and the waiters' list are made when first needed and dropped once empty (an
    empty deque alone is 600 bytes, and most sockets have nothing to send most of the time)."""

    __slots__ = ("_frames", "_roomy", "_size", "closed", "max_chars", "overflowed")

    def __init__(self, max_chars: int):
        self.max_chars = max_chars
        self.overflowed = False
        self.closed = False
        self._frames: deque[str] | None = None
        self._size = 0
        self._roomy: list[asyncio.Future[None]] | None = None  # `put`s waiting for room

    def offer(self, frame: str) -> bool:
        if self.closed:
            return True
        if self._frames and self._size + len(frame) > self.max_chars:
            self.overflowed = True
            return False
        self._append(frame)
        return True

    async def put(self, frame: str) -> None:
        while not self.closed and self._size > self.max_chars // 2:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            if self._roomy is None:
                self._roomy = []
            self._roomy.append(waiter)
            try:
                await waiter
            finally:
                if self._roomy is not None and waiter in self._roomy:
                    self._roomy.remove(waiter)
        if not self.closed:
            self._append(frame)

    def _append(self, frame: str) -> None:
        if self._frames is None:
            self._frames = deque()
        self._frames.append(frame)
        self._size += len(frame)

    def __bool__(self) -> bool:
        """Whether frames are waiting."""
        return bool(self._frames)

    def pop(self) -> str | None:
        """The next frame, or None when there is none."""
        frames = self._frames
        if not frames:
            return None
        frame = frames.popleft()
        if not frames:
            self._frames = None
        self._size -= len(frame)
        if self._size <= self.max_chars // 2:
            self._make_room()
        return frame

    def _make_room(self) -> None:
        waiters, self._roomy = self._roomy, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    def drain(self) -> list[str]:
        """Every waiting frame, in order; the queue is empty after."""
        frames = self._frames
        if not frames:
            return []
        self._frames = None
        self._size = 0
        self._make_room()
        return list(frames)

    def close(self) -> None:
        self.closed = True
        self._frames = None
        self._size = 0
        self._make_room()


class Connection:
    __slots__ = (
        "_close",
        "_drain_until",
        "_expires",
        "_expires_at",
        "_flush_due",
        "_interrupted",
        "_last_frame",
        "_pending",
        "_reader",
        "_send",
        "_settled",
        "_slots",
        "_watchdog",
        "_wire",
        "_writer",
        "actor",
        "bucket",
        "channels",
        "ctx",
        "outbound",
        "session_id",
        "subprotocol",
        "version",
        "ws",
    )

    def __init__(
        self,
        ctx: RelayContext,
        websocket: WebSocket,
        actor: Actor,
        version: Version,
        subprotocol: str | None = None,
        send: Send | None = None,
        served_until: float | None = None,
    ):
        """`served_until`: when the token stops being valid (wall clock, leeway included); the
        socket is closed then (`CLOSE_TOKEN_EXPIRED`), and no frame read after it is handled."""
        self.ctx = ctx
        self.ws = websocket
        self._send = send  # the server's ASGI send (frames written without a task while it allows)
        # The relay's own protocol under uvicorn (frames written straight to the transport).
        wire = websocket.scope.get("extensions", {}).get(WIRE_EXTENSION)
        self._wire = wire if isinstance(wire, RelayWebSocketProtocol) else None
        self._flush_due = False  # a flush of the queue is scheduled for the end of this loop turn
        self.actor = actor
        self.version: Version = version
        self.subprotocol = subprotocol
        limits = ctx.limits
        self.outbound = Outbound(limits.ws_send_queue_bytes)
        self.bucket = TokenBucket(limits.ws_pushes_per_minute / 60.0, limits.ws_push_burst)
        self.channels: dict[str, Channel] = {}
        self.session_id = ""  # the device session in the state store, once accepted
        self._close: tuple[int, str] | None = None
        self._reader: asyncio.Task[None] | None = None  # the serving task, while it reads frames
        self._interrupted = False  # the read loop was told to stop
        self._writer: asyncio.Task[None] | None = None  # only while frames are waiting
        self._expires = served_until
        self._expires_at: float | None = None  # `served_until` on the loop's clock, once reading
        self._last_frame = 0.0  # when the last frame came (the loop's clock)
        self._watchdog: asyncio.TimerHandle | None = None  # ends a silent or expired socket (`_watch`)
        self._pending = 0  # admitted frames (joins, pushes) not yet handled by their channel
        self._slots: asyncio.Semaphore | None = None  # made at the first worker-thread call
        self._drain_until: float | None = None  # draining: the loop time by which it closes
        self._settled: asyncio.Future[None] | None = None  # resolved once no admitted frame is left

    # -- the Socket interface channels use ------------------------------------------------

    def offer(self, frame: str) -> None:
        if not self.outbound.offer(frame):
            self.kill(CLOSE_SLOW, "slow consumer")
            return
        self._wake_writer()

    async def send(self, frame: str) -> None:
        await self.outbound.put(frame)
        self._wake_writer()

    def channel_ended(self, channel: Channel) -> None:
        if self.channels.get(channel.topic) is channel:
            del self.channels[channel.topic]

    def frame_done(self) -> None:
        self._pending -= 1
        if self._pending <= 0 and self._settled is not None and not self._settled.done():
            self._settled.set_result(None)

    def worker_slots(self) -> asyncio.Semaphore:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.ctx.limits.ws_worker_slots_per_socket)
        return self._slots

    def drain(self, until: float) -> None:
        """The instance is stopping: read no more frames, answer those already admitted (their
        replies are written), then close with `CLOSE_DRAINING` so that the client reconnects
        elsewhere; by `until` (the loop's clock) at the latest, answered or not."""
        if self._close is None:
            self._close = CLOSE_DRAINING
            self._drain_until = until
            log.debug("draining socket of %s", self.actor.user_id)
        self._interrupt()

    def kill(self, code: int, reason: str) -> None:
        if self._close is None:
            self._close = (code, reason)
            log.info("closing socket of %s: %s", self.actor.user_id, reason)
            if self._flush_due and code != CLOSE_SLOW:
                self._flush()  # what was queued before the close goes out before it, as when written at once
        self.outbound.close()
        self._interrupt()

    # -- the connection's life ------------------------------------------------------------

    async def serve(self) -> None:
        await self.ws.accept(subprotocol=self.subprotocol)
        forget_upgrade(self.ws.scope)
        self.session_id = self.ctx.presence.connect(self.actor.user_id, self.actor.device_id).session_id
        task = asyncio.current_task()
        assert task is not None
        self._reader = task
        try:
            await self._read()
        except asyncio.CancelledError:
            if not self._interrupted:
                raise  # not ours (the server is stopping): clean up and go on cancelling
            task.uncancel()
        finally:
            await self._end()

    async def _end(self) -> None:
        try:
            if self._drain_until is not None:
                await self._settle(self._drain_until)
        finally:
            if self._flush_due:
                self._flush()  # what this turn queued (a drained push's reply) goes out before the close
            self._reader = None
            writer = self._writer
            if writer is not None:
                writer.cancel()
                await asyncio.gather(writer, return_exceptions=True)
            # The session ends before its channels do: its topics' leaves carry last_seen.
            self.ctx.presence.disconnect(self.session_id)
            for channel in list(self.channels.values()):
                channel.disconnect()
            self.channels.clear()
            self.outbound.close()
            if self._close is not None:
                # A client that does not read may never make room for the close frame.
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self.ws.close(*self._close), timeout=1.0)

    def _interrupt(self) -> None:
        """Stop the read loop: at once when it waits for a frame (the serving task is cancelled
        and `serve` takes the cancellation back), after the current frame when it is the caller,
        before its first frame when it has not started reading yet."""
        if self._interrupted:
            return
        self._interrupted = True
        reader = self._reader
        if reader is not None and reader is not asyncio.current_task():
            reader.cancel()

    async def _settle(self, until: float) -> None:
        """Draining: wait until every admitted frame is handled and what it queued is written,
        or until `until`; the channels stay subscribed meanwhile (live events still go out)."""
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout_at(until):
                while self._pending > 0 or self._writer is not None:
                    if self._pending > 0:
                        self._settled = loop.create_future()
                        await self._settled
                    elif self._writer is not None:
                        await asyncio.wait({self._writer})
        except TimeoutError:
            log.warning(
                "socket of %s closed with %d frames unanswered: drain window over", self.actor.user_id, self._pending
            )
        finally:
            self._settled = None

    def _wake_writer(self) -> None:
        if self._writer is None and self.outbound and self._reader is not None:
            if self._wire is not None:
                if not self._flush_due:
                    self._flush_due = True
                    asyncio.get_running_loop().call_soon(self._flush)
            elif self._send is not None:
                self._write_now(self._send)
            else:
                self._writer = asyncio.get_running_loop().create_task(self._write(), name="relay write")

    def _flush(self) -> None:
        """Write every frame queued during this loop turn in one `transport.write`; when the
        transport cannot take them now (paused, closing), the ASGI send takes over, waiting or
        failing as it does."""
        self._flush_due = False
        wire = self._wire
        if self._writer is not None or self._reader is None or not self.outbound or wire is None:
            return
        if not wire.can_write():
            if self._send is not None:
                self._write_now(self._send)
            return
        frames = self.outbound.drain()
        FRAMES_OUT.inc(len(frames))
        try:
            wire.write_texts(frames)
        except Exception:  # the client went away: the connection ends
            self._interrupt()

    def _write_now(self, send: Send) -> None:
        """Write what is queued at once, without a task, while the server's send completes
        without waiting (uvicorn's sans-I/O protocol writes to the transport and returns: most
        of a socket's cost per frame was the task made to write it). A send that does wait
        (a server with flow control) is finished, with the rest of the queue, by a writer task."""
        while (frame := self.outbound.pop()) is not None:
            FRAMES_OUT.inc()
            step = cast(Coroutine[Any, Any, None], send({"type": "websocket.send", "text": frame}))
            try:
                waiting = step.send(None)
            except StopIteration:
                continue
            except Exception:  # the client went away: the connection ends
                self._interrupt()
                return
            self._writer = asyncio.get_running_loop().create_task(self._finish(step, waiting), name="relay write")
            return

    async def _finish(self, step: Coroutine[Any, Any, None], waiting: Any) -> None:
        try:
            await cast(Awaitable[None], _resume(step, waiting))
        except Exception:
            self._interrupt()
            self._writer = None
            return
        await self._write()

    async def _write(self) -> None:
        """Send what is queued, then end (the next frame starts a new writer)."""
        try:
            while (frame := self.outbound.pop()) is not None:
                FRAMES_OUT.inc()
                await self.ws.send_text(frame)
        except Exception:  # the client went away: the connection ends
            self._interrupt()
        finally:
            self._writer = None

    async def _read(self) -> None:
        receive = self.ws.receive
        clock = asyncio.get_running_loop().time
        served_until = self._expires  # wall clock; `_expires_at`: the same moment on the loop's clock
        self._expires_at = None if served_until is None else clock() + (served_until - time.time())
        self._last_frame = clock()
        self._watch()
        try:
            while not self._interrupted:
                message = await receive()
                self._last_frame = clock()
                if message["type"] == "websocket.disconnect":
                    return
                if served_until is not None and time.time() >= served_until:  # read after expiry: never handled
                    self.kill(CLOSE_TOKEN_EXPIRED, "token_expired")
                    return
                text = message.get("text")
                if text is None:
                    self._error(
                        None, None, protocol.HEARTBEAT_TOPIC, "invalid_frame", "frames are JSON text, not binary"
                    )
                    continue
                self._on_text(text)
        finally:
            if self._watchdog is not None:
                self._watchdog.cancel()
                self._watchdog = None

    def _watch(self) -> None:
        """Arm the one timer that ends the socket when it has been silent for the idle timeout
        (`CLOSE_IDLE`) or when its token expires (`CLOSE_TOKEN_EXPIRED`), whichever comes first.
        A frame only notes the time it came (`_last_frame`): the timer, when it fires early
        because frames came meanwhile, arms itself again for the new deadline. (A timeout
        around each read cost a timer made and cancelled, and a context manager, per frame.)"""
        deadline = self._last_frame + self.ctx.limits.ws_idle_timeout_seconds
        expires = self._expires_at
        if expires is not None and expires < deadline:
            deadline = expires
        self._watchdog = asyncio.get_running_loop().call_at(deadline, self._watched)

    def _watched(self) -> None:
        self._watchdog = None
        if self._interrupted:
            return
        now = asyncio.get_running_loop().time()
        if self._expires_at is not None and now >= self._expires_at:
            self.kill(CLOSE_TOKEN_EXPIRED, "token_expired")
        elif now >= self._last_frame + self.ctx.limits.ws_idle_timeout_seconds:
            self.kill(CLOSE_IDLE, "idle timeout")
        else:
            self._watch()

    # -- frames ---------------------------------------------------------------------------

    def _error(
        self, join_ref: Ref, ref: Ref, topic: str, reason: str, message: str, details: dict[str, object] | None = None
    ) -> None:
        self.offer(
            protocol.reply(
                self.version,
                join_ref,
                ref,
                topic,
                "error",
                protocol.error_response(reason, message, dict(details or {})),
            )
        )

    def _on_text(self, text: str) -> None:
        FRAMES_IN.inc()
        limit = self.ctx.limits.ws_max_frame_bytes
        size = len(text) if len(text) > limit or len(text) * 4 <= limit else len(text.encode("utf-8"))
        if size > limit:
            self.bucket.take()  # bad frames spend the push budget too
            join_ref, ref, topic = protocol.peek(text, self.version)  # the reply goes to the push
            self._error(
                join_ref, ref, topic, "frame_too_large", f"frames are at most {limit} bytes", {"max_bytes": limit}
            )
            return
        try:
            frame = protocol.decode(text, self.version, self.ctx.max_frame_depth)
        except protocol.FrameError as error:
            self.bucket.take()
            self._error(error.join_ref, error.ref, error.topic, error.reason, error.message)
            return
        if frame.topic == protocol.HEARTBEAT_TOPIC:
            if frame.event == protocol.HEARTBEAT:
                self.offer(protocol.reply(self.version, frame.join_ref, frame.ref, frame.topic, "ok", {}))
            else:
                self._error(frame.join_ref, frame.ref, frame.topic, "unknown_event", "only heartbeats go to phoenix")
            return
        self.ctx.presence.activity(self.session_id)  # heartbeats are not activity; any push is
        wait = self.bucket.take()
        if wait:
            retry = max(1, round(wait))
            self._error(
                frame.join_ref,
                frame.ref,
                frame.topic,
                "rate_limited",
                "too many pushes on this connection; slow down",
                {"retry_after": retry},
            )
            return
        if self._pending >= self.ctx.limits.ws_max_pending_per_socket:  # one socket's backlog is bounded
            self._error(
                frame.join_ref,
                frame.ref,
                frame.topic,
                "rate_limited",
                "too many joins and pushes waiting on this connection",
                {"retry_after": 1},
            )
            return
        if frame.event == protocol.JOIN:
            self._join(frame)
            return
        channel = self.channels.get(frame.topic)
        if channel is None:
            self._error(frame.join_ref, frame.ref, frame.topic, UNMATCHED, "join the topic first")
        elif channel.enqueue(frame):
            self._pending += 1
        else:
            self._error(
                frame.join_ref,
                frame.ref,
                frame.topic,
                "rate_limited",
                "too many pushes waiting on this topic",
                {"retry_after": 1},
            )

    def _join(self, frame: Frame) -> None:
        SOCKET_JOINS.inc()
        if topic_kind(frame.topic) is None:
            self._error(frame.join_ref, frame.ref, frame.topic, UNMATCHED, "topics are user:<id> and conversation:<id>")
            return
        previous = self.channels.get(frame.topic)
        if previous is not None:
            previous.close()  # a second join replaces the first: the old one gets phx_close
        elif len(self.channels) >= MAX_CHANNELS:
            self._error(
                frame.join_ref,
                frame.ref,
                frame.topic,
                "too_many_channels",
                f"a socket joins at most {MAX_CHANNELS} topics",
            )
            return
        channel = Channel(self.ctx, self, frame.topic, frame.join_ref if frame.join_ref is not None else frame.ref)
        self.channels[frame.topic] = channel
        channel.enqueue(frame)
        self._pending += 1


def forget_upgrade(scope: Scope) -> None:
    """Drop what only the upgrade needed from the socket's ASGI scope, which lives as long as
    the socket (the server's protocol holds it): its headers (Starlette's `Headers` of it share
    the list), its query (the token) and the subprotocols offered (phoenix.js 1.8 offers the
    token as one). Read once the socket is accepted: authentication, the client's address, the
    request id and the subprotocol are taken by then (docs/performance.md, B3)."""
    headers = scope.get("headers")
    if isinstance(headers, list):
        headers.clear()
    scope["query_string"] = b""
    scope["subprotocols"] = []


@types.coroutine
def _resume(step: Coroutine[Any, Any, None], waiting: Any) -> Generator[Any, Any, None]:
    """Go on running a coroutine that was started by hand and is waiting on `waiting`, as if it
    had been awaited from the start (what the task awaiting this hands in goes on to it)."""
    while True:
        try:
            sent = yield waiting
        except BaseException as error:
            try:
                waiting = step.throw(error)
            except StopIteration:
                return
        else:
            try:
                waiting = step.send(sent)
            except StopIteration:
                return
