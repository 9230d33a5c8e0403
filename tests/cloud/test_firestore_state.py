"""The Firestore state store (presence, device sessions) against the official Firestore emulator.

Every store here is a real adapter on the emulator; a "reader" store is another relay instance
that holds no socket and sees the others only through Firestore. Writes are counted on the wire:
a gRPC interceptor on the client's channel records every document of every Commit the emulator
receives (nothing is faked; the requests go through)."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import grpc
import pytest
from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter

from shared.adapters.firestore_state import MAX_IN_VALUES, SESSIONS, USERS, FirestoreStateStore
from shared.devtools.emulators import Emulator
from shared.ports.state import PresenceDiff, UserPresence
from tests.support import eventually


class Diffs:
    """A listener that keeps every diff it hears, and whether the store had it when it came."""

    def __init__(self) -> None:
        self.diffs: list[PresenceDiff] = []
        self.lock = threading.Lock()

    def __call__(self, diffs: Sequence[PresenceDiff]) -> None:
        with self.lock:
            self.diffs.extend(diffs)

    def find(self, match: Callable[[PresenceDiff], bool]) -> list[PresenceDiff]:
        with self.lock:
            return [d for d in self.diffs if match(d)]


class CountCommits(grpc.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    """Every document written through this channel, with when its Commit went out."""

    def __init__(self) -> None:
        self.writes: list[tuple[float, str]] = []
        self.lock = threading.Lock()

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        if details.method.endswith("/Commit"):
            now = time.monotonic()
            with self.lock:
                for write in request.writes:
                    self.writes.append((now, write.update.name or write.delete))
        return continuation(details, request)

    def of(self, fragment: str) -> list[float]:
        with self.lock:
            return [at for at, name in self.writes if fragment in name]


def counting_client(project: str, counter: CountCommits) -> firestore.Client:
    class Counted(firestore.Client):
        def _emulator_channel(self, transport: Any) -> Any:
            return grpc.intercept_channel(super()._emulator_channel(transport), counter)  # type: ignore[no-untyped-call]

    return Counted(project=project)


@pytest.fixture
def project(firestore_emulator: Emulator) -> str:
    return f"whispr-state-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def stores(project: str) -> Iterator[Callable[..., FirestoreStateStore]]:
    made: list[FirestoreStateStore] = []

    def make(**options: Any) -> FirestoreStateStore:
        options = {"heartbeat_seconds": 0.5, "lease_seconds": 2.0, **options}
        store = FirestoreStateStore(project, instance_id=f"i-{uuid.uuid4().hex[:8]}", **options)
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()


def test_user_online_away_offline_with_last_seen_across_devices(stores: Callable[..., FirestoreStateStore]) -> None:
    relay, reader = stores(away_after_seconds=0.5), stores()
    alice = str(uuid.uuid4())
    assert reader.user_presence(alice) == UserPresence(alice, "offline", None)

    phone = relay.connect(alice, "phone")
    seen = eventually(lambda: reader.user_presence(alice), lambda p: p.status == "online", what="online")
    assert [(s.device_id, s.instance_id, s.session_id) for s in seen.sessions] == [
        ("phone", relay.instance_id, phone.session_id)
    ]
    laptop = relay.connect(alice, "laptop")
    seen = eventually(lambda: reader.user_presence(alice), lambda p: len(p.sessions) == 2, what="two devices")
    assert sorted(s.device_id or "" for s in seen.sessions) == ["laptop", "phone"] and seen.status == "online"

    # No activity for the away period: every session is away, so the user is.
    def idle() -> UserPresence:
        relay.tick()
        return reader.user_presence(alice)

    away = eventually(idle, lambda p: p.status == "away", what="away")
    assert {s.status for s in away.sessions} == {"away"}
    relay.activity(phone.session_id)  # one device is used again: the user is online
    back = eventually(lambda: reader.user_presence(alice), lambda p: p.status == "online", what="online again")
    assert {(s.device_id, s.status) for s in back.sessions} == {("phone", "online"), ("laptop", "away")}

    relay.disconnect(phone.session_id)  # another device is still open: still there, no last_seen
    left = eventually(lambda: reader.user_presence(alice), lambda p: len(p.sessions) == 1, what="one device")
    assert left.sessions[0].device_id == "laptop" and left.last_seen is None

    before = datetime.now(timezone.utc)
    relay.disconnect(laptop.session_id)
    after = datetime.now(timezone.utc)
    gone = eventually(lambda: reader.user_presence(alice), lambda p: p.status == "offline", what="offline")
    assert gone.sessions == () and gone.last_seen is not None
    assert before - timedelta(milliseconds=1) <= gone.last_seen <= after
    held = relay.user_presence(alice)  # the instance that held them says the same
    assert held.status == "offline" and held.last_seen is not None
    assert abs((held.last_seen - gone.last_seen).total_seconds()) < 0.002  # stored in milliseconds


def test_present_users_asks_for_many_users_at_once_across_instances(
    stores: Callable[..., FirestoreStateStore],
) -> None:
    """The push planner's question: who of these users has a live session anywhere. More users
    than one `in` filter takes, sessions on this instance and on another, away ones included."""
    relay, reader = stores(away_after_seconds=0.5), stores()
    remote = [str(uuid.uuid4()) for _ in range(MAX_IN_VALUES + 5)]
    sessions = [relay.connect(user_id, None) for user_id in remote]
    mine, gone, never = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    reader.connect(mine, "laptop")
    relay.disconnect(relay.connect(gone, None).session_id)
    asked = [*remote, mine, gone, never]
    assert eventually(lambda: reader.present_users(asked), lambda got: len(got) == len(remote) + 1) == {*remote, mine}

    def idle() -> set[str]:
        relay.tick()
        return reader.present_users(asked)

    assert eventually(idle, lambda _: reader.user_presence(remote[0]).status == "away") == {*remote, mine}
    assert all(
        reader.present_users([u]) == ({u} if reader.user_presence(u).status != "offline" else set()) for u in asked[-4:]
    )
    for session in sessions:
        relay.disconnect(session.session_id)
    assert eventually(lambda: reader.present_users(asked), lambda got: got == {mine}) == {mine}


def test_presence_state_across_instances_and_diffs_after_the_write(
    stores: Callable[..., FirestoreStateStore], project: str
) -> None:
    a, b = stores(), stores()
    db = firestore.Client(project=project)
    heard_a, heard_b = Diffs(), Diffs()
    stored_when_heard: list[bool] = []

    def check_stored(diffs: Sequence[PresenceDiff]) -> None:
        for diff in diffs:
            for metas in diff.joins.values():
                ref = metas["metas"][0]["phx_ref"]
                where = FieldFilter("topics", "array_contains", diff.topic)
                docs = db.collection(SESSIONS).where(filter=where).stream()
                stored_when_heard.append(
                    any((d.to_dict() or {}).get("metas", {}).get(diff.topic, {}).get("phx_ref") == ref for d in docs)
                )

    a.subscribe(check_stored)  # first: by the time heard_a has a diff, it was checked
    a.subscribe(heard_a)
    b.subscribe(heard_b)
    topic = f"conversation:{uuid.uuid4()}"
    alice, bob = str(uuid.uuid4()), str(uuid.uuid4())

    alice_session = a.connect(alice, "alice-phone")
    a.track(alice_session.session_id, topic)
    joined = eventually(lambda: heard_a.find(lambda d: alice in d.joins), bool, what="alice's join announced")
    assert joined[0].topic == topic and joined[0].leaves == {}
    assert stored_when_heard == [True]  # announced only once a reader would find it
    state = b.presence_state(topic)  # B holds no socket of alice: this is Firestore's answer
    assert list(state) == [alice]
    (meta,) = state[alice]["metas"]
    assert meta["device_id"] == "alice-phone" and meta["status"] == "online"
    assert meta["phx_ref"] == joined[0].joins[alice]["metas"][0]["phx_ref"]

    bob_session = b.connect(bob, "bob-laptop")
    b.track(bob_session.session_id, topic)
    assert set(b.presence_state(topic)) == {alice, bob}  # B's own socket, from memory at once
    eventually(lambda: a.presence_state(topic), lambda s: set(s) == {alice, bob}, what="bob seen from A")

    b.untrack(bob_session.session_id, topic)
    left = eventually(lambda: heard_b.find(lambda d: bob in d.leaves), bool, what="bob's leave")
    assert left[0].leaves[bob]["metas"][0]["device_id"] == "bob-laptop"
    assert "last_seen" not in left[0].leaves[bob]["metas"][0]  # left the topic, still connected
    eventually(lambda: a.presence_state(topic), lambda s: set(s) == {alice}, what="bob gone from A's view")
    assert b.user_presence(bob).status == "online"

    a.disconnect(alice_session.session_id)
    ended = eventually(lambda: heard_a.find(lambda d: alice in d.leaves), bool, what="alice's leave")
    assert "last_seen" in ended[0].leaves[alice]["metas"][0]
    assert b.presence_state(topic) == {}


CRASHING_RELAY = """
import sys, time
from shared.adapters.firestore_state import FirestoreStateStore
store = FirestoreStateStore(sys.argv[1], instance_id=sys.argv[2], heartbeat_seconds=0.3, lease_seconds=1.0)
session = store.connect(sys.argv[3], "bob-phone")
store.track(session.session_id, sys.argv[4])
assert store.flush()
print("ready", flush=True)
time.sleep(600)
"""


def test_sessions_of_an_instance_that_stops_heartbeating_end_with_last_seen(
    stores: Callable[..., FirestoreStateStore], project: str
) -> None:
    """A relay process killed with SIGKILL: its documents stay, its heartbeat stops. A live
    instance ends its sessions once the lease lapses, and announces the leaves."""
    survivor = stores()
    heard = Diffs()
    survivor.subscribe(heard)
    bob, topic, dead_instance = str(uuid.uuid4()), f"conversation:{uuid.uuid4()}", f"dead-{uuid.uuid4().hex[:8]}"
    child = subprocess.Popen(
        [sys.executable, "-c", CRASHING_RELAY, project, dead_instance, bob, topic],
        stdout=subprocess.PIPE,
        env=dict(os.environ),
        start_new_session=True,
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == b"ready"
        online = eventually(lambda: survivor.user_presence(bob), lambda p: p.status == "online")
        assert online.sessions[0].instance_id == dead_instance
        assert set(survivor.presence_state(topic)) == {bob}
    finally:
        child.kill()
        child.wait(10)
    killed_at = datetime.now(timezone.utc)

    def reaped() -> list[PresenceDiff]:
        survivor.tick()
        return heard.find(lambda d: bob in d.leaves)

    (leave,) = eventually(reaped, bool, timeout=30, what="the dead instance's sessions ended")
    assert leave.topic == topic
    last_seen = datetime.fromisoformat(leave.leaves[bob]["metas"][0]["last_seen"].replace("Z", "+00:00"))
    assert killed_at - timedelta(seconds=2) <= last_seen <= killed_at  # its last heartbeat
    offline = survivor.user_presence(bob)
    assert offline.status == "offline" and offline.last_seen is not None
    assert abs((offline.last_seen - last_seen).total_seconds()) < 0.01
    assert survivor.presence_state(topic) == {}
    db = firestore.Client(project=project)
    assert list(db.collection(SESSIONS).where(filter=FieldFilter("user_id", "==", bob)).stream()) == []
    survivor.tick()  # ended once: a second pass finds nothing more to end
    assert len(heard.find(lambda d: bob in d.leaves)) == 1


def test_a_busy_session_writes_each_document_at_most_about_once_a_second(project: str) -> None:
    """A socket kept alive for 6 s with activity every 10 ms (far more often than the phoenix
    heartbeat), joining and leaving topics and going away and back: each document is written at
    most about once a second, and the last state still reaches the store."""
    counter = CountCommits()
    store = FirestoreStateStore(
        project,
        instance_id=f"busy-{uuid.uuid4().hex[:6]}",
        away_after_seconds=0.3,
        heartbeat_seconds=1.0,
        lease_seconds=3.0,
        client=counting_client(project, counter),
    )
    reader = FirestoreStateStore(project, instance_id="reader")
    try:
        user = str(uuid.uuid4())
        session = store.connect(user, "phone")
        topics = [f"conversation:{uuid.uuid4()}" for _ in range(5)]
        start = time.monotonic()
        tracked: set[str] = set()
        step = 0
        while time.monotonic() - start < 6.0:
            step += 1
            store.activity(session.session_id)
            if step % 7 == 0:
                topic = topics[step % len(topics)]
                if topic in tracked:
                    store.untrack(session.session_id, topic)
                    tracked.discard(topic)
                else:
                    store.track(session.session_id, topic)
                    tracked.add(topic)
            if step % 150 == 0:  # idle past the away period now and then: away, then back
                time.sleep(0.4)
                store.tick()
            time.sleep(0.01)
        duration = time.monotonic() - start
        assert store.flush()
        for path in (f"{SESSIONS}/{session.session_id}", f"presence_instances/{store.instance_id}"):
            times = counter.of(path)
            assert times, path
            assert len(times) <= duration + 2, (path, len(times), duration)
            gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
            assert min(gaps, default=1.0) >= 0.95, (path, gaps)
        written = len(counter.of(f"{SESSIONS}/{session.session_id}"))
        assert written >= 3  # it did write as things changed
        print(f"{step} rounds of activity and churn in {duration:.1f} s: session document written {written} times")
        for topic in topics:  # the coalesced writes lost nothing: the store has the final state
            assert (user in reader.presence_state(topic)) == (topic in tracked), topic
        store.disconnect(session.session_id)
        assert store.flush()
        eventually(lambda: reader.user_presence(user), lambda p: p.status == "offline")
        assert len(counter.of(f"{USERS}/{user}")) == 1
    finally:
        store.close()
        reader.close()
