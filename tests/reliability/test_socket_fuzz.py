"""A bounded socket fuzz (issue 10): members of a conversation throw malformed, mutated, oversize,
misaddressed and out-of-order frames at the relay (at least 20,000 in CI, 100,000 in `make
soak`), while a well-behaved sender and receiver use the same conversation beside them. The
well-behaved pair loses nothing: every send acknowledged, every acknowledged message received
live exactly once in seq order; no fuzzed frame crashes a channel (`internal_error`,
`phx_error`) or the process. The frames come from seeded generators: the same frames on every
run.
"""

from __future__ import annotations

import collections
import json
import os
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from websockets.exceptions import ConnectionClosed

from shared.relay import calls
from tests.relay.phx import Msg, Phx
from tests.reliability.senders import LiveReader
from tests.support import (
    BASE,
    RunningServer,
    client_random,
    new_id,
)

SOAK = os.environ.get("WHISPR_SOAK") == "1"
FRAMES = 100_000 if SOAK else 20_000  # fuzzed frames in all
FUZZERS = 4
GOOD_SENDS = 400 if SOAK else 100
BATCH = 100  # fuzzed frames between two barriers (a heartbeat and its reply)
EVENTS = [*calls.PUSHES, *calls.TYPING_EVENTS, "phx_join", "phx_leave", "heartbeat", "", "x" * 65, "new_msg"]


def mutate(text: str, rng: random.Random) -> str:
    """A few random edits of a frame's text: deletions, insertions, swaps of characters."""
    chars = list(text)
    for _ in range(rng.randint(1, 4)):
        at = rng.randrange(len(chars) + 1)
        roll = rng.random()
        if roll < 0.4 and chars:
            del chars[min(at, len(chars) - 1)]
        elif roll < 0.8:
            chars.insert(at, rng.choice('[]{}",:0\\ \u0000é\ud83d'))
        elif chars:
            chars[min(at, len(chars) - 1)] = rng.choice("x9-\"'")
    return "".join(chars)


def wire(frame: str | bytes) -> str | bytes:
    """A text frame carries UTF-8 only: a frame with a lone surrogate goes as bytes (binary)."""
    if isinstance(frame, str):
        try:
            frame.encode("utf-8")
        except UnicodeEncodeError:
            return frame.encode("utf-8", "surrogatepass")
    return frame


