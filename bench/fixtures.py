"""What the scenarios need in the store before they measure anything.

Small fixtures (a few pairs, one group) go through the REST API as a client would make them.
Large ones (B3's thousands of direct conversations, B4's 100 k to 10 M messages) are bulk-loaded
with PostgreSQL's COPY, rows shaped exactly as the core writes them, rows in key order so the
indexes grow at their right edge, foreign-key triggers off for the loader's session only.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pg8000.native

from shared.domain.rules import direct_key

API = "/messaging/api/v1"
EPOCH = datetime(2025, 1, 1, tzinfo=timezone.utc)


def new_user() -> str:
    return str(uuid.uuid4())


@dataclass(frozen=True)
class Pair:
    sender_id: str
    receiver_id: str
    conversation_id: str


class Rest:
    """The service's REST API as the fixture's client (setup only, never timed)."""

    def __init__(self, base_url: str, mint: Callable[[str], str]):
        self.http = httpx.Client(base_url=base_url + API, timeout=60)
        self.mint = mint
        self.tokens: dict[str, str] = {}

    def token(self, user_id: str) -> str:
        if user_id not in self.tokens:
            self.tokens[user_id] = self.mint(user_id)
        return self.tokens[user_id]

    def direct(self, a: str, b: str) -> str:
        response = self.http.post(
            "/conversations",
            json={"type": "direct", "other_user_id": b},
            headers={"Authorization": f"Bearer {self.token(a)}"},
        )
        response.raise_for_status()
        return str(response.json()["data"]["id"])

    def group(self, owner: str, members: list[str], name: str = "bench") -> str:
        response = self.http.post(
            "/conversations",
            json={"type": "group", "name": name, "user_ids": members},
            headers={"Authorization": f"Bearer {self.token(owner)}"},
        )
        response.raise_for_status()
        return str(response.json()["data"]["id"])

    def pairs(self, count: int) -> list[Pair]:
        out = []
        for _ in range(count):
            a, b = new_user(), new_user()
            out.append(Pair(a, b, self.direct(a, b)))
        return out

    def close(self) -> None:
        self.http.close()


# -- COPY -----------------------------------------------------------------------------------


class Lines(io.RawIOBase):
    """A readable file over an iterator of text lines, for COPY ... FROM STDIN."""

    def __init__(self, lines: Iterator[str], on_line: Callable[[int], None] | None = None):
        self._lines = lines
        self._buffer = b""
        self._count = 0
        self._on_line = on_line

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        want = 1 << 20 if size is None or size < 0 else size
        parts = [self._buffer]
        have = len(self._buffer)
        while have < want:
            try:
                line = next(self._lines)
            except StopIteration:
                break
            data = line.encode()
            parts.append(data)
            have += len(data)
            self._count += 1
            if self._on_line is not None and self._count % 10_000 == 0:
                self._on_line(self._count)
        blob = b"".join(parts)
        self._buffer = blob[want:]
        return blob[:want]

    def readinto(self, target: Any) -> int:
        data = self.read(len(target))
        target[: len(data)] = data
        return len(data)


def connect(host: str, port: int, database: str, user: str = "whispr") -> pg8000.native.Connection:
    conn = pg8000.native.Connection(user, host=host, port=port, database=database)
    conn.run("SET session_replication_role = replica")  # the loader's own session: no FK triggers
    return conn


def _ts(seconds: int) -> str:
    return (EPOCH + timedelta(seconds=seconds)).strftime("%Y-%m-%d %H:%M:%S+00")


CONVERSATION_COLUMNS = (
    "id, type, name, metadata, created_by, direct_key, created_at, updated_at, last_message_at, is_active, last_seq"
)
MEMBER_COLUMNS = (
    "conversation_id, user_id, role, joined_at, left_at, is_active, last_read_seq, last_delivered_seq, "
    "notifications_enabled, muted_until, show_read_receipts, show_typing, custom_name, is_pinned, "
    "pinned_at, is_archived, updated_at"
)
MESSAGE_COLUMNS = (
    "id, conversation_id, seq, sender_id, sender_device_id, client_random, message_type, content, "
    "metadata, reply_to_id, forwarded_from_id, signature, sender_public_key, sent_at, edited_at, "
    "is_deleted, deleted_at, expires_at, is_expired"
)


@dataclass(frozen=True)
class BulkConversation:
    id: str
    a: str
    b: str


def bulk_directs(conn: pg8000.native.Connection, count: int, *, prefix: int) -> list[BulkConversation]:
    """`count` direct conversations between fresh users (ids derived from `prefix` and the index)."""
    made: list[BulkConversation] = []
    for i in range(count):
        cid = f"{prefix:08x}-{(i >> 12) & 0xFFFF:04x}-4{i & 0xFFF:03x}-8000-{i:012x}"
        a = f"{prefix:08x}-0000-4000-a000-{2 * i:012x}"
        b = f"{prefix:08x}-0000-4000-a000-{2 * i + 1:012x}"
        made.append(BulkConversation(cid, a, b))
    stamp = _ts(0)

    def conversations() -> Iterator[str]:
        for c in made:
            yield f"{c.id},direct,,{{}},{c.a},{direct_key(c.a, c.b)},{stamp},{stamp},,t,0\n"

    def members() -> Iterator[str]:
        for c in made:
            for user in (c.a, c.b):
                yield f"{c.id},{user},member,{stamp},,t,0,0,t,,t,t,,f,,f,{stamp}\n"

    conn.run(f"COPY conversations ({CONVERSATION_COLUMNS}) FROM STDIN WITH (FORMAT csv)", stream=Lines(conversations()))
    conn.run(f"COPY conversation_members ({MEMBER_COLUMNS}) FROM STDIN WITH (FORMAT csv)", stream=Lines(members()))
    return made


def bulk_messages(
    conn: pg8000.native.Connection,
    conversations: list[BulkConversation],
    *,
    have: int,
    want: int,
    content_bytes: int = 128,
    on_rows: Callable[[int], None] | None = None,
) -> int:
    """Grow every conversation from `have` to `want` messages (alternating senders), then set
    `last_seq`. Returns the number of rows written."""
    body = "\\x" + (b"b" * content_bytes).hex()
    stamps = [_ts(s) for s in range(want + 1)]

    def rows() -> Iterator[str]:
        for n, c in enumerate(conversations):
            head = c.id[:8]
            for seq in range(have + 1, want + 1):
                sender = c.a if seq % 2 else c.b
                mid = f"{head}-{(n >> 12) & 0xFFFF:04x}-4{n & 0xFFF:03x}-9000-{seq:012x}"
                yield f"{mid},{c.id},{seq},{sender},,{n * 1_000_000 + seq},text,{body},{{}},,,,,{stamps[seq]},,f,,,f\n"

    total = len(conversations) * max(0, want - have)
    conn.run(f"COPY messages ({MESSAGE_COLUMNS}) FROM STDIN WITH (FORMAT csv)", stream=Lines(rows(), on_rows))
    conn.run(
        "UPDATE conversations SET last_seq = :seq, last_message_at = :at WHERE id = ANY(:ids)",
        seq=want,
        at=EPOCH + timedelta(seconds=want),
        ids=[c.id for c in conversations],
    )
    conn.run("ANALYZE messages")
    conn.run("ANALYZE conversations")
    conn.run("ANALYZE conversation_members")
    return total
