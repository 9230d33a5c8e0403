"""Acceptance: killing the relay process while clients are sending loses no acknowledged
message. After a restart, clients that rejoin with `last_seq` have every acknowledged message
exactly once, in seq order; a send that got no reply may or may not be there, never twice.

The service runs as a real process (`python -m shared.cli dev`, what `whispr-messaging dev`
runs) on its own PostgreSQL database; it is killed with SIGKILL mid-stream (no shutdown code
runs) and started again on the same database and port.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from websockets.exceptions import ConnectionClosed

from shared.app.services import Services
from shared.bootstrap import build_services
from shared.devtools.postgres import free_port
from shared.storage.schema import messages as messages_table
from tests import support
from tests.relay.conftest import FREE
from tests.relay.phx import Phx
from tests.relay.workers import children, worker_of
from tests.support import RunningServer, client_random, fresh_database, make_settings, service_env, service_process

CONVERSATIONS = 2
SENDERS_PER_CONVERSATION = 3
IN_FLIGHT = 4  # pushes each sender keeps outstanding
ACKED_BEFORE_KILL = 40  # per conversation, at least


@dataclass
class Sender:
    """One client: its socket's view of the conversation, and what its sends got."""

    server: RunningServer
    user_id: str
    conversation_id: str
    seen: list[dict[str, Any]] = field(default_factory=list)  # new_message events, in arrival order
    pushed: dict[str, int] = field(default_factory=dict)  # ref -> client_random, awaiting a reply
    acked: dict[str, dict[str, Any]] = field(default_factory=dict)  # message id -> message (ok replies)
    unanswered: set[int] = field(default_factory=set)  # client_randoms pushed that got no reply
    errors: list[Any] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    sock: Phx | None = None  # opened already (on a chosen worker), else opened by `run`

    @property
    def topic(self) -> str:
        return f"conversation:{self.conversation_id}"

    def run(self) -> None:
        """Send continuously until the connection dies."""
        try:
            sock = self.sock or Phx.open(self.server, self.user_id)
            sock.join_ok(self.topic, {"last_seq": 0})
        except Exception as error:  # reported by the test
            self.errors.append(error)
            return
        n = 0
        try:
            while not self.stop.is_set():
                while len(self.pushed) < IN_FLIGHT:
                    random = client_random()
                    ref = sock.push(
                        self.topic,
                        "new_message",
                        {"content": f"{self.user_id[:8]} #{n}", "message_type": "text", "client_random": random},
                    )
                    assert ref is not None
                    self.pushed[ref] = random
                    n += 1
                try:
                    msg = sock.recv(timeout=0.5)
                except TimeoutError:
                    continue
                if msg.event == "new_message" and msg.topic == self.topic:
                    self.seen.append(msg.payload["message"])
                elif msg.event == "phx_reply" and msg.ref in self.pushed:
                    random = self.pushed.pop(msg.ref)
                    if msg.payload["status"] == "ok":
                        message = msg.payload["response"]["message"]
                        assert message["client_random"] == random
                        self.acked[message["id"]] = message
                    else:
                        self.errors.append(msg.payload)
        except (ConnectionClosed, OSError):
            pass  # the service was killed
        finally:
            self.unanswered = set(self.pushed.values())
            self.pushed.clear()
            sock.close()

    def live_prefix(self) -> list[dict[str, Any]]:
        """What it saw live, up to its first gap (rejoining with that last_seq catches up the rest)."""
        prefix: list[dict[str, Any]] = []
        for message in self.seen:
            if message["seq"] != len(prefix) + 1:
                break
            prefix.append(message)
        return prefix

    def rejoin(self, server: RunningServer, keep: float) -> list[dict[str, Any]]:
        """Reconnect, rejoin with last_seq and return its whole view: the live prefix, then the
        replay. `keep`: the part of its prefix the client kept (a client that lost some, or a
        new device, rejoins with a lower last_seq)."""
        prefix = self.live_prefix()
        prefix = prefix[: int(len(prefix) * keep)]
        sock = Phx.open(server, self.user_id)
        try:
            last_seq = prefix[-1]["seq"] if prefix else 0
            joined = sock.join_ok(self.topic, {"last_seq": last_seq})
            assert "catch_up" not in joined, joined
            high = joined["conversation"]["last_seq"]
            replay = []
            while last_seq < high:
                message = sock.event(self.topic, "new_message")["message"]
                replay.append(message)
                last_seq = message["seq"]
            return prefix + replay
        finally:
            sock.close()


