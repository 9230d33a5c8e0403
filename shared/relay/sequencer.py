"""`new_message` events in `seq` order, once each, per conversation, whatever the bus does.

The bus delivers at least once, and in order only per publisher: two relay instances (or two
worker threads of one) publish a conversation's messages in commit order only approximately, and
Pub/Sub redelivers. The hub passes every `new_message` through a `Sequencer`, which per
conversation keeps the highest `seq` released (`delivered`) and:

- releases the next `seq` at once, then whatever was held right after it;
- drops a `seq` it released already (a redelivery, or one it filled from the store);
- holds a `seq` past a gap, and if the gap is still open `gap_seconds` later reads the missing
  messages from the store (they committed before the held one: `seq` is taken under the
  conversation's row lock) and releases them in order. A `seq` the store does not have (an
  expired message) is skipped. A gap in a conversation no socket here listens to is not held
  (every instance hears every conversation; only those with listeners pay for a store read).

A conversation's stream starts at the first event seen, or at the `last_seq` a join read from the
store (`baseline`). An event older than the start that was never released here (in flight while
the stream started) is released late rather than lost; clients order by `seq` anyway.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

import anyio.to_thread

from shared.app.access import topic_conversation, topic_user
from shared.app.services import Services
from shared.app.views import message_view
from shared.ports.bus import PublishedEvent
from shared.storage import conversations as conv_store
from shared.storage import history as reads

log = logging.getLogger(__name__)

# (conversation_id, after_seq, before_seq) -> the new_message events strictly between, in order
Fill = Callable[[str, int, int], list[PublishedEvent]]

MAX_STREAMS = 100_000  # conversations remembered; the least recently used idle ones go first
MAX_HELD = 10_000  # events held behind a gap before the store is asked at once
MAX_LATE = 256  # late seqs (older than a stream's start) remembered as released
MAX_FILL = 1_000  # messages read from the store for one gap; past that clients catch up by REST
NOBODY = "00000000-0000-0000-0000-000000000000"  # hides nothing: fills read every message


@dataclass
class _Stream:
    floor: int  # seqs at or below were never released by this stream (it started after them)
    delivered: int  # every seq in (floor, delivered] was released (or skipped: not in the store)
    held: dict[int, PublishedEvent] = field(default_factory=dict)
    late: OrderedDict[int, None] = field(default_factory=OrderedDict)
    timer: asyncio.TimerHandle | None = None
    filling: bool = False


class Sequencer:
    def __init__(
        self,
        release: Callable[[PublishedEvent], None],
        fill: Fill | None,
        gap_seconds: float = 0.5,
        wanted: Callable[[PublishedEvent], bool] | None = None,
    ):
        self._release = release
        self._fill = fill
        self._wanted = wanted  # does any socket here listen? (else a gap is not worth a store read)
        self._gap = gap_seconds
        self._streams: OrderedDict[str, _Stream] = OrderedDict()
        # what it had to do (logs and tests): held behind a gap, read from the store, dropped as seen
        self.held_back = 0
        self.filled = 0
        self.duplicates = 0

    def offer(self, event: PublishedEvent) -> None:
        """A `new_message` with `conversation_id` and `seq` (on the event loop)."""
        assert event.conversation_id is not None and event.seq is not None
        conversation_id, seq = event.conversation_id, event.seq
        stream = self._streams.get(conversation_id)
        if stream is None:
            self._add(conversation_id, _Stream(floor=seq - 1, delivered=seq))
            self._release(event)
            return
        self._streams.move_to_end(conversation_id)
        if seq <= stream.floor:
            if seq not in stream.late:
                stream.late[seq] = None
                if len(stream.late) > MAX_LATE:
                    stream.late.popitem(last=False)
                self._release(event)
            return
        if seq <= stream.delivered or seq in stream.held:
            self.duplicates += 1
            return
        if seq == stream.delivered + 1:
            stream.delivered = seq
            self._release(event)
            self._drain(stream)
        elif self._wanted is not None and not self._wanted(event) and not stream.held:
            stream.delivered = seq  # nobody here hears this conversation: no gap worth filling
            self._release(event)
        else:
            stream.held[seq] = event
            self.held_back += 1
            if len(stream.held) >= MAX_HELD:
                self._start_fill(conversation_id, stream)
            elif stream.timer is None and not stream.filling:
                stream.timer = asyncio.get_running_loop().call_later(self._gap, self._gap_timeout, conversation_id)

    def baseline(self, conversation_id: str, last_seq: int) -> None:
        """A join read the conversation's `last_seq`: where a stream not started yet starts."""
        if conversation_id not in self._streams:
            self._add(conversation_id, _Stream(floor=last_seq, delivered=last_seq))

    def held(self) -> int:
        return sum(len(s.held) for s in self._streams.values())

    # -- internals ------------------------------------------------------------------------------

    def _add(self, conversation_id: str, stream: _Stream) -> None:
        self._streams[conversation_id] = stream
        if len(self._streams) > MAX_STREAMS:
            for key, old in list(self._streams.items())[: len(self._streams) - MAX_STREAMS]:
                if not old.held and not old.filling:
                    del self._streams[key]

    def _drain(self, stream: _Stream) -> None:
        while stream.held:
            following = stream.held.pop(stream.delivered + 1, None)
            if following is None:
                return
            stream.delivered += 1
            self._release(following)
        if stream.timer is not None:  # nothing held any more
            stream.timer.cancel()
            stream.timer = None

    def _gap_timeout(self, conversation_id: str) -> None:
        stream = self._streams.get(conversation_id)
        if stream is None:
            return
        stream.timer = None
        if stream.held and not stream.filling:
            self._start_fill(conversation_id, stream)

    def _start_fill(self, conversation_id: str, stream: _Stream) -> None:
        if stream.timer is not None:
            stream.timer.cancel()
            stream.timer = None
        if stream.filling:
            return
        stream.filling = True
        asyncio.get_running_loop().create_task(self._fill_gap(conversation_id, stream))

    async def _fill_gap(self, conversation_id: str, stream: _Stream) -> None:
        after, before = stream.delivered, min(stream.held)
        try:
            found = (
                [] if self._fill is None else await anyio.to_thread.run_sync(self._fill, conversation_id, after, before)
            )
        except Exception:
            log.exception("reading messages %d..%d of %s to fill a gap failed", after + 1, before - 1, conversation_id)
            stream.filling = False
            if stream.held:  # try again later; the bus may bring them meanwhile
                stream.timer = asyncio.get_running_loop().call_later(self._gap * 2, self._gap_timeout, conversation_id)
            return
        stream.filling = False
        log.info("gap in %s after seq %d: %d message(s) read from the store", conversation_id, after, len(found))
        for event in sorted(found, key=lambda e: e.seq or 0):
            if event.seq is not None and stream.delivered < event.seq < before:
                if event.seq > stream.delivered + 1:
                    log.warning(
                        "messages %d..%d of %s are not in the store; skipped",
                        stream.delivered + 1,
                        event.seq - 1,
                        conversation_id,
                    )
                stream.delivered = event.seq
                self.filled += 1
                self._release(event)
        for seq in [s for s in stream.held if s <= stream.delivered]:  # came live and from the store
            del stream.held[seq]
        if stream.held and stream.delivered + 1 < min(stream.held) <= before:
            first = min(stream.held)
            log.warning(
                "messages %d..%d of %s are not in the store; skipped", stream.delivered + 1, first - 1, conversation_id
            )
            stream.delivered = first - 1
        self._drain(stream)
        if stream.held and stream.timer is None:  # a newer gap behind the one just filled
            stream.timer = asyncio.get_running_loop().call_later(self._gap, self._gap_timeout, conversation_id)


def missing_messages(svc: Services, conversation_id: str, after_seq: int, before_seq: int) -> list[PublishedEvent]:
    """The `new_message` events of `conversation_id` strictly between two seqs, rebuilt from the
    store as `store_message` records them (the conversation topic and the other active members'
    `user:` topics), oldest first."""
    if before_seq - after_seq <= 1:
        return []
    with svc.db.transaction() as conn:
        now = svc.clock()
        page = reads.history(
            conn, conversation_id, NOBODY, now, limit=min(before_seq - after_seq - 1, MAX_FILL), after_seq=after_seq
        )
        members = [m.user_id for m in conv_store.list_members(conn, conversation_id)]
    events = []
    for message in sorted(page.messages, key=lambda m: m.seq):
        if message.seq >= before_seq:
            continue
        topics = (
            topic_conversation(conversation_id),
            *[topic_user(user_id) for user_id in members if user_id != message.sender_id],
        )
        events.append(
            PublishedEvent(
                position=0,
                event_id=str(uuid.uuid4()),
                name="new_message",
                topics=topics,
                payload={"message": message_view(message)},
                conversation_id=conversation_id,
                seq=message.seq,
                created_at=message.sent_at,
            )
        )
    return events
