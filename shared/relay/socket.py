"""One WebSocket connection: reads frames (size limit, rate limit, heartbeats, idle timeout),
routes them to its channels, and writes frames through a bounded queue."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque

from starlette.websockets import WebSocket

from shared.domain.models import Actor
from shared.relay import protocol
from shared.relay.channels import UNMATCHED, Channel, RelayContext, topic_kind
from shared.relay.protocol import Frame, Ref, Version

log = logging.getLogger(__name__)

MAX_CHANNELS = 1_000  # joined topics per socket
PEEK_LIMIT = 1024 * 1024  # oversized frames up to this size are parsed for their ref, to reply to it

CLOSE_IDLE = 4000  # no frame (not even a heartbeat) for the idle timeout
CLOSE_SLOW = 1013  # "try again later": the client did not read its frames fast enough


class TokenBucket:
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
    socket is a slow consumer and is closed. Replies and catch-up wait for room instead."""

    def __init__(self, max_chars: int):
        self.max_chars = max_chars
        self.overflowed = False
        self.closed = False
        self._frames: deque[str] = deque()
        self._size = 0
        self._ready = asyncio.Event()
        self._roomy = asyncio.Event()
        self._roomy.set()

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
            self._roomy.clear()
            await self._roomy.wait()
        if not self.closed:
            self._append(frame)

    def _append(self, frame: str) -> None:
        self._frames.append(frame)
        self._size += len(frame)
        self._ready.set()

    async def get(self) -> str:
        while not self._frames:
            self._ready.clear()
            await self._ready.wait()
        frame = self._frames.popleft()
        self._size -= len(frame)
        if self._size <= self.max_chars // 2:
            self._roomy.set()
        return frame

    def close(self) -> None:
        self.closed = True
        self._frames.clear()
        self._size = 0
        self._roomy.set()


class Connection:
    def __init__(self, ctx: RelayContext, websocket: WebSocket, actor: Actor, version: Version,
                 subprotocol: str | None = None):
        self.ctx = ctx
        self.ws = websocket
        self.actor = actor
        self.version: Version = version
        self.subprotocol = subprotocol
        limits = ctx.limits
        self.outbound = Outbound(limits.ws_send_queue_bytes)
        self.bucket = TokenBucket(limits.ws_pushes_per_minute / 60.0, limits.ws_push_burst)
        self.channels: dict[str, Channel] = {}
        self.session_id = ""  # the device session in the state store, once accepted
        self._done = asyncio.Event()
        self._close: tuple[int, str] | None = None

    # -- the Socket interface channels use ------------------------------------------------

    def offer(self, frame: str) -> None:
        if not self.outbound.offer(frame):
            self.kill(CLOSE_SLOW, "slow consumer")

    async def send(self, frame: str) -> None:
        await self.outbound.put(frame)

    def channel_ended(self, channel: Channel) -> None:
        if self.channels.get(channel.topic) is channel:
            del self.channels[channel.topic]

    def kill(self, code: int, reason: str) -> None:
        if self._close is None:
            self._close = (code, reason)
            log.info("closing socket of %s: %s", self.actor.user_id, reason)
        self.outbound.close()
        self._done.set()

    # -- the connection's life ------------------------------------------------------------

    async def serve(self) -> None:
        await self.ws.accept(subprotocol=self.subprotocol)
        self.session_id = self.ctx.presence.connect(self.actor.user_id, self.actor.device_id).session_id
        tasks = [asyncio.create_task(self._read(), name="relay read"),
                 asyncio.create_task(self._write(), name="relay write")]
        for task in tasks:
            task.add_done_callback(lambda _: self._done.set())
        try:
            await self._done.wait()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
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

    async def _write(self) -> None:
        while True:
            frame = await self.outbound.get()
            await self.ws.send_text(frame)

    async def _read(self) -> None:
        idle = self.ctx.limits.ws_idle_timeout_seconds
        while True:
            try:
                message = await asyncio.wait_for(self.ws.receive(), timeout=idle)
            except TimeoutError:
                self.kill(CLOSE_IDLE, "idle timeout")
                return
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            if text is None:
                self._error(None, None, protocol.HEARTBEAT_TOPIC, "invalid_frame",
                            "frames are JSON text, not binary")
                continue
            self._on_text(text)

    # -- frames ---------------------------------------------------------------------------

    def _error(self, join_ref: Ref, ref: Ref, topic: str, reason: str, message: str,
               details: dict[str, object] | None = None) -> None:
        self.offer(protocol.reply(self.version, join_ref, ref, topic, "error",
                                  protocol.error_response(reason, message, dict(details or {}))))

    def _on_text(self, text: str) -> None:
        limit = self.ctx.limits.ws_max_frame_bytes
        size = len(text) if len(text) > limit or len(text) * 4 <= limit else len(text.encode("utf-8"))
        if size > limit:
            self.bucket.take()  # bad frames spend the push budget too
            join_ref, ref, topic = protocol.peek(text, self.version) if size <= PEEK_LIMIT else (None, None, "phoenix")
            self._error(join_ref, ref, topic, "frame_too_large",
                        f"frames are at most {limit} bytes", {"max_bytes": limit})
            return
        try:
            frame = protocol.decode(text, self.version)
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
            self._error(frame.join_ref, frame.ref, frame.topic, "rate_limited",
                        "too many pushes on this connection; slow down", {"retry_after": retry})
            return
        if frame.event == protocol.JOIN:
            self._join(frame)
            return
        channel = self.channels.get(frame.topic)
        if channel is None:
            self._error(frame.join_ref, frame.ref, frame.topic, UNMATCHED, "join the topic first")
        elif not channel.enqueue(frame):
            self._error(frame.join_ref, frame.ref, frame.topic, "rate_limited",
                        "too many pushes waiting on this topic", {"retry_after": 1})

    def _join(self, frame: Frame) -> None:
        if topic_kind(frame.topic) is None:
            self._error(frame.join_ref, frame.ref, frame.topic, UNMATCHED,
                        "topics are user:<id> and conversation:<id>")
            return
        previous = self.channels.get(frame.topic)
        if previous is not None:
            previous.close()  # a second join replaces the first: the old one gets phx_close
        elif len(self.channels) >= MAX_CHANNELS:
            self._error(frame.join_ref, frame.ref, frame.topic, "too_many_channels",
                        f"a socket joins at most {MAX_CHANNELS} topics")
            return
        channel = Channel(self.ctx, self, frame.topic, frame.join_ref if frame.join_ref is not None else frame.ref)
        self.channels[frame.topic] = channel
        channel.enqueue(frame)
