"""The relay's WebSocket protocol under uvicorn: uvicorn's `websockets` sans-I/O protocol (the
handshake, the frame parser with its size cap, close and ping handling stay theirs), made
cheaper on the two paths every message takes.

- **Writing** (offered to the application as the scope's `whispr.wire` extension):
  server-to-client text frames are written straight to the transport, with their 2-to-10-byte
  header made here (a server's frames are not masked, RFC 6455 5.1), several in one
  `transport.write` (`write_texts`): no `Frame` object, serializer or generator per frame, no
  ASGI send through Starlette's wrapper, and one syscall for what a socket gets in one loop
  turn (`shared.relay.socket.Connection`). Whenever that is not allowed (the transport paused
  writing, a close was sent or received), `can_write` says so and the caller goes through the
  ASGI `send`, which waits or fails as it always did.
- **Reading**: uvicorn pauses reading the socket after every message until the application
  takes it (two `epoll_ctl` calls a frame); here it pauses only once `READ_BACKLOG` messages
  are waiting, which bounds a socket's unread backlog all the same. What a client sends nearly
  always is whole, masked, unfragmented text frames under the size cap; those are read here
  (`take_text_frames`: header, mask, UTF-8) without `websockets`' parser (a generator, a
  `Frame` and an `Opcode` per frame). Anything else, from the first byte that is not such a
  frame on (control frames, fragments, a partial frame, a bad one, past the cap), goes to
  `websockets` as before, which also answers every protocol error as before.
- **Memory**: the receive queue and the writable flag are made of one deque and one future
  made when first waited on, instead of `asyncio.Queue` and `asyncio.Event` (four deques and
  a future per socket, most of them never used), and the handshake's request and response are
  dropped once answered (docs/performance.md, B3).
"""

from __future__ import annotations

import asyncio
import struct
from collections import deque
from collections.abc import Sequence
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.protocol import Protocol, State
from websockets.streams import StreamReader

try:
    from websockets.speedups import apply_mask  # websockets' C unmasking, as its parser uses
except ImportError:  # pragma: no cover - built without its C extension
    from websockets.utils import apply_mask

EXTENSION = "whispr.wire"  # the ASGI scope's extension under which the protocol offers itself
READ_BACKLOG = 16  # messages read but not yet taken by the application before reading pauses

_SHORT = struct.Struct("!BB")
_MEDIUM = struct.Struct("!BBH")
_LONG = struct.Struct("!BBQ")
_FIN_TEXT = 0x81  # FIN bit and opcode 1 (text)
_AT_EOF = StreamReader.at_eof.__code__


def take_text_frames(data: bytes, max_size: int | None) -> tuple[list[str], int]:
    """The texts of the whole, masked, unfragmented text frames (FIN, no RSV bit, at most
    `max_size` bytes of valid UTF-8) at the start of `data`, and how many bytes they took: the
    rest, from the first byte that does not start such a frame (or a frame not all there yet),
    is for the full parser."""
    texts: list[str] = []
    start, end = 0, len(data)
    while end - start >= 6:
        if data[start] != _FIN_TEXT:
            break
        length = data[start + 1] ^ 0x80  # the MASK bit must be set: a client's frames are masked
        if length < 126:
            head = start + 2
        elif length == 126:
            if end - start < 8:
                break
            length, head = (data[start + 2] << 8) | data[start + 3], start + 4
        else:  # 127: 64-bit lengths (over 64 KiB) and unmasked frames go to the parser
            break
        if max_size is not None and length > max_size:
            break
        payload = head + 4 + length
        if payload > end:
            break
        try:
            texts.append(apply_mask(data[head + 4 : payload], data[head : head + 4]).decode())
        except UnicodeDecodeError:
            break
        start = payload
    return texts, start


def between_frames(conn: Protocol) -> bool:
    """Whether `websockets`' parser holds no part of a frame: the innermost generator it waits
    in is `StreamReader.at_eof`, at the top of its frame loop, with nothing buffered (its
    buffer alone does not say: a frame's header may have been taken from it already)."""
    waiting: Any = conn.parser
    while waiting.gi_yieldfrom is not None:
        waiting = waiting.gi_yieldfrom
    return waiting.gi_code is _AT_EOF


def text_frame_header(length: int) -> bytes:
    """The header of an unmasked, unfragmented text frame carrying `length` bytes."""
    if length < 126:
        return _SHORT.pack(_FIN_TEXT, length)
    if length < 1 << 16:
        return _MEDIUM.pack(_FIN_TEXT, 126, length)
    return _LONG.pack(_FIN_TEXT, 127, length)


