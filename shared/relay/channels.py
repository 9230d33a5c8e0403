"""One joined topic on one socket (a Phoenix channel): join authorisation, catch-up, client pushes,
and the events the hub delivers to it.

A channel handles its frames one at a time, in order (its own task), like a Phoenix channel
process: two sends from one client get their `seq` in the order they were pushed, while other
channels and heartbeats on the same socket go on meanwhile. The task runs only while frames are
waiting: a joined, quiet channel is a plain object (an idle socket's channels cost no task).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar

import anyio.to_thread
import orjson

from shared.app.batch_send import SendRequest
from shared.app.services import Services
from shared.config import Limits
from shared.domain import rules
from shared.domain.errors import DomainError, Invalid
from shared.domain.models import Actor
from shared.ports.state import StateStore
from shared.relay import calls, protocol
from shared.relay.batching import SendBatcher
from shared.relay.hub import CONVERSATION, USER, Broadcast, Hub
from shared.relay.protocol import Frame, Ref, Version
from shared.relay.typing_indicators import TypingIndicators
from shared.telemetry import tracing

log = logging.getLogger(__name__)

T = TypeVar("T")

MAILBOX_SIZE = 256
MAX_BUFFERED_EVENTS = 10_000  # live events held while a join catches up

# The join's own reasons (realtime.md); every other error keeps the REST API's code.
JOIN_REASONS = {"conversation_not_found": "not_found", "not_a_member": "not_authorized"}
UNMATCHED = "unmatched topic"  # Phoenix's reason for a push on a topic the socket has not joined
# what a push's span is named after (anything else a client sends is a "socket push")
TRACED_EVENTS = frozenset({protocol.JOIN, protocol.LEAVE, calls.NEW_MESSAGE, *calls.PUSHES, *calls.TYPING_EVENTS})


@dataclass
class RelayContext:
    """What every connection of one relay shares."""

    services: Services
    hub: Hub
    presence: StateStore
    typing: TypingIndicators
    sends: SendBatcher  # group commit of new_message pushes
    # the relay's share of the worker threads (and so of the pool): REST keeps the rest
    workers: anyio.CapacityLimiter

    @property
    def limits(self) -> Limits:
        return self.services.settings.limits

    async def call(self, socket: Socket, function: Callable[..., T], *args: Any) -> T:
        """Run a use case in a worker thread for `socket`: at most `ws_worker_slots_per_socket`
        of one socket's calls at once, and at most `workers` of the relay's. One socket's
        backlog waits in its own line, so neither other sockets nor REST wait behind it."""
        async with socket.worker_slots():
            return await anyio.to_thread.run_sync(function, *args, limiter=self.workers)

    @property
    def max_frame_depth(self) -> int:
        """A payload's JSON values as deep as REST allows, plus the frame's own levels."""
        return rules.envelope_depth_limit(self.limits)


class Socket(Protocol):
    """The connection, as its channels see it."""

    version: Version
    actor: Actor
    session_id: str  # the socket's device session in the state store

    def offer(self, frame: str) -> None:
        """Queue a frame without waiting (live events); a socket that cannot keep up is closed."""
        ...

    async def send(self, frame: str) -> None:
        """Queue a frame, waiting while the socket's queue is over half full (replies, catch-up)."""
        ...

    def channel_ended(self, channel: Channel) -> None: ...

    def frame_done(self) -> None:
        """A frame the socket admitted has been handled (its place in the socket's bound frees)."""
        ...

    def worker_slots(self) -> asyncio.Semaphore:
        """The socket's share of worker threads."""
        ...

    def kill(self, code: int, reason: str) -> None:
        """Close the whole socket (slow consumer)."""
        ...


def error_response(error: DomainError) -> dict[str, Any]:
    return protocol.error_response(error.code, error.message, error.details)


def topic_kind(topic: str) -> Literal["user", "conversation"] | None:
    if topic.startswith(USER) and len(topic) > len(USER):
        return "user"
    if topic.startswith(CONVERSATION) and len(topic) > len(CONVERSATION):
        return "conversation"
    return None


def canonical_uuid(value: str) -> str | None:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None


