"""Topic -> joined channels, fed by the event bus.

The bus calls subscribers in whatever thread published (InProcessBus: the worker thread that ran
the use case), so events are handed to the event loop with `call_soon_threadsafe`; everything
else here runs on the loop and needs no lock. Each event's payload is encoded to JSON once, and
each topic's frame once per serializer version, whatever the number of sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import OrderedDict
from datetime import datetime, timezone
from typing import Any, Protocol

import anyio.to_thread
import orjson

from shared.ports.bus import EventBus, PublishedEvent
from shared.relay import protocol
from shared.relay.protocol import Version
from shared.relay.sequencer import Fill, Sequencer
from shared.telemetry import tracing

log = logging.getLogger(__name__)

EPHEMERAL_BACKLOG = 10_000
CONVERSATION = "conversation:"
USER = "user:"


class Broadcast:
    """One event on one topic, its frame encoded at most once per serializer version."""

    __slots__ = ("_frames", "audience", "exclude_user", "name", "payload_json", "seq", "topic")

    def __init__(
        self,
        name: str,
        topic: str,
        payload_json: bytes,
        seq: int | None = None,
        *,
        audience: frozenset[str] | None = None,
        exclude_user: str | None = None,
    ):
        self.name = name
        self.topic = topic
        self.payload_json = payload_json
        self.seq = seq
        self.audience = audience  # when set, only these users' channels get it
        self.exclude_user = exclude_user  # e.g. a typist does not hear their own typing
        self._frames: dict[Version, str] = {}

    def frame(self, version: Version) -> str:
        frame = self._frames.get(version)
        if frame is None:
            frame = protocol.encode_json(version, None, None, self.topic, self.name, self.payload_json)
            self._frames[version] = frame
        return frame

    def wanted_by(self, user_id: str) -> bool:
        if self.exclude_user is not None and self.exclude_user == user_id:
            return False
        return self.audience is None or user_id in self.audience


class Subscriber(Protocol):
    """A joined channel, as the hub sees it."""

    topic: str
    user_id: str

    def deliver(self, broadcast: Broadcast) -> None: ...

    def revoke(self) -> None:
        """The user lost the right to this topic: end the channel (phx_close)."""
        ...

    def settings_changed(self, settings: dict[str, Any]) -> None: ...


def _users_of(topics: tuple[str, ...]) -> set[str]:
    return {t[len(USER) :] for t in topics if t.startswith(USER)}


def audience_of(event: PublishedEvent) -> frozenset[str] | None:
    """Who may get a message event on the conversation topic: the members at commit time (the
    core addresses their `user:` topics) and the sender. Closes the race where a message sent
    right after a removal is dispatched before the removal."""
    if event.name in ("new_message", "message_updated"):
        message = event.payload.get("message")
        sender = message.get("sender_id") if isinstance(message, dict) else None
        users = _users_of(event.topics)
        if isinstance(sender, str):
            users.add(sender)
        return frozenset(users)
    if event.name == "message_deleted" and event.payload.get("delete_for_everyone"):
        return frozenset(_users_of(event.topics))
    return None


class Hub:
    def __init__(
        self, bus: EventBus, *, dedupe_window: int = 10_000, fill: Fill | None = None, gap_seconds: float = 0.5
    ):
        self._bus = bus
        # new_message in seq order, once
        self.sequencer = Sequencer(self._deliver, fill, gap_seconds, wanted=self._listened)
        self._topics: dict[str, dict[Subscriber, None]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._dedupe_window = dedupe_window
        self._ephemeral: asyncio.Queue[PublishedEvent] | None = None
        self._ephemeral_task: asyncio.Task[None] | None = None
        self._unsubscribe = bus.subscribe(self._from_bus)

    # -- threads -> loop -------------------------------------------------------------------

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def _from_bus(self, event: PublishedEvent) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return  # no socket was ever served: nobody to tell
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(self.dispatch, event)

    def close(self) -> None:
        self._unsubscribe()
        if self._ephemeral_task is not None:
            self._ephemeral_task.cancel()

    # -- registry --------------------------------------------------------------------------

    def subscribe(self, sub: Subscriber) -> None:
        self._topics.setdefault(sub.topic, {})[sub] = None

    def unsubscribe(self, sub: Subscriber) -> None:
        subs = self._topics.get(sub.topic)
        if subs is not None:
            subs.pop(sub, None)
            if not subs:
                del self._topics[sub.topic]

    def subscribers(self, topic: str) -> list[Subscriber]:
        return list(self._topics.get(topic, ()))

    def _listened(self, event: PublishedEvent) -> bool:
        return any(topic in self._topics for topic in event.topics)

    def topic_count(self) -> int:
        return len(self._topics)

    # -- delivery --------------------------------------------------------------------------

    def _duplicate(self, event_id: str) -> bool:
        """At-least-once delivery (the outbox sweeper republishes): drop an event seen already."""
        if event_id in self._seen:
            return True
        self._seen[event_id] = None
        if len(self._seen) > self._dedupe_window:
            self._seen.popitem(last=False)
        return False

    def dispatch(self, event: PublishedEvent) -> None:
        if self._duplicate(event.event_id):
            return
        if event.name == "new_message" and event.conversation_id is not None and event.seq is not None:
            self.sequencer.offer(event)
        else:
            self._deliver(event)

    def baseline(self, conversation_id: str, last_seq: int) -> None:
        """A join read `last_seq` from the store: message events of a conversation this instance
        has not seen yet are ordered from there."""
        self.sequencer.baseline(conversation_id, last_seq)

    def _deliver(self, event: PublishedEvent) -> None:
        if event.trace is None:
            self._write(event)
            return
        with tracing.continued(f"deliver {event.name}", event.trace):
            self._write(event)

    def _write(self, event: PublishedEvent) -> None:
        """Write the event to every socket of this instance on its topics (one encoding)."""
        payload_json: bytes | None = None
        audience = audience_of(event)
        exclude = event.payload.get("user_id") if event.name == "user_typing" else None
        for topic in event.topics:
            subs = self._topics.get(topic)
            if not subs:
                continue
            if payload_json is None:
                payload_json = orjson.dumps(event.payload)
            broadcast = Broadcast(
                event.name,
                topic,
                payload_json,
                event.seq,
                audience=audience if topic.startswith(CONVERSATION) else None,
                exclude_user=exclude if isinstance(exclude, str) else None,
            )
            for sub in list(subs):
                try:
                    sub.deliver(broadcast)
                except Exception:  # one broken socket must not starve the others
                    log.exception("delivering %s on %s failed", event.name, topic)
        self._control(event)

    def _control(self, event: PublishedEvent) -> None:
        """Membership and settings changes act on joined channels at once."""
        conversation_id = event.payload.get("conversation_id") or event.conversation_id
        if not isinstance(conversation_id, str):
            return
        topic = CONVERSATION + conversation_id
        if event.name == "member_removed":
            removed = event.payload.get("user_id")
            for sub in self.subscribers(topic):
                if sub.user_id == removed:
                    sub.revoke()
        elif event.name == "conversation_deleted":
            for sub in self.subscribers(topic):
                sub.revoke()
        elif event.name == "conversation_settings_updated":
            settings = event.payload.get("settings")
            owners = _users_of(event.topics)
            if isinstance(settings, dict):
                for sub in self.subscribers(topic):
                    if sub.user_id in owners:
                        sub.settings_changed(settings)

    def announce(self, name: str, topic: str, payload: dict[str, Any], conversation_id: str | None) -> None:
        """An ephemeral event (presence diffs), from any thread: this instance's channels get it at
        once, every other instance's through the bus (our own copy coming back is a duplicate)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return  # no socket was ever served here: no channel to announce to
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._announce(name, topic, payload, conversation_id)
        else:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(self._announce, name, topic, payload, conversation_id)

    def _announce(self, name: str, topic: str, payload: dict[str, Any], conversation_id: str | None) -> None:
        event = self._ephemeral_event(name, topic, payload, conversation_id)
        self._duplicate(event.event_id)  # seen: the bus's copy is dropped here
        self._deliver(event)
        self._enqueue(event)

    @staticmethod
    def _ephemeral_event(name: str, topic: str, payload: dict[str, Any], conversation_id: str | None) -> PublishedEvent:
        return PublishedEvent(
            position=0,
            event_id=str(uuid.uuid4()),
            name=name,
            topics=(topic,),
            payload=payload,
            conversation_id=conversation_id,
            seq=None,
            created_at=datetime.now(timezone.utc),
        )

    def publish_ephemeral(self, name: str, topic: str, payload: dict[str, Any], conversation_id: str | None) -> None:
        """An event that is never stored (typing) through the bus, so that every relay instance
        hears it. Publishing may block (Pub/Sub waits for the broker), so one worker task hands
        the events, in order, to a thread. Past `EPHEMERAL_BACKLOG` waiting, new ones are dropped:
        typing is best effort and must not grow memory."""
        self._enqueue(self._ephemeral_event(name, topic, payload, conversation_id))

    def _enqueue(self, event: PublishedEvent) -> None:
        if self._ephemeral is None:
            self._ephemeral = asyncio.Queue(EPHEMERAL_BACKLOG)
            self._ephemeral_task = asyncio.get_running_loop().create_task(self._publish_ephemeral(self._ephemeral))
        try:
            self._ephemeral.put_nowait(event)
        except asyncio.QueueFull:
            log.warning("dropping ephemeral %s: the bus is not keeping up", event.name)

    async def _publish_ephemeral(self, queue: asyncio.Queue[PublishedEvent]) -> None:
        while True:
            batch = [await queue.get()]
            while not queue.empty() and len(batch) < 100:
                batch.append(queue.get_nowait())
            try:
                await anyio.to_thread.run_sync(self._bus.publish, batch)
            except Exception:
                log.exception("publishing %d ephemeral events failed", len(batch))