def text_frames(texts: Sequence[str]) -> bytes:
    """Text frames for `texts`, one after the other, as written on the wire."""
    parts: list[bytes] = []
    for text in texts:
        data = text.encode("utf-8")
        parts.append(text_frame_header(len(data)))
        parts.append(data)
    return b"".join(parts)


class _Flag:
    """`asyncio.Event` as uvicorn's protocol uses it (set, clear, is_set, wait), with one future
    made only while someone waits."""

    __slots__ = ("_set", "_waiter")

    def __init__(self) -> None:
        self._set = True
        self._waiter: asyncio.Future[None] | None = None

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self._set = True
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def clear(self) -> None:
        self._set = False

    async def wait(self) -> None:
        while not self._set:
            if self._waiter is None or self._waiter.done():
                self._waiter = asyncio.get_running_loop().create_future()
            await asyncio.shield(self._waiter)


class _Inbox:
    """`asyncio.Queue` as uvicorn's protocol uses it (put_nowait, get, empty, qsize), unbounded
    like uvicorn's; one reader (the socket's task). The deque and the future exist only while
    needed."""

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: deque[Any] | None = None
        self._waiter: asyncio.Future[None] | None = None

    def put_nowait(self, item: Any) -> None:
        if self._items is None:
            self._items = deque()
        self._items.append(item)
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def get(self) -> Any:
        while not self._items:
            if self._waiter is None or self._waiter.done():
                self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        items = self._items
        item = items.popleft()
        if not items:
            self._items = None
        return item

    def empty(self) -> bool:
        return not self._items

    def qsize(self) -> int:
        return len(self._items) if self._items else 0


class RelayWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's sans-I/O WebSocket protocol with direct frame writes, a read backlog instead of
    a pause per message, and less memory per socket (module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue = _Inbox()  # type: ignore[assignment]
        self.writable = _Flag()  # type: ignore[assignment]

    def can_write(self) -> bool:
        """Whether frames may be written now without waiting (else: the ASGI send)."""
        return (
            self.handshake_complete
            and not self.close_sent
            and not self.disconnected
            and self.initial_response is None
            and self.writable.is_set()
            and self.conn.state is State.OPEN
        )

    def write_texts(self, texts: Sequence[str]) -> None:
        """Write text frames in one go; only when `can_write()`."""
        self.transport.write(text_frames(texts))

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        if scope is not None:  # an upgrade the application will see: it may write frames itself
            scope["extensions"][EXTENSION] = self

    async def send(self, message: Any) -> None:
        accepting = message["type"] == "websocket.accept" and not self.handshake_complete
        await super().send(message)
        if accepting and self.handshake_complete:
            # Answered: the handshake's request and response are not needed any more.
            self.request = None  # type: ignore[assignment]
            self.response = None  # type: ignore[assignment]
            conn = self.conn
            if conn.state is State.OPEN and not conn.reader.buffer and between_frames(conn):
                # `ServerProtocol.parse` keeps the request (headers and all) in its frame for
                # the socket's life; what it goes on with is `Protocol.parse`, started afresh.
                conn.parser = Protocol.parse(conn)
                next(conn.parser)

    def data_received(self, data: bytes) -> None:
        conn = self.conn
        if (
            self.handshake_complete
            and not self.close_sent
            and conn.state is State.OPEN
            and conn.cur_size is None  # not inside a fragmented message
            and not conn.extensions
            and between_frames(conn)  # the parser holds no part of a frame
        ):
            texts, taken = take_text_frames(data, conn.max_size)
            for text in texts:
                self._to_app({"type": "websocket.receive", "text": text})
            if taken == len(data):
                return
            if taken:
                data = data[taken:]
        super().data_received(data)

    def send_receive_event_to_app(self) -> None:
        data = self.frames[0] if len(self.frames) == 1 else b"".join(self.frames)
        self.frames = []
        if self.close_sent:
            return  # past the application's close: only the peer's close reply matters now
        if self.curr_msg_data_type == "text":
            try:
                text = data.decode()
            except UnicodeDecodeError:
                self.logger.info("closing a WebSocket that sent a text frame that is not UTF-8")
                self.conn.send_close(1007)
                self.handle_parser_exception()
                return
            self._to_app({"type": "websocket.receive", "text": text})
        else:
            self._to_app({"type": "websocket.receive", "bytes": data})

    def _to_app(self, message: Any) -> None:
        self.queue.put_nowait(message)
        if not self.read_paused and self.queue.qsize() >= READ_BACKLOG:
            self.read_paused = True
            self.transport.pause_reading()

    async def receive(self) -> Any:
        message = await self.queue.get()
        if self.read_paused and self.queue.qsize() < READ_BACKLOG // 2:
            self.read_paused = False
            self.transport.resume_reading()
        return message