def test_killing_the_relay_mid_stream_loses_no_acknowledged_message(pg_url: str, key_path: str, tmp_path: Path) -> None:
    database_url = fresh_database(pg_url, "whispr_crash", key_path)
    settings = make_settings(database_url, key_path, **FREE)
    port = free_port()
    env = service_env(database_url, key_path, port, FREE, WHISPR_WS_CATCH_UP_MAX_MESSAGES="100000")
    log = tmp_path / "service.log"
    services = build_services(settings)  # tokens and reading the store; the process serves
    try:
        server = RunningServer(f"http://127.0.0.1:{port}", services)
        with service_process(env, port, log) as proc:
            senders: list[Sender] = []
            for _ in range(CONVERSATIONS):
                users = [server.client() for _ in range(SENDERS_PER_CONVERSATION)]
                conversation = users[0].group_with(*users[1:])["id"]
                senders += [Sender(server, u.user_id, conversation) for u in users]
                for user in users:
                    user.close()
            threads = [threading.Thread(target=s.run, daemon=True) for s in senders]
            for thread in threads:
                thread.start()
            wait_until_going(senders)
            os.kill(proc.pid, signal.SIGKILL)  # mid-stream: every sender has pushes in flight
            proc.wait(30)
            for thread in threads:
                thread.join(30)
                assert not thread.is_alive()
        for sender in senders:
            sender.stop.set()
        assert not [e for s in senders for e in s.errors], [e for s in senders for e in s.errors]
        assert sum(len(s.unanswered) for s in senders) > 0  # the kill did cut sends short

        with service_process(env, port, log):  # same database, same port
            check_rejoined(server, senders)
        check_store(services, senders)
    finally:
        services.close()


def wait_until_going(senders: list[Sender]) -> None:
    """Until every conversation has ACKED_BEFORE_KILL acknowledged sends (none refused)."""
    deadline = time.monotonic() + 120
    while any(
        sum(len(s.acked) for s in senders if s.conversation_id == c) < ACKED_BEFORE_KILL
        for c in {s.conversation_id for s in senders}
    ):
        assert time.monotonic() < deadline, "the senders did not get going"
        assert not [e for s in senders for e in s.errors], [e for s in senders for e in s.errors]
        time.sleep(0.05)


def check_rejoined(server: RunningServer, senders: list[Sender]) -> None:
    """Every sender rejoins with last_seq (keeping all, half or none of what it saw live): its
    view is its conversation in seq order, gap-free, each message once, every acknowledged one
    there with the seq it was acknowledged with, nothing stored twice or that nobody sent."""
    for i, sender in enumerate(senders):
        view = sender.rejoin(server, keep=(1.0, 0.5, 0.0)[i % 3])
        seqs = [m["seq"] for m in view]
        assert seqs == list(range(1, len(seqs) + 1)), "in seq order, gap-free, each once"
        by_id = {m["id"]: m for m in view}
        assert len(by_id) == len(view), "no message twice"
        mates = [s for s in senders if s.conversation_id == sender.conversation_id]
        for mate in mates:
            for message_id, acked in mate.acked.items():
                assert message_id in by_id, f"acknowledged message {acked['seq']} lost"
                assert by_id[message_id]["seq"] == acked["seq"]
        randoms = [(m["sender_id"], m["client_random"]) for m in view if m["message_type"] == "text"]
        assert len(randoms) == len(set(randoms)), "a send stored twice"
        unanswered = {(mate.user_id, r) for mate in mates for r in mate.unanswered}
        acked_keys = {(m["sender_id"], m["client_random"]) for mate in mates for m in mate.acked.values()}
        assert set(randoms) <= unanswered | acked_keys, "a message nobody sent"