def random_value(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if depth < 3 and roll < 0.15:
        return [random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    if depth < 3 and roll < 0.3:
        return {rng.choice(["content", "message_id", "a", "", "reaction"]): random_value(rng, depth + 1)}
    return rng.choice(
        [None, True, False, 0, -1, 2**63, 2**64, -(2**63) - 1, 1.5, "", "x", "👍", "\u0000", new_id(), "9" * 30]
    )


@dataclass
class Fuzzer:
    server: RunningServer
    user_id: str
    conversation_id: str
    seed: int
    frames: int
    sent: int = 0
    reconnects: int = 0
    crashed: list[Msg] = field(default_factory=list)  # internal_error replies, phx_error
    errors: list[str] = field(default_factory=list)
    closes: list[str] = field(default_factory=list)

    def frame(self, rng: random.Random, sock: Phx) -> str | bytes:
        topic = rng.choice(
            [f"conversation:{self.conversation_id}"] * 6
            + [f"user:{self.user_id}", f"user:{new_id()}", f"conversation:{new_id()}", "phoenix", "", "conversation:"]
        )
        event = rng.choice(EVENTS)
        payload: Any = {
            k: random_value(rng)
            for k in rng.sample(
                [
                    "content",
                    "message_id",
                    "reaction",
                    "up_to_seq",
                    "client_random",
                    "message_type",
                    "metadata",
                    "typing",
                    "last_seq",
                    "delete_for_everyone",
                ],
                rng.randint(0, 4),
            )
        }
        if event == "new_message" and rng.random() < 0.5:  # a valid one now and then: stored, delivered
            payload = {"content": "fuzz", "message_type": "text", "client_random": client_random()}
        join_ref = sock.join_refs.get(topic) if rng.random() < 0.8 else random_value(rng)
        ref: Any = sock.next_ref() if rng.random() < 0.9 else random_value(rng)
        frame: Any = [join_ref, ref, topic, event, payload]
        roll = rng.random()
        if roll < 0.1:
            frame = {"topic": topic, "event": event, "payload": payload, "ref": ref}  # the v1 shape on v2
        elif roll < 0.2:
            frame = frame[: rng.randint(0, 4)] + ([None] * rng.randint(0, 2))
        elif roll < 0.25:
            frame = random_value(rng)
        text = json.dumps(frame, ensure_ascii=False)
        roll = rng.random()
        if roll < 0.3:
            text = mutate(text, rng)
        elif roll < 0.32:
            text = text[: rng.randrange(len(text) + 1)]
        elif roll < 0.34:
            return text.encode("utf-8", "surrogatepass")  # a binary frame
        elif roll < 0.3405:
            return json.dumps([None, "big", topic, "new_message", {"content": "x" * 70_000}])  # over the frame limit
        return text

    def run(self) -> None:
        rng = random.Random(self.seed)
        topic = f"conversation:{self.conversation_id}"
        while self.sent < self.frames:
            try:
                sock = Phx.open(self.server, self.user_id)
            except Exception as error:  # reported
                self.errors.append(f"connect: {error!r}")
                return
            try:
                sock.join_ok(topic)
                while self.sent < self.frames:
                    for _ in range(min(BATCH, self.frames - self.sent)):
                        sock.send_raw(wire(self.frame(rng, sock)))
                        self.sent += 1
                    for msg in sock.barrier():
                        response = msg.payload.get("response", {}) if isinstance(msg.payload, dict) else {}
                        if msg.event == "phx_error" or (
                            isinstance(response, dict) and response.get("reason") == "internal_error"
                        ):
                            self.crashed.append(msg)
            except ConnectionClosed as closed:
                self.closes.append(f"{closed.rcvd.code} {closed.rcvd.reason}" if closed.rcvd else "no close frame")
                self.reconnects += 1  # the relay may close a misbehaving socket; it comes back
            except AssertionError as error:  # no barrier reply in time
                self.errors.append(repr(error)[:500])
                return
            finally:
                sock.close()


def test_fuzzed_frames_hurt_no_one(own_service: RunningServer) -> None:
    service = own_service
    alice, bob = service.client(), service.client()
    fuzz_users = [service.client() for _ in range(FUZZERS)]
    conversation = alice.group_with(bob, *fuzz_users)["id"]
    topic = f"conversation:{conversation}"
    fuzzers = [
        Fuzzer(service, u.user_id, conversation, seed=i, frames=FRAMES // FUZZERS) for i, u in enumerate(fuzz_users)
    ]
    receiver = LiveReader(service, bob.user_id, conversation)
    sender = Phx.open(service, alice.user_id)
    try:
        sender.join_ok(topic)
        threads = [threading.Thread(target=f.run, daemon=True) for f in fuzzers]
        for thread in threads:
            thread.start()
        acked: dict[str, dict[str, Any]] = {}
        # the well-behaved sender: one send at a time, spread over the fuzzing
        for n in range(GOOD_SENDS):
            while any(t.is_alive() for t in threads) and sum(f.sent for f in fuzzers) * GOOD_SENDS < n * FRAMES:
                time.sleep(0.01)  # pacing only: the good sends are spread over the fuzzing
            payload = {"content": f"good {n}", "message_type": "text", "client_random": client_random()}
            message = sender.ok(topic, "new_message", payload)["message"]
            acked[message["id"]] = message
        for thread in threads:
            thread.join(600)
            assert not thread.is_alive(), "a fuzzer did not finish"
        # the receiver gets every good message live, once, in seq order (the fuzzers' valid ones between)
        last_good_seq = max(m["seq"] for m in acked.values())
        deadline = time.monotonic() + 60
        live = receiver.live
        while not live or live[-1]["seq"] < last_good_seq:
            assert receiver.reading, f"the receiver's socket was closed: {receiver.closed!r}"
            assert time.monotonic() < deadline, "the receiver stopped getting messages"
            time.sleep(0.01)
        seqs = [m["seq"] for m in live]
        assert seqs == sorted(set(seqs)), "in seq order, each once"
        assert seqs == list(range(seqs[0], seqs[-1] + 1)), "no gap"
        got = {m["id"] for m in live}
        assert set(acked) <= got, f"{len(set(acked) - got)} acknowledged messages never delivered"
    finally:
        receiver.close()
        sender.close()
    assert service.proc.poll() is None, "the service died"  # type: ignore[attr-defined]
    for fuzzer in fuzzers:
        assert not fuzzer.errors, fuzzer.errors
        assert not fuzzer.crashed, fuzzer.crashed[:5]
    total = sum(f.sent for f in fuzzers)
    assert total >= FRAMES
    for member in (alice, bob):
        for path in ("/conversations", f"/conversations/{conversation}/messages"):
            assert member.get(path).status_code == 200
    assert httpx.get(service.url + BASE + "/health", timeout=10).status_code == 200
    closes = collections.Counter(c for f in fuzzers for c in f.closes)
    assert not closes, f"bad frames get error replies and the socket stays; closed: {closes}"
    print(f"fuzzed {total} frames on {FUZZERS + sum(f.reconnects for f in fuzzers)} sockets; {len(acked)} good sends")
