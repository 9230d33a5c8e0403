"""The embedded multi-process event bus: relay workers of one machine (`whispr-messaging dev
--workers N`) hear each other's committed events the way Cloud Run instances do through
Pub/Sub, through a broker on a Unix socket (`BusBroker`, run by the `dev` parent process).

A worker's `LocalBus.publish` hands the events to its own subscribers at once (as the
in-process bus does), then writes them to the broker as one frame; the broker forwards the frame,
bytes untouched, to every other worker. Frames from one publisher arrive in the order it wrote
them (one stream per worker); frames of different publishers interleave, exactly as Pub/Sub's do,
so the relay's guarantees rest on what already makes several instances correct: the hub drops
an event id it has seen, and the sequencer orders `new_message` by `seq`, filling a gap from the
store. A frame is a 4-byte big-endian length and the JSON of the events (`encode` / `decode`).

If the broker is gone (its worker was cut off), publishing raises: the caller leaves the events
in the outbox for the sweeper, as with Pub/Sub.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import struct
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime

import orjson

from shared.adapters.inprocess_bus import InProcessBus
from shared.ports.bus import PublishedEvent, Subscriber

log = logging.getLogger(__name__)

_LENGTH = struct.Struct(">I")


def encode(events: Sequence[PublishedEvent]) -> bytes:
    fields = [[e.position, e.event_id, e.name, e.topics, e.payload, e.conversation_id, e.seq] for e in events]
    body = orjson.dumps([[*f, e.created_at, e.trace] for f, e in zip(fields, events, strict=True)])
    return _LENGTH.pack(len(body)) + body


def decode(body: bytes) -> list[PublishedEvent]:
    return [
        PublishedEvent(
            position=position,
            event_id=event_id,
            name=name,
            topics=tuple(topics),
            payload=payload,
            conversation_id=conversation_id,
            seq=seq,
            created_at=datetime.fromisoformat(created_at),
            trace=trace,
        )
        for position, event_id, name, topics, payload, conversation_id, seq, created_at, trace in orjson.loads(body)
    ]


def _read_exactly(sock: socket.socket, size: int) -> bytes | None:
    chunks, left = [], size
    while left:
        chunk = sock.recv(min(left, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def read_frame(sock: socket.socket) -> bytes | None:
    """One frame's body, or None once the other end has closed."""
    head = _read_exactly(sock, _LENGTH.size)
    if head is None:
        return None
    return _read_exactly(sock, _LENGTH.unpack(head)[0])


class LocalBus:
    """A worker's end of the bus: the `EventBus` port over the broker at `path`."""

    def __init__(self, path: str, *, connect_timeout: float = 30.0) -> None:
        self._local = InProcessBus()  # this worker's subscribers
        self._send_lock = threading.Lock()  # one frame at a time on the socket
        self._sock = self._connect(path, connect_timeout)
        self._closed = False
        self._reader = threading.Thread(target=self._read, name="local bus reader", daemon=True)
        self._reader.start()

    @staticmethod
    def _connect(path: str, timeout: float) -> socket.socket:
        deadline = time.monotonic() + timeout
        while True:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.connect(path)
                return sock
            except OSError:
                sock.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def publish(self, events: Sequence[PublishedEvent]) -> None:
        if not events:
            return
        frame = encode(events)
        with self._send_lock:
            self._sock.sendall(frame)
        self._local.publish(events)

    def _read(self) -> None:
        while True:
            try:
                body = read_frame(self._sock)
            except OSError:
                body = None
            if body is None:
                if not self._closed:
                    log.error("the local event bus broker went away: other workers' events no longer arrive")
                return
            try:
                events = decode(body)
            except Exception:  # a frame we cannot read must not end the stream
                log.exception("an unreadable frame on the local event bus was dropped")
                continue
            self._local.publish(events)

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        return self._local.subscribe(subscriber)

    def ping(self) -> None:
        if not self._reader.is_alive():
            raise ConnectionError("the local event bus broker is gone")

    def close(self) -> None:
        self._closed = True
        self._local.close()
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()


class BusBroker:
    """Forwards every frame a worker writes to every other worker, in the order written. Runs in
    threads of the process that starts the workers; `close()` ends it."""

    def __init__(self, path: str) -> None:
        self.path = path
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(path)
        self._server.listen(64)
        self._peers: dict[socket.socket, threading.Lock] = {}
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, name="bus broker", daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                peer, _ = self._server.accept()
            except OSError:
                return  # closed
            with self._lock:
                if self._closed:  # accepted while closing: not served
                    peer.close()
                    return
                self._peers[peer] = threading.Lock()
            threading.Thread(target=self._forward, args=(peer,), name="bus broker peer", daemon=True).start()

    def _forward(self, peer: socket.socket) -> None:
        try:
            while True:
                try:
                    body = read_frame(peer)
                except OSError:
                    body = None
                if body is None:
                    return
                frame = _LENGTH.pack(len(body)) + body
                with self._lock:
                    others = [(s, lock) for s, lock in self._peers.items() if s is not peer]
                for other, lock in others:
                    try:
                        with lock:
                            other.sendall(frame)
                    except OSError:  # that worker is gone; its own reader thread cleans up
                        pass
        finally:
            with self._lock:
                self._peers.pop(peer, None)
            peer.close()

    @property
    def workers(self) -> int:
        with self._lock:
            return len(self._peers)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            peers = list(self._peers)
        with contextlib.suppress(OSError):
            self._server.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread
        self._server.close()
        for peer in peers:
            with contextlib.suppress(OSError):
                peer.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
