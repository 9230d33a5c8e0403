"""The relay's own reading of client frames (shared.relay.wire.take_text_frames): whole, masked,
unfragmented text frames are read as `websockets` reads them; everything else is left, from its
first byte, to `websockets`' parser."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from websockets.frames import Frame, Opcode

from shared.relay.wire import take_text_frames

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
