"""The relay's own reading of client frames (shared.relay.wire.take_text_frames): whole, masked,
unfragmented text frames are read as `websockets` reads them; everything else is left, from its
first byte, to `websockets`' parser."""

from __future__ import annotations

import base64
import os
import socket
import time
from urllib.parse import urlencode

import orjson
from hypothesis import given
from hypothesis import strategies as st
from websockets.frames import Frame, Opcode

from shared.relay.wire import take_text_frames
from tests.relay.phx import PATH
from tests.support import RunningServer, new_id

MAX = 1 << 20


def client_frame(opcode: Opcode, data: bytes, *, fin: bool = True, rsv1: bool = False, mask: bool = True) -> bytes:
    """A frame as a client writes it (masked), serialized by `websockets` itself (`rsv1`: that
    bit set afterwards, as a compressed frame has it)."""
    frame = Frame(opcode, data, fin).serialize(mask=mask)
    return bytes([frame[0] | 0x40]) + frame[1:] if rsv1 else frame


@given(st.lists(st.text(max_size=40) | st.text(min_size=130, max_size=3_000), max_size=6))
def test_text_frames_read_as_sent(sent: list[str]) -> None:
    """Short (7-bit length) and medium (16-bit length) frames, one after the other."""
    data = b"".join(client_frame(Opcode.TEXT, t.encode()) for t in sent)
    assert take_text_frames(data, MAX) == (sent, len(data))


@given(st.lists(st.text(max_size=300), min_size=1, max_size=6), st.data())
def test_a_frame_not_all_there_is_left_whole(sent: list[str], data: st.DataObject) -> None:
    frames = [client_frame(Opcode.TEXT, t.encode()) for t in sent]
    whole = b"".join(frames)
    cut = data.draw(st.integers(0, len(whole) - 1))
    got, taken = take_text_frames(whole[:cut], MAX)
    ends = [sum(len(f) for f in frames[: i + 1]) for i in range(len(frames))]
    complete = [i for i, end in enumerate(ends) if end <= cut]
    assert got == [sent[i] for i in complete]
    assert taken == (ends[complete[-1]] if complete else 0)


def test_large_frames_over_64_kib_go_to_the_parser() -> None:
    big = client_frame(Opcode.TEXT, b"x" * 70_000)
    small = client_frame(Opcode.TEXT, b"hi")
    assert take_text_frames(small + big + small, MAX) == (["hi"], len(small))


def test_everything_else_is_left_from_its_first_byte() -> None:
    text = client_frame(Opcode.TEXT, b'[null,"1","phoenix","heartbeat",{}]')
    others = [
        client_frame(Opcode.TEXT, b"hi", mask=False),  # a client's frames are masked
        client_frame(Opcode.TEXT, b"hi", fin=False),  # the first fragment of a message
        client_frame(Opcode.CONT, b"hi"),
        client_frame(Opcode.TEXT, b"hi", rsv1=True),  # compressed: no extension is negotiated
        client_frame(Opcode.BINARY, b"hi"),
        client_frame(Opcode.PING, b""),
        client_frame(Opcode.CLOSE, b"\x03\xe8"),
        client_frame(Opcode.TEXT, b"\xff\xfe"),  # not UTF-8: the parser's path closes with 1007
        client_frame(Opcode.TEXT, b"y" * 200),  # over the cap below: the parser's path closes with 1009
    ]
    for other in others:
        assert take_text_frames(text + other + text, 100) == (['[null,"1","phoenix","heartbeat",{}]'], len(text))
        assert take_text_frames(other, 100) == ([], 0)


def test_an_empty_text_frame_is_an_empty_text() -> None:
    assert take_text_frames(client_frame(Opcode.TEXT, b""), MAX) == ([""], 6)
    assert take_text_frames(b"", MAX) == ([], 0)


def _raw_socket(server: RunningServer, user_id: str) -> socket.socket:
    """A WebSocket opened by hand (so that the test decides where TCP segments end)."""
    host, port = server.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    query = urlencode({"token": server.token(user_id), "vsn": "2.0.0"})
    sock.sendall(
        f"GET {PATH}?{query} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 101"), answer
    return sock


def _read_frame(sock: socket.socket, pending: bytearray) -> str:
    """The next text frame the server sent (unmasked, unfragmented)."""
    while True:
        if len(pending) >= 2:
            length, head = pending[1] & 0x7F, 2
            if length == 126 and len(pending) >= 4:
                length, head = int.from_bytes(pending[2:4], "big"), 4
            if length < 127 and len(pending) >= head + length:
                text = bytes(pending[head : head + length]).decode()
                del pending[: head + length]
                return text
        chunk = sock.recv(65536)
        assert chunk, "the server closed the socket"
        pending += chunk


def test_a_frame_cut_after_its_header_is_read_whole(relay: RunningServer) -> None:
    """The header of a heartbeat in one TCP segment, its mask (which looks like the start of a
    text frame: 0x81, then a masked length of 5) and payload in the next: the relay must read
    them as the one frame they are, not the mask as a frame of its own."""
    sock = _raw_socket(relay, new_id())
    try:
        payload = b'[null,"7","phoenix","heartbeat",{}]'
        mask = b"\x81\x85\x00\x00"
        frame = bytes([0x81, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        sock.sendall(frame[:2])
        time.sleep(0.3)  # read by the server on its own
        sock.sendall(frame[2:])
        reply = orjson.loads(_read_frame(sock, bytearray()))
        assert reply[1] == "7" and reply[3] == "phx_reply" and reply[4]["status"] == "ok"
    finally:
        sock.close()
