"""Two relay + gateway instances on one PostgreSQL database, with the Pub/Sub event bus and the
Firestore state store on the official emulators: what users on different instances see.

Each instance is a full gateway (REST + relay) serving on its own port with its own instance id
(so its own, fresh Pub/Sub subscription and Firestore heartbeat). The instance that is killed
runs as a separate process (`whispr-messaging dev`) so that it can die with SIGKILL: no clean
shutdown, no goodbye frames, its Firestore documents and Pub/Sub subscription left behind.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from shared.app.outbox_sweeper import sweep_outbox
from shared.config import Settings
from shared.devtools.emulators import Emulator
from shared.devtools.postgres import free_port
from shared.relay.hub import Hub
from tests.relay.phx import Phx
from tests.relay.streams import Reader, push_sender, rest_sender
from tests.support import (
    BASE,
    RunningServer,
    UserClient,
    client_random,
    eventually,
    fresh_database,
    make_settings,
    serve,
)

FREE = {
    "messages_burst": 100_000,
    "messages_per_minute": 1_000_000,
    "group_creations_per_day": 100_000,
    "ws_sockets_per_ip": 10_000,
    "ws_pushes_per_minute": 1_000_000,
    "ws_push_burst": 100_000,
}
ADAPTERS = {
    "event_bus": "pubsub",
    "pubsub_create_missing": True,
    "state_store": "firestore",
    "presence_heartbeat_seconds": 0.5,
    "presence_lease_seconds": 2.0,
    "presence_tick_seconds": 0.25,
    "scheduler": "none",
}


@pytest.fixture(scope="module")
def db_url(pg_url: str, key_path: str) -> str:
    return fresh_database(pg_url, f"whispr_multi_{os.getpid()}", key_path)


@pytest.fixture
def project(pubsub_emulator: Emulator, firestore_emulator: Emulator) -> str:
    """A project of its own per test: fresh topics, subscriptions and Firestore documents."""
    return f"whispr-multi-{uuid.uuid4().hex[:8]}"


def instance_settings(db_url: str, key_path: str, project: str, **limits: Any) -> Settings:
    settings = make_settings(db_url, key_path, **{**FREE, **limits})
    return dataclasses.replace(settings, gcp_project=project, instance_id=f"relay-{uuid.uuid4().hex[:10]}", **ADAPTERS)  # type: ignore[arg-type]


def presence_view(frames: list[Any]) -> dict[str, list[dict[str, Any]]]:
    """What a Phoenix Presence client makes of a topic's presence_state and presence_diff frames,
    in order (phoenix.js syncState / syncDiff): user id -> metas."""
    state: dict[str, list[dict[str, Any]]] = {}
    for event, payload in frames:
        if event == "presence_state":
            state = {user: list(entry["metas"]) for user, entry in payload.items()}
            continue
        for user, entry in payload["joins"].items():
            known = {m["phx_ref"] for m in state.get(user, [])}
            state.setdefault(user, []).extend(m for m in entry["metas"] if m["phx_ref"] not in known)
        for user, entry in payload["leaves"].items():
            gone = {m["phx_ref"] for m in entry["metas"]}
            left = [m for m in state.get(user, []) if m["phx_ref"] not in gone]
            if left:
                state[user] = left
            else:
                state.pop(user, None)
    return state


def seen_by(reader: Reader) -> dict[str, list[dict[str, Any]]]:
    with reader.lock:
        frames = [
            (m.event, m.payload)
            for m in reader.frames
            if m.topic == reader.topic and m.event in ("presence_state", "presence_diff")
        ]
    return presence_view(frames)


def statuses(view: dict[str, list[dict[str, Any]]], user_id: str) -> list[tuple[Any, Any]]:
    return sorted((m["device_id"], m["status"]) for m in view.get(user_id, []))


def test_presence_crosses_instances_online_away_offline(db_url: str, key_path: str, project: str) -> None:
    settings_a = instance_settings(db_url, key_path, project, presence_away_seconds=1.5)
    settings_b = instance_settings(db_url, key_path, project, presence_away_seconds=1.5)
    with serve(settings_a) as a, serve(settings_b) as b:
        alice, bob = a.client(), b.client()
        conv = alice.direct_with(bob)
        topic = f"conversation:{conv['id']}"
        state_b = b.services.state
        assert state_b is not None
        bob_sock = Phx.open(b, bob.user_id, device_id="bob-phone")
        alice_sock = late = None
        readers: list[Reader] = []
        try:
            bob_sock.join_ok(topic)
            bob_sees = Reader(bob_sock, topic)
            readers.append(bob_sees)
            eventually(lambda: seen_by(bob_sees), lambda v: list(v) == [bob.user_id], what="bob alone")

            alice_sock = Phx.open(a, alice.user_id, device_id="alice-phone")
            alice_sock.join_ok(topic)
            alice_sees = Reader(alice_sock, topic)
            readers.append(alice_sees)
            # Bob's socket is on B: Alice's instance knows of it through Firestore and the bus.
            eventually(
                lambda: statuses(seen_by(alice_sees), bob.user_id),
                lambda s: s == [("bob-phone", "online")],
                what="alice sees bob online",
            )

            # Bob, on the other instance, sees Alice come online.
            eventually(
                lambda: statuses(seen_by(bob_sees), alice.user_id),
                lambda s: s == [("alice-phone", "online")],
                what="bob sees alice online",
            )
            # Instance A writes her session to Firestore behind the bus event Bob saw: wait for it.
            online = eventually(
                lambda: state_b.user_presence(alice.user_id), lambda p: p.status == "online", what="alice stored"
            )
            assert [s.instance_id for s in online.sessions] == [settings_a.instance_id]

            # Idle past the away period: Bob sees her away; she types: online again.
            eventually(
                lambda: statuses(seen_by(bob_sees), alice.user_id),
                lambda s: s == [("alice-phone", "away")],
                what="bob sees alice away",
            )
            alice_sock.push(topic, "user_typing", {"typing": True})
            eventually(
                lambda: statuses(seen_by(bob_sees), alice.user_id),
                lambda s: s == [("alice-phone", "online")],
                what="bob sees alice back",
            )

            # Alice's last socket closes: Bob sees her leave, offline with last_seen.
            closed_at = time.time()
            alice_sees.stop()
            alice_sock.close()
            eventually(lambda: seen_by(bob_sees), lambda v: alice.user_id not in v, what="bob sees alice leave")
            (left,) = [
                p
                for p in bob_sees.events("presence_diff")
                if alice.user_id in p["leaves"] and "last_seen" in p["leaves"][alice.user_id]["metas"][0]
            ]
            assert left["joins"] == {}
            gone = eventually(
                lambda: state_b.user_presence(alice.user_id), lambda p: p.status == "offline", what="alice offline"
            )
            assert gone.last_seen is not None and abs(gone.last_seen.timestamp() - closed_at) < 5

            # A socket joining later (on A) is told only of Bob, from Firestore, and itself.
            late = Phx.open(a, alice.user_id, device_id="alice-laptop")
            late.join_ok(topic)
            assert {
                u: [m["device_id"] for m in e["metas"]] for u, e in late.event(topic, "presence_state").items()
            } == {alice.user_id: ["alice-laptop"], bob.user_id: ["bob-phone"]}
        finally:
            for reader in readers:
                reader.stop()
            for sock in (bob_sock, alice_sock, late):
                if sock is not None:
                    sock.close()


def test_a_thousand_messages_from_both_instances_reach_both_sockets_in_order_once(
    db_url: str, key_path: str, project: str
) -> None:
    with (
        serve(instance_settings(db_url, key_path, project)) as a,
        serve(instance_settings(db_url, key_path, project)) as b,
    ):
        alice, bob = a.client(), a.client()
        conv = alice.direct_with(bob)
        topic, cid = f"conversation:{conv['id']}", conv["id"]
        alice_on_b = UserClient(b, alice.user_id, alice.token)
        bob_on_a = UserClient(a, bob.user_id, bob.token)
        receive_alice, receive_bob = Phx.open(a, alice.user_id), Phx.open(b, bob.user_id)
        push_alice, push_bob = Phx.open(a, alice.user_id), Phx.open(b, bob.user_id)
        sockets = [receive_alice, receive_bob, push_alice, push_bob]
        readers: list[Reader] = []
        try:
            for sock in sockets:
                sock.join_ok(topic)
            readers = [Reader(receive_alice, topic), Reader(receive_bob, topic)]
            sent: list[list[dict[str, Any]]] = [[], [], [], []]
            senders = [
                threading.Thread(target=push_sender, args=(push_alice, topic, 250, "alice socket A", sent[0])),
                threading.Thread(target=push_sender, args=(push_bob, topic, 250, "bob socket B", sent[1])),
                threading.Thread(target=rest_sender, args=(alice_on_b, cid, 250, "alice REST B", sent[2])),
                threading.Thread(target=rest_sender, args=(bob_on_a, cid, 250, "bob REST A", sent[3])),
            ]
            started = time.monotonic()
            for thread in senders:
                thread.start()
            for thread in senders:
                thread.join(180)
                assert not thread.is_alive(), "a sender did not finish within 180 s"
            every = {m["id"]: m for batch in sent for m in batch}
            assert len(every) == 1000 and sorted(m["seq"] for m in every.values()) == list(range(1, 1001))
            for reader in readers:
                eventually(reader.seqs, lambda seqs: len(seqs) >= 1000, timeout=60, what="1,000 messages")
            # nothing more comes after the thousandth (no late duplicate): a heartbeat's reply is behind them all
            for reader, sock in zip(readers, (receive_alice, receive_bob), strict=True):
                reader.stop()
                sock.reply(sock.push("phoenix", "heartbeat", {}, join_ref=None))
                reader.frames += [m for m in sock.inbox if m.event != "phx_reply"]
                assert reader.seqs() == list(range(1, 1001))  # in order, none missing, none twice
                assert {m["id"]: m["content"] for m in reader.messages()} == {i: m["content"] for i, m in every.items()}
            hubs = [o for o in gc.get_objects() if isinstance(o, Hub)]
            work = [(h.sequencer.held_back, h.sequencer.filled, h.sequencer.duplicates) for h in hubs]
            print(
                f"1,000 messages across two instances in {time.monotonic() - started:.1f} s; "
                f"(held back, filled from the store, duplicates) per relay: {work}"
            )
        finally:
            for reader in readers:
                reader.stop()
            for sock in sockets:
                sock.close()
            for user in (alice_on_b, bob_on_a):
                user.close()


@contextlib.contextmanager
def serve_in_process(
    settings: Settings, key_path: str, env: dict[str, str]
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`whispr-messaging dev` in a process (group) of its own, configured by the environment."""
    port = free_port()
    limits = {f"WHISPR_{k.upper()}": str(v) for k, v in FREE.items()}
    environment = {
        **os.environ,
        **env,
        **limits,
        "DATABASE_URL": settings.database_url,
        "WHISPR_DEV_KEY_PATH": key_path,
        "WHISPR_EVENT_BUS": "pubsub",
        "WHISPR_PUBSUB_CREATE_MISSING": "true",
        "WHISPR_GCP_PROJECT": settings.gcp_project,
        "WHISPR_INSTANCE_ID": settings.instance_id,
        "WHISPR_STATE_STORE": "firestore",
        "WHISPR_PRESENCE_HEARTBEAT_SECONDS": "0.5",
        "WHISPR_PRESENCE_LEASE_SECONDS": "2",
        "WHISPR_SCHEDULER": "none",
        "WHISPR_LOG_LEVEL": "warning",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "shared.cli", "dev", "--host", "127.0.0.1", "--port", str(port)],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, process.stderr.read().decode() if process.stderr else "exited"
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url + BASE + "/health", timeout=1).status_code == 200:
                    break
            assert time.monotonic() < deadline, "the second instance did not start"
            time.sleep(0.1)
        yield url, process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


