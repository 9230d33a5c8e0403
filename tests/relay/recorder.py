"""Records the name of every event the relay writes to a socket, in this process, by wrapping
the one function that frames them all (`shared.relay.protocol.encode_json`)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from shared.relay import protocol


class EventRecorder:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.names: set[str] = set()

    def seen(self) -> set[str]:
        with self._lock:
            return set(self.names)

    @contextmanager
    def installed(self) -> Iterator[EventRecorder]:
        original = protocol.encode_json

        def recording(*args: Any, **kwargs: Any) -> str:
            event = kwargs.get("event", args[4] if len(args) > 4 else None)
            if isinstance(event, str):
                with self._lock:
                    self.names.add(event)
            return original(*args, **kwargs)

        protocol.encode_json = recording  # type: ignore[assignment]
        try:
            yield self
        finally:
            protocol.encode_json = original  # type: ignore[assignment]