def check_store(services: Services, senders: list[Sender]) -> None:
    """The store agrees with what the clients saw: gap-free seqs, no send stored twice."""
    with services.db.transaction() as conn:
        for conversation_id in {s.conversation_id for s in senders}:
            rows = conn.execute(
                select(
                    messages_table.c.seq,
                    messages_table.c.sender_id,
                    messages_table.c.client_random,
                    messages_table.c.message_type,
                )
                .where(messages_table.c.conversation_id == conversation_id)
                .order_by(messages_table.c.seq)
            ).all()
            assert [r.seq for r in rows] == list(range(1, len(rows) + 1))
            texts = [(r.sender_id, r.client_random) for r in rows if r.message_type == "text"]
            assert len(texts) == len(set(texts))


def open_on(server: RunningServer, user_id: str, port: int, worker: int, workers: list[int]) -> Phx:
    """A socket for `user_id` served by the worker process `worker` (sockets are opened until the
    kernel hands one to it)."""
    for _ in range(200):
        sock = Phx.open(server, user_id)
        if worker_of(sock.ws.socket, port, workers) == worker:
            return sock
        sock.close()
    raise AssertionError(f"no socket landed on worker {worker} of {workers}")


def test_killing_one_worker_mid_stream_loses_nothing(pg_url: str, key_path: str, tmp_path: Path) -> None:
    """`dev --workers 2`: each conversation has senders on both worker processes, so their
    concurrent sends take seqs in two processes; one worker is killed (SIGKILL) mid-stream and
    started again by the parent. Every sender, rejoining with last_seq on whichever worker the
    kernel picks, has its conversation exactly once, gap-free, every acknowledged message in it."""
    database_url = fresh_database(pg_url, "whispr_crash_workers", key_path)
    settings = make_settings(database_url, key_path, **FREE)
    port = free_port()
    env = service_env(database_url, key_path, port, FREE, WHISPR_WS_CATCH_UP_MAX_MESSAGES="100000")
    services = build_services(settings)
    try:
        server = RunningServer(f"http://127.0.0.1:{port}", services)
        with service_process(env, port, tmp_path / "service.log", ["--workers", "2"]) as proc:
            workers = support.eventually(lambda: children(proc.pid), lambda pids: len(pids) == 2, 60, "two workers")
            senders: list[Sender] = []
            placed: dict[int, list[Sender]] = {pid: [] for pid in workers}
            for _ in range(CONVERSATIONS):
                users = [server.client() for _ in range(SENDERS_PER_CONVERSATION + 1)]
                conversation = users[0].group_with(*users[1:])["id"]
                for i, user in enumerate(users):
                    worker = workers[i % 2]
                    sender = Sender(server, user.user_id, conversation)
                    sender.sock = open_on(server, user.user_id, port, worker, workers)
                    senders.append(sender)
                    placed[worker].append(sender)
                    user.close()
            threads = {id(s): threading.Thread(target=s.run, daemon=True) for s in senders}
            for thread in threads.values():
                thread.start()
            wait_until_going(senders)
            victim, survivor = workers
            os.kill(victim, signal.SIGKILL)  # mid-stream: its senders have pushes in flight
            for sender in placed[victim]:
                threads[id(sender)].join(30)
                assert not threads[id(sender)].is_alive(), "a socket of the killed worker stayed open"
            for sender in placed[survivor]:  # they went on sending meanwhile
                sender.stop.set()
                threads[id(sender)].join(30)
                assert not threads[id(sender)].is_alive()
            assert not [e for s in senders for e in s.errors], [e for s in senders for e in s.errors]
            assert all(s.unanswered for s in placed[victim])  # the kill did cut its sends short
            restarted = support.eventually(
                lambda: children(proc.pid), lambda pids: len(pids) == 2 and victim not in pids, 60, "a new worker"
            )
            assert survivor in restarted
            check_rejoined(server, senders)
        check_store(services, senders)
    finally:
        services.close()