def test_killing_an_instance_mid_stream_loses_nothing(db_url: str, key_path: str, project: str) -> None:
    """Bob's socket is on B; B is killed (SIGKILL) while both users are sending. Bob reconnects to
    A with the last seq he has and ends with every message exactly once; Alice, on A all along,
    gets every message in order, and sees Bob's B session end once B's heartbeat lapses."""
    settings_a = instance_settings(db_url, key_path, project)
    settings_b = instance_settings(db_url, key_path, project)
    with serve(settings_a) as a, serve_in_process(settings_b, key_path, {}) as (b_url, b_process):
        b = RunningServer(b_url, a.services)  # tokens are signed with the same dev key
        alice, bob = a.client(), a.client()
        conv = alice.direct_with(bob)
        topic, cid = f"conversation:{conv['id']}", conv["id"]
        alice_sock = Phx.open(a, alice.user_id, device_id="alice-phone")
        bob_sock = Phx.open(b, bob.user_id, device_id="bob-phone")
        bob_again: Phx | None = None
        alice_reader = bob_reader = bob_second = None
        bob_via_b = UserClient(b, bob.user_id, bob.token)
        bob_via_a = UserClient(a, bob.user_id, bob.token)
        try:
            alice_sock.join_ok(topic)
            bob_sock.join_ok(topic)
            alice_sock.event(topic, "presence_diff", lambda p: bob.user_id in p["joins"])  # B's join reached A
            alice_reader, bob_reader = Reader(alice_sock, topic), Reader(bob_sock, topic)
            total = 300
            sent: dict[int, dict[str, Any]] = {}
            lock = threading.Lock()

            def alice_sends() -> None:
                for i in range(total // 2):
                    message = alice.send(cid, f"alice {i}")
                    with lock:
                        sent[message["seq"]] = message

            def bob_sends() -> None:
                """Through B until it dies, then through A, retrying the same client_random: a
                send B committed just before dying is answered with the original."""
                use_b = True
                for i in range(total // 2):
                    body = {"content": f"bob {i}", "message_type": "text", "client_random": client_random()}
                    while True:
                        try:
                            response = (bob_via_b if use_b else bob_via_a).post(f"/conversations/{cid}/messages", body)
                        except httpx.HTTPError:
                            use_b = False
                            continue
                        if response.status_code >= 500 and use_b:
                            use_b = False
                            continue
                        assert response.status_code in (200, 201), response.text
                        message = response.json()["data"]
                        with lock:
                            sent[message["seq"]] = message
                        break

            senders = [threading.Thread(target=alice_sends), threading.Thread(target=bob_sends)]
            for thread in senders:
                thread.start()
            eventually(bob_reader.seqs, lambda seqs: len(seqs) >= 60, timeout=60, what="bob got some on B")
            os.killpg(b_process.pid, signal.SIGKILL)  # mid-stream: no clean shutdown at all
            killed_at = time.time()
            eventually(lambda: bob_reader.closed, bool, timeout=20, what="bob's socket on B dropped")
            kept = bob_reader.seqs()
            assert kept == list(range(1, len(kept) + 1))  # what B delivered was in order, no gap
            bob_again = Phx.open(a, bob.user_id, device_id="bob-phone")
            bob_again.join_ok(topic, {"last_seq": kept[-1]})
            bob_second = Reader(bob_again, topic)
            for thread in senders:
                thread.join(180)
                assert not thread.is_alive()
            assert sorted(sent) == list(range(1, total + 1))
            sweep_outbox(a.services, older_than_seconds=0)  # what Cloud Scheduler runs: events B left unpublished

            eventually(
                lambda: len(bob_second.seqs()) + len(kept), lambda n: n >= total, timeout=60, what="bob caught up"
            )
            eventually(alice_reader.seqs, lambda seqs: len(seqs) >= total, timeout=60, what="alice got them all")
            # Bob: what B delivered, then the catch-up and live events on A: each message exactly once, in order.
            bob_all = kept + bob_second.seqs()
            assert bob_all == list(range(1, total + 1))
            assert {m["id"] for m in bob_reader.messages() + bob_second.messages()} == {m["id"] for m in sent.values()}
            assert alice_reader.seqs() == list(range(1, total + 1))

            # Alice saw Bob's new session on A join, and his session on the dead B end when its heartbeat lapsed.
            def b_session_ended() -> list[Any]:
                return [p for p in alice_reader.events("presence_diff") if bob.user_id in p["leaves"]]

            (ended,) = eventually(b_session_ended, bool, timeout=30, what="B's session ended")
            (meta,) = ended["leaves"][bob.user_id]["metas"]
            assert meta["device_id"] == "bob-phone" and "last_seen" in meta
            rejoined = [p for p in alice_reader.events("presence_diff") if bob.user_id in p["joins"]]
            assert rejoined and rejoined[-1]["joins"][bob.user_id]["metas"][0]["phx_ref"] != meta["phx_ref"]
            bob_presence = a.services.state.user_presence(bob.user_id)  # type: ignore[union-attr]
            assert bob_presence.status == "online"
            assert [s.instance_id for s in bob_presence.sessions] == [settings_a.instance_id]
            print(f"B killed at {killed_at:.1f}; Bob kept {len(kept)} from B and got {len(bob_second.seqs())} on A")
        finally:
            for reader in (alice_reader, bob_reader, bob_second):
                if reader is not None:
                    reader.stop()
            for sock in (alice_sock, bob_sock, bob_again):
                if sock is not None:
                    sock.close()
            for user in (bob_via_a, bob_via_b):
                user.close()
