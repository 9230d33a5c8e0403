"""Records the name of every event the relay queues for a socket, in this process, by wrapping
the one place every outgoing frame passes (`shared.relay.socket.Outbound._append`): frames
built and never sent (a protocol unit test's) do not count."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import orjson

from shared.relay.socket import Outbound


def event_of(frame: str) -> str | None:
    """The event name of a v2 (`[join_ref, ref, topic, event, payload]`) or v1 frame."""
    data = orjson.loads(frame)
    event = (
        data[3] if isinstance(data, list) and len(data) == 5 else data.get("event") if isinstance(data, dict) else None
    )
    return event if isinstance(event, str) else None


class EventRecorder:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.names: set[str] = set()

    def seen(self) -> set[str]:
        with self._lock:
            return set(self.names)

    @contextmanager
    def installed(self) -> Iterator[EventRecorder]:
        original = Outbound._append

        def recording(outbound: Outbound, frame: str) -> None:
            event = event_of(frame)
            if event is not None:
                with self._lock:
                    self.names.add(event)
            original(outbound, frame)

        Outbound._append = recording  # type: ignore[method-assign]
        try:
            yield self
        finally:
            Outbound._append = original  # type: ignore[method-assign]