class Channel:
    __slots__ = (
        "_buffer",
        "_high_seq",
        "_mailbox",
        "_revoked",
        "_show_typing",
        "_task",
        "_tracked",
        "ctx",
        "join_ref",
        "kind",
        "socket",
        "state",
        "subject",
        "topic",
        "user_id",
    )

    def __init__(self, ctx: RelayContext, socket: Socket, topic: str, join_ref: Ref):
        self.ctx = ctx
        self.socket = socket
        self.topic = topic
        self.join_ref = join_ref
        self.user_id = socket.actor.user_id
        self.kind = topic_kind(topic)
        self.subject = topic.split(":", 1)[1]
        self.state: Literal["joining", "joined", "closed"] = "joining"
        self._buffer: list[Broadcast] | None = []  # None once live
        self._high_seq: int | None = None  # new_message up to here came from the catch-up
        self._revoked = False
        self._show_typing = True
        self._tracked = False  # present on this topic in the state store
        # Frames waiting, in push order (made on a push, dropped once handled: a quiet channel
        # holds no deque); None in it: the channel ended, stop after what is before it.
        self._mailbox: deque[Frame | None] | None = None
        self._task: asyncio.Task[None] | None = None  # handles the mailbox while it has frames

    # -- frames from the client -------------------------------------------------------------

    def enqueue(self, frame: Frame) -> bool:
        if self._mailbox is None:
            self._mailbox = deque()
        elif len(self._mailbox) >= MAILBOX_SIZE:
            return False
        self._mailbox.append(frame)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"channel {self.topic}")
        return True

    async def _run(self) -> None:
        """Handle the mailbox until it is empty (the next frame starts the task again)."""
        try:
            while self._mailbox:
                frame = self._mailbox.popleft()
                if frame is None:
                    return
                try:
                    if tracing.enabled():  # the one thing a frame pays for tracing when it is off
                        await self._handle_traced(frame)
                    else:
                        await self._handle(frame)
                except Exception:
                    await self._crash(frame)
                finally:
                    self.socket.frame_done()
        finally:
            self._task = None
            self._mailbox = None

    async def _crash(self, frame: Frame) -> None:
        """An unexpected failure (not a domain error): the push gets an error reply, and the
        channel ends with `phx_error` as a crashed Phoenix channel does (clients rejoin)."""
        log.exception("channel %s failed on %s", self.topic, frame.event)
        joined = self.state == "joined"
        self._end()
        await self._reply(frame, "error", protocol.error_response("internal_error", "something went wrong on our side"))
        if joined:
            await self.socket.send(
                protocol.encode(self.socket.version, self.join_ref, self.join_ref, self.topic, protocol.ERROR, {})
            )

    async def _handle_traced(self, frame: Frame) -> None:
        """A push as the root of a trace of its own (a frame carries no context; a socket lives
        too long to make its upgrade request the parent of everything it does): the entry span
        of what it runs, as `HTTP POST` is for REST."""
        name = f"socket {frame.event}" if frame.event in TRACED_EVENTS else "socket push"
        with tracing.span(name, kind=tracing.SERVER, attributes={"whispr.topic": self.topic}):
            await self._handle(frame, tracing.current_traceparent())

    async def _handle(self, frame: Frame, trace: str | None = None) -> None:
        """`trace`: the push's span, when tracing is on (a send's batch runs in another task)."""
        if frame.event == protocol.JOIN:
            await self._join(frame)
        elif self.state != "joined":
            await self._reply(frame, "error", protocol.error_response(UNMATCHED, "join the topic first"))
        elif frame.event == protocol.LEAVE:
            await self._reply(frame, "ok", {})
            self._end()
        elif frame.event in calls.TYPING_EVENTS and self.kind == "conversation":
            await self._typing(frame)
        elif frame.event == calls.NEW_MESSAGE and self.kind == "conversation":
            await self._send(frame, trace)
        elif frame.event in calls.PUSHES and self.kind == "conversation":
            await self._push(frame)
        else:
            await self._reply(
                frame,
                "error",
                protocol.error_response("unknown_event", f"{frame.event!r} is not an event of {self.kind} topics"),
            )

    async def _reply(self, frame: Frame, status: Literal["ok", "error"], response: dict[str, Any]) -> None:
        await self.socket.send(
            protocol.reply(self.socket.version, frame.join_ref, frame.ref, self.topic, status, response)
        )

    async def _push_to_client(self, event: str, payload: dict[str, Any]) -> None:
        await self.socket.send(protocol.encode(self.socket.version, self.join_ref, None, self.topic, event, payload))

    # -- joins ------------------------------------------------------------------------------

    async def _refuse(self, frame: Frame, error: DomainError) -> None:
        response = error_response(error)
        response["reason"] = JOIN_REASONS.get(error.code, error.code)
        self._end()
        await self._reply(frame, "error", response)

    async def _join(self, frame: Frame) -> None:
        if self.kind == "user":
            await self._join_user(frame)
        else:
            await self._join_conversation(frame)

    async def _join_user(self, frame: Frame) -> None:
        svc, actor = self.ctx.services, self.socket.actor
        if self.subject != actor.user_id:
            await self._refuse(frame, DomainError("only the user may join their own topic", code="not_authorized"))
            return
        self.ctx.hub.subscribe(self)
        try:
            summaries = await self.ctx.call(self.socket, calls.conversation_summaries, svc, actor)
        except DomainError as error:
            await self._refuse(frame, error)
            return
        if self.state == "closed":
            return
        await self._reply(frame, "ok", {"user_id": actor.user_id})
        await self._push_to_client("conversation_summaries", {"summaries": summaries})
        self._go_live()

    async def _join_conversation(self, frame: Frame) -> None:
        svc, actor = self.ctx.services, self.socket.actor
        conversation_id = self.subject
        if canonical_uuid(conversation_id) != conversation_id:  # events name topics by canonical ids
            await self._refuse(frame, DomainError("conversation not found", code="conversation_not_found"))
            return
        try:
            after_seq = calls.parse(calls.JoinPayload, frame.payload).last_seq
        except Invalid as error:
            await self._refuse(frame, error)
            return
        # Subscribed before the store is read: whatever commits after that read arrives live,
        # held in the buffer until the catch-up is written.
        self.ctx.hub.subscribe(self)
        try:
            bound = self.ctx.limits.ws_catch_up_max_messages
            joined = await self.ctx.call(
                self.socket, calls.join_conversation, svc, actor, conversation_id, after_seq, bound
            )
        except DomainError as error:
            await self._refuse(frame, error)
            return
        if self.state == "closed":
            return
        self.ctx.hub.baseline(conversation_id, joined.last_seq)
        self._show_typing = joined.show_typing
        response: dict[str, Any] = {"conversation": joined.conversation}
        if after_seq is not None:
            self._high_seq = joined.last_seq
            if joined.use_rest:
                response.update(catch_up="use_rest", last_seq=joined.last_seq)
        await self._reply(frame, "ok", response)
        if self._ended():
            return
        # Tracked before the state is read, so the state has this join too; other instances hear
        # of it through the bus once the store has it (a join after that finds it in the store).
        self.ctx.presence.track(self.socket.session_id, self.topic)
        self._tracked = True
        state = await self.ctx.call(self.socket, self.ctx.presence.presence_state, self.topic)
        if self._ended():  # the socket went away meanwhile
            return
        await self._push_to_client("presence_state", state)
        version = self.socket.version
        for message in joined.replay:
            await self.socket.send(
                protocol.encode_json(version, None, None, self.topic, "new_message", orjson.dumps({"message": message}))
            )
        self._go_live()

    def _ended(self) -> bool:
        """Whether the channel ended (a method: the state changes across awaits)."""
        return self.state == "closed"

    def _go_live(self) -> None:
        held, self._buffer = self._buffer or [], None
        self.state = "joined"
        for broadcast in held:
            self.deliver(broadcast)
        if self._revoked:
            self.revoke()

    # -- pushes -----------------------------------------------------------------------------

    async def _push(self, frame: Frame) -> None:
        call = calls.PUSHES[frame.event]
        try:
            result = await self.ctx.call(
                self.socket, call, self.ctx.services, self.socket.actor, self.subject, frame.payload
            )
        except DomainError as error:
            await self._reply(frame, "error", error_response(error))
            return
        await self._reply(frame, "ok", result)

    async def _send(self, first: Frame, trace: str | None) -> None:
        """`new_message` through group commit. The pushes already queued right behind this one go
        along (one group, never split across batches, so their `seq` follow push order); each
        gets its own reply, in push order, once the batch has committed. `trace`: the first
        push's span (tracing on), which the batch's span continues or links to."""
        frames = [first]
        mailbox = self._mailbox
        while mailbox and len(frames) < self.ctx.sends.max_items:
            queued = mailbox[0]
            if queued is None or queued.event != calls.NEW_MESSAGE:
                break  # handled next, after these
            mailbox.popleft()
            frames.append(queued)
        parsed: list[SendRequest | Invalid] = []
        for frame in frames:
            try:
                parsed.append(calls.send_request(self.socket.actor, self.subject, frame.payload))
            except Invalid as error:
                parsed.append(error)
        requests = [p for p in parsed if isinstance(p, SendRequest)]
        try:
            outcomes = iter(await self.ctx.sends.submit(requests, trace))
        except Exception as error:  # the batch itself failed (not one send): every push of the group did
            outcomes = iter([error] * len(requests))
        crashed = False
        for frame, item in zip(frames, parsed, strict=True):
            result = item if isinstance(item, Invalid) else calls.send_result(next(outcomes))
            if isinstance(result, DomainError):
                await self._reply(frame, "error", error_response(result))
            elif isinstance(result, Exception):
                log.error("channel %s failed on new_message", self.topic, exc_info=result)
                crashed = True
                await self._reply(
                    frame, "error", protocol.error_response("internal_error", "something went wrong on our side")
                )
            else:
                await self._reply(frame, "ok", result)
        for _ in frames[1:]:  # taken from the mailbox along with the first (counted by `_run`)
            self.socket.frame_done()
        if crashed and self.state == "joined":  # as `_crash` does: the channel ends with phx_error
            self._end()
            await self.socket.send(
                protocol.encode(self.socket.version, self.join_ref, self.join_ref, self.topic, protocol.ERROR, {})
            )

    async def _typing(self, frame: Frame) -> None:
        if frame.event == "user_typing":
            try:
                typing = calls.parse(calls.TypingPush, frame.payload).typing
            except Invalid as error:
                await self._reply(frame, "error", error_response(error))
                return
        else:
            typing = frame.event == "typing_start"
        if self._show_typing or not typing:
            self.ctx.typing.typing(self.topic, self.subject, self.user_id, typing)
        if frame.ref is not None:
            await self._reply(frame, "ok", {})

    # -- from the hub -----------------------------------------------------------------------

    def deliver(self, broadcast: Broadcast) -> None:
        if self.state == "closed" or not broadcast.wanted_by(self.user_id):
            return
        if (
            broadcast.name == "new_message"
            and self._high_seq is not None
            and broadcast.seq is not None
            and broadcast.seq <= self._high_seq
        ):
            return  # the catch-up carried it already
        if self._buffer is not None:
            if len(self._buffer) >= MAX_BUFFERED_EVENTS:
                self.socket.kill(1013, "slow consumer")  # cannot keep up with its own catch-up
                return
            self._buffer.append(broadcast)
            return
        self.socket.offer(broadcast.frame(self.socket.version))

    def revoke(self) -> None:
        if self.state == "closed":
            return
        if self._buffer is not None:
            self._revoked = True  # closed once the join's reply and held events are out
            return
        self.close()

    def settings_changed(self, settings: dict[str, Any]) -> None:
        show = settings.get("show_typing")
        if isinstance(show, bool):
            self._show_typing = show
            if not show:
                self.ctx.typing.stop(self.topic, self.subject, self.user_id)

    # -- ending -----------------------------------------------------------------------------

    def close(self) -> None:
        """The server ends the channel: the client gets `phx_close` with this join's ref."""
        if self.state == "closed":
            return
        self.socket.offer(
            protocol.encode(self.socket.version, self.join_ref, self.join_ref, self.topic, protocol.CLOSE, {})
        )
        self._end()

    def _end(self) -> None:
        if self.state == "closed":
            return
        self.state = "closed"
        self._buffer = None
        self.ctx.hub.unsubscribe(self)
        if self._tracked:
            self._tracked = False
            self.ctx.presence.untrack(self.socket.session_id, self.topic)
        if self.kind == "conversation":
            self.ctx.typing.stop(self.topic, self.subject, self.user_id)
        self.socket.channel_ended(self)
        if self._task is not None and self._mailbox is not None:
            self._mailbox.append(None)  # the frames already waiting are still answered

    def disconnect(self) -> None:
        """The socket is gone: clean up and stop at once."""
        self._end()
        self._mailbox = None
        if self._task is not None:
            self._task.cancel()
