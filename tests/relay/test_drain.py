"""Acceptance (issue 15, item 7): SIGTERM drains an instance. Clients sending continuously into
shared conversations are told to reconnect (close 1012 "service restart"), reconnect to another
instance, rejoin with `last_seq` and go on; every message acknowledged before and during the
signal is stored exactly once and reaches every member, in seq order, without a gap; the
signalled process exits 0 within its drain window.

The service runs as real processes (`python -m shared.cli dev`) on PostgreSQL. Two instances are
the two workers of `dev --workers 2` (one port, a local bus between them, as two relay instances
behind a load balancer and Pub/Sub); one is sent SIGTERM. Clients behave as the Whispr client
does: a push that got no answer before its socket closed is sent again, with the same
`client_random`, once reconnected.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select, text
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from shared.bootstrap import build_services
from shared.devtools.postgres import free_port
from shared.relay.socket import CLOSE_DRAINING
from shared.storage.schema import messages as messages_table
from tests.relay.conftest import FREE
from tests.relay.phx import Msg, Phx
from tests.relay.test_crash import open_on
from tests.relay.workers import children, worker_of
from tests.support import (
    BASE,
    RunningServer,
    client_random,
    eventually,
    fresh_database,
    make_settings,
    service_env,
    service_process,
)

IN_FLIGHT = 4  # pushes each client keeps outstanding
ACKED_BEFORE = 30  # per conversation, before the signal
ACKED_AFTER = 15  # per client, after its reconnection (or after the signal, for the others)
EXIT_MARGIN = 10.0  # seconds beyond the drain window the signalled process may take, at most


@dataclass
class Client:
    """One member's device: sends continuously, follows the conversation on its socket, and on
    a close reconnects, rejoins with the last seq it has and sends its unanswered pushes again."""

    server: RunningServer
    user_id: str
    conversation_id: str
    sock: Phx | None = None
    seqs: list[int] = field(default_factory=list)  # new_message seqs received, in order, every socket
    messages: dict[int, dict[str, Any]] = field(default_factory=dict)  # by seq
    sent: dict[int, str] = field(default_factory=dict)  # client_random -> content, every push made
    waiting: dict[int, str] = field(default_factory=dict)  # client_random -> content, no ok reply yet
    refs: dict[str, int] = field(default_factory=dict)  # ref -> client_random, on the current socket
    acked: dict[str, dict[str, Any]] = field(default_factory=dict)  # message id -> message
    closes: list[tuple[int, str] | None] = field(default_factory=list)  # what each close said
    problems: list[Any] = field(default_factory=list)
    sending: threading.Event = field(default_factory=threading.Event)
    target: int | None = None  # stop once every push is answered and this seq is received
    thread: threading.Thread | None = None

    def __post_init__(self) -> None:
        self.sending.set()

    @property
    def topic(self) -> str:
        return f"conversation:{self.conversation_id}"

    @property
    def last_seq(self) -> int:
        return self.seqs[-1] if self.seqs else 0

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            while not self._done():
                if self.sock is None:
                    self._connect()
                self._step()
        except Exception as error:  # reported by the test
            self.problems.append(repr(error))
        finally:
            if self.sock is not None:
                self.sock.close()

    def _done(self) -> bool:
        return (
            not self.sending.is_set() and not self.waiting and self.target is not None and self.last_seq >= self.target
        )

    def _connect(self) -> None:
        """Open a socket (the draining instance refuses or resets some: try again, as phoenix.js
        does), rejoin with the last seq received, and send again what was not answered."""
        deadline = time.monotonic() + 60
        while True:
            try:
                sock = Phx.open(self.server, self.user_id)
                break
            except (OSError, InvalidHandshake, TimeoutError):
                assert time.monotonic() < deadline, "could not reconnect"
                time.sleep(0.05)
        self.sock = sock
        joined = sock.join_ok(self.topic, {"last_seq": self.last_seq})
        assert "catch_up" not in joined, joined
        for msg in sock.inbox:
            self._handle(msg)
        sock.inbox.clear()
        for random, content in list(self.waiting.items()):
            self._push(random, content)

    def _push(self, random: int, content: str) -> None:
        assert self.sock is not None
        payload = {"content": content, "message_type": "text", "client_random": random}
        ref = self.sock.push(self.topic, "new_message", payload)
        assert ref is not None
        self.refs[ref] = random

    def _step(self) -> None:
        assert self.sock is not None
        try:
            while self.sending.is_set() and len(self.refs) < IN_FLIGHT:
                random = client_random()
                content = f"{self.user_id[:8]} #{len(self.sent)}"
                self.sent[random] = content
                self.waiting[random] = content
                self._push(random, content)
            self._handle(self.sock.recv(timeout=0.5))
        except TimeoutError:
            pass
        except ConnectionClosed as closed:  # pushing or reading
            self.closes.append((closed.rcvd.code, closed.rcvd.reason) if closed.rcvd is not None else None)
            self.refs.clear()  # their pushes stay in `waiting`: sent again once reconnected
            self.sock.close()
            self.sock = None

    def _handle(self, msg: Msg) -> None:
        if msg.topic != self.topic:
            return
        if msg.event == "new_message":
            message = msg.payload["message"]
            if message["seq"] != self.last_seq + 1:
                self.problems.append(f"seq {message['seq']} after {self.last_seq}")
            self.seqs.append(message["seq"])
            self.messages[message["seq"]] = message
        elif msg.event == "phx_reply" and msg.ref in self.refs:
            random = self.refs.pop(msg.ref)
            if msg.payload["status"] != "ok":
                self.problems.append(msg.payload)
                return
            message = msg.payload["response"]["message"]
            assert message["client_random"] == random
            self.acked[message["id"]] = message
            self.waiting.pop(random, None)


def test_sigterm_under_load_moves_clients_to_the_other_worker(pg_url: str, key_path: str, tmp_path: Path) -> None:
    window = 6.0
    database_url = fresh_database(pg_url, "whispr_drain_workers", key_path)
    settings = make_settings(database_url, key_path, **FREE)
    port = free_port()
    env = service_env(
        database_url,
        key_path,
        port,
        FREE,
        WHISPR_WS_CATCH_UP_MAX_MESSAGES="100000",
        WHISPR_DRAIN_SECONDS=str(window),
    )
    log = tmp_path / "service.log"
    services = build_services(settings)
    try:
        server = RunningServer(f"http://127.0.0.1:{port}", services)
        with service_process(env, port, log, ["--workers", "2"]) as proc:
            workers = eventually(lambda: children(proc.pid), lambda pids: len(pids) == 2, 60, "two workers")
            victim, survivor = workers
            clients: list[Client] = []
            on_victim: list[Client] = []
            for _ in range(2):
                users = [server.client() for _ in range(4)]
                conversation = users[0].group_with(*users[1:])["id"]
                for i, user in enumerate(users):  # two members of each conversation on each worker
                    client = Client(server, user.user_id, conversation)
                    client.sock = open_on(server, user.user_id, port, workers[i % 2], workers)
                    assert "catch_up" not in client.sock.join_ok(client.topic, {"last_seq": 0})
                    clients.append(client)
                    if workers[i % 2] == victim:
                        on_victim.append(client)
                    user.close()
            for client in clients:
                client.start()
            conversations = {c.conversation_id for c in clients}

            def acked_in(conversation: str) -> int:
                return sum(len(c.acked) for c in clients if c.conversation_id == conversation)

            eventually(
                lambda: [acked_in(c) for c in conversations] + [len(c.problems) for c in clients],
                lambda _: all(acked_in(c) >= ACKED_BEFORE for c in conversations) or any(c.problems for c in clients),
                120,
                "the clients getting going",
            )
            before = {id(c): len(c.acked) for c in clients}
            os.kill(victim, signal.SIGTERM)
            signalled = time.monotonic()
            # The victim drains and exits 0, within its window (an upper bound, nothing else),
            # while the clients go on in their threads.
            eventually(lambda: children(proc.pid), lambda pids: victim not in pids, window + EXIT_MARGIN, "the exit")
            assert time.monotonic() - signalled < window + EXIT_MARGIN
            eventually(lambda: log.read_text(errors="replace"), lambda text: f"(pid {victim}) exited with " in text, 30)
            assert f"(pid {victim}) exited with 0;" in log.read_text(errors="replace"), log.read_text()[-4000:]
            assert survivor in children(proc.pid)

            # The victim's clients are told to go, reconnect to the other worker and go on; the
            # others go on meanwhile.
            eventually(
                lambda: [(len(c.closes), len(c.acked) - before[id(c)], c.problems) for c in clients],
                lambda _: any(c.problems for c in clients)
                or (
                    all(len(c.acked) - before[id(c)] >= ACKED_AFTER for c in clients)
                    and all(c.closes for c in on_victim)
                ),
                120,
                "every client sending again after the signal",
            )

            for client in clients:  # stop sending; every push is answered in the end
                client.sending.clear()
            eventually(
                lambda: [(len(c.waiting), c.problems) for c in clients],
                lambda _: all(not c.waiting for c in clients) or any(c.problems for c in clients),
                60,
                "every push answered",
            )
            highest = last_seqs(services, conversations)
            for client in clients:
                client.target = highest[client.conversation_id]
            for client in clients:
                assert client.thread is not None
                client.thread.join(60)
                assert not client.thread.is_alive(), f"client stuck at seq {client.last_seq} of {client.target}"

        assert not [p for c in clients for p in c.problems], [p for c in clients for p in c.problems]
        for client in clients:  # the close the victim's clients saw: the reconnect-friendly one
            expected = [CLOSE_DRAINING] if client in on_victim else []
            assert client.closes == expected, (client.closes, expected)
        check_delivered_and_stored(services, clients, highest)
    finally:
        services.close()


def last_seqs(services: Any, conversations: set[str]) -> dict[str, int]:
    with services.db.transaction() as conn:
        return {
            c: conn.execute(
                text("SELECT coalesce(max(seq), 0) FROM messages WHERE conversation_id = :c"), {"c": c}
            ).scalar_one()
            for c in conversations
        }


def check_delivered_and_stored(services: Any, clients: list[Client], highest: dict[str, int]) -> None:
    """Every member received its conversation once, in seq order, no gap, across its sockets;
    the store has every push made exactly once (all were answered ok in the end), each
    acknowledged message with the seq it was acknowledged with."""
    for client in clients:
        assert client.seqs == list(range(1, highest[client.conversation_id] + 1)), "once, in order, no gap"
        mates = [c for c in clients if c.conversation_id == client.conversation_id]
        for mate in mates:
            for acked in mate.acked.values():
                assert client.messages[acked["seq"]]["id"] == acked["id"]
    with services.db.transaction() as conn:
        for conversation in highest:
            rows = conn.execute(
                select(messages_table.c.seq, messages_table.c.sender_id, messages_table.c.client_random)
                .where(messages_table.c.conversation_id == conversation)
                .where(messages_table.c.message_type == "text")
                .order_by(messages_table.c.seq)
            ).all()
            stored = [(str(r.sender_id), r.client_random) for r in rows]
            assert len(stored) == len(set(stored)), "a push stored twice"
            sent = {(c.user_id, r) for c in clients if c.conversation_id == conversation for r in c.sent}
            assert set(stored) == sent, "every push stored, nothing else"


class Http:
    """One kept-alive HTTP/1.1 connection, opened before the signal (the draining instance
    accepts no new one): what a load balancer's health checker holds."""

    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buffer = b""

    def request(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
        lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in (headers or {}).items())]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        while b"\r\n\r\n" not in self.buffer:
            self._read()
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        status = int(head.split()[1])
        fields = dict(line.split(": ", 1) for line in head.decode().split("\r\n")[1:])
        length = int({k.lower(): v for k, v in fields.items()}.get("content-length", "0"))
        while len(self.buffer) < length:
            self._read()
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return status, json.loads(body) if body else {}

    def _read(self) -> None:
        chunk = self.sock.recv(65536)
        assert chunk, "the server closed the connection"
        self.buffer += chunk

    def close(self) -> None:
        self.sock.close()


UPGRADE = {
    "Upgrade": "websocket",
    "Connection": "Upgrade",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    "Sec-WebSocket-Version": "13",
}


@dataclass
class Held:
    """One `dev` process with a socket whose `new_message` push is in flight, held (its table
    locked in PostgreSQL) until `release`."""

    proc: Any
    services: Any
    server: RunningServer
    conversation_id: str
    user_id: str
    sock: Phx
    ref: str
    lock: Any

    def release(self) -> None:
        self.lock.rollback()


@contextlib.contextmanager
def held_push(
    pg_url: str, key_path: str, tmp_path: Path, window: float, before_push: Callable[[int], None]
) -> Iterator[Held]:
    """`before_push(port)` runs once the socket is joined, before the table is locked."""
    database_url = fresh_database(pg_url, "whispr_drain_held", key_path)
    port = free_port()
    env = service_env(database_url, key_path, port, FREE, WHISPR_DRAIN_SECONDS=str(window))
    services = build_services(make_settings(database_url, key_path, **FREE))
    try:
        server = RunningServer(f"http://127.0.0.1:{port}", services)
        with service_process(env, port, tmp_path / "service.log") as proc:
            alice, bob = server.client(), server.client()
            conversation = alice.group_with(bob)["id"]
            topic = f"conversation:{conversation}"
            sock = Phx.open(server, alice.user_id)
            sock.join_ok(topic, {"last_seq": 0})
            before_push(port)
            with services.db.connect() as lock:
                lock.execute(text("LOCK TABLE messages IN ACCESS EXCLUSIVE MODE"))
                ref = sock.push(topic, "new_message", {"content": "held", "message_type": "text", "client_random": 7})
                assert ref is not None
                eventually(lambda: waiting_on_locks(services), lambda n: n > 0, 30, "the push waiting on the lock")
                yield Held(proc, services, server, conversation, alice.user_id, sock, ref, lock)
            sock.close()
    finally:
        services.close()


def test_sigterm_answers_what_was_admitted_then_closes_and_exits_0(pg_url: str, key_path: str, tmp_path: Path) -> None:
    """One `dev` process. A push is held in flight when SIGTERM comes: readiness turns 503 at
    once, an upgrade is refused with 503 `draining`, no new connection is accepted, and the
    socket stays until the push is answered; released, the reply comes, then the close 1012
    "service restart", and the process exits 0."""
    window = 60.0  # the push is released long before: nothing here waits for the window
    probes: list[Http] = []
    with held_push(pg_url, key_path, tmp_path, window, lambda port: probes.extend((Http(port), Http(port)))) as held:
        prober, upgrader = probes  # kept-alive connections, opened before the signal
        assert prober.request(f"{BASE}/health/ready")[0] == 200
        assert upgrader.request(f"{BASE}/health")[0] == 200
        signalled = time.monotonic()
        os.kill(held.proc.pid, signal.SIGTERM)

        status, body = eventually(
            lambda: prober.request(f"{BASE}/health/ready"), lambda r: r[0] == 503, 30, "readiness 503"
        )
        assert body["code"] == "not_ready" and body["details"]["checks"] == {"instance": "draining"}, body
        token = held.server.token(held.user_id)
        status, body = upgrader.request(f"/messaging/socket/websocket?token={token}&vsn=2.0.0", UPGRADE)
        assert (status, body["code"]) == (503, "draining"), (status, body)
        port = int(held.server.url.rsplit(":", 1)[1])
        eventually(lambda: refused(port), bool, 30, "new connections refused")
        assert held.proc.poll() is None
        held.release()  # the push goes through

        reply = held.sock.reply(held.ref, timeout=30)
        assert reply.payload["status"] == "ok" and reply.payload["response"]["message"]["content"] == "held"
        try:
            while True:
                held.sock.recv(timeout=30)
        except ConnectionClosed as closed:
            assert closed.rcvd is not None and (closed.rcvd.code, closed.rcvd.reason) == CLOSE_DRAINING
        assert held.proc.wait(window + EXIT_MARGIN) == 0
        assert time.monotonic() - signalled < window + EXIT_MARGIN
        for probe in probes:
            probe.close()
        with held.services.db.transaction() as conn:
            stored = conn.execute(
                select(messages_table.c.seq)
                .where(messages_table.c.conversation_id == held.conversation_id)
                .where(messages_table.c.client_random == 7)
            ).all()
        assert len(stored) == 1


def test_a_second_sigterm_exits_at_once(pg_url: str, key_path: str, tmp_path: Path) -> None:
    """A push held in flight keeps the drain waiting (its window: 5 minutes); a second SIGTERM
    ends the process at once, well before."""
    probes: list[Http] = []
    with held_push(pg_url, key_path, tmp_path, 300.0, lambda port: probes.append(Http(port))) as held:
        os.kill(held.proc.pid, signal.SIGTERM)
        eventually(lambda: probes[0].request(f"{BASE}/health/ready")[0], lambda s: s == 503, 30, "draining")
        os.kill(held.proc.pid, signal.SIGTERM)
        assert held.proc.wait(60) == 128 + signal.SIGTERM
        held.release()
        probes[0].close()


def waiting_on_locks(services: Any) -> int:
    """Backends of the service (other than ours) waiting for a lock."""
    with services.db.transaction() as conn:
        return int(
            conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND datname = current_database() AND pid <> pg_backend_pid()"
                )
            ).scalar_one()
        )


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    except ConnectionRefusedError:
        return True
    return False


def test_the_phoenix_client_reconnects_to_the_other_worker(
    pg_url: str, key_path: str, tmp_path: Path, phoenix_js: Path
) -> None:
    """The official phoenix client (npm, default reconnect timings) on a worker that gets SIGTERM:
    it sees the close 1012 "service restart", reconnects by itself to the other worker, rejoins
    with its last seq (join params as a function) and sends again."""
    database_url = fresh_database(pg_url, "whispr_drain_js", key_path)
    port = free_port()
    env = service_env(
        database_url, key_path, port, FREE, WHISPR_DRAIN_SECONDS="4", WHISPR_LOG_LEVEL="info"
    )  # info: the drain's lines
    log = tmp_path / "service.log"
    services = build_services(make_settings(database_url, key_path, **FREE))
    try:
        server = RunningServer(f"http://127.0.0.1:{port}", services)
        with service_process(env, port, log, ["--workers", "2"]) as proc:
            workers = eventually(lambda: children(proc.pid), lambda pids: len(pids) == 2, 60, "two workers")
            alice, bob = server.client(), server.client()
            conversation = alice.direct_with(bob)["id"]
            node_env = {
                **os.environ,
                "RELAY_ENDPOINT": server.url.replace("http://", "ws://") + "/messaging/socket",
                "CONVERSATION_ID": conversation,
                "TOKEN": alice.token,
            }
            node = subprocess.Popen(
                ["node", "drain_reconnect.js"],
                cwd=phoenix_js,
                env=node_env,
                stdout=subprocess.PIPE,
                stderr=(tmp_path / "node.log").open("w"),
                text=True,
            )
            try:
                assert node.stdout is not None
                first = node.stdout.readline()
                assert first, "the phoenix client ended before joining"
                client_port = json.loads(first)["local_port"]
                victim = eventually(
                    lambda: worker_of(client_port, port, workers), lambda pid: pid is not None, 30, "its worker"
                )
                assert victim is not None
                os.kill(victim, signal.SIGTERM)
                rest, _ = node.communicate(timeout=120)
                assert node.returncode == 0, rest
            finally:
                if node.poll() is None:
                    node.kill()
            result = json.loads(rest.strip().splitlines()[-1])
            eventually(lambda: log.read_text(errors="replace"), lambda text: f"(pid {victim}) exited with " in text, 30)
            assert f"(pid {victim}) exited with 0;" in log.read_text(errors="replace")
            history = bob.get(f"/conversations/{conversation}/messages").json()["data"]
        # The open socket's close; any later entry is a reconnection attempt that failed before a
        # socket opened (1006, no close frame; node.log has the transport error), which phoenix.js
        # retries by itself like any other.
        assert result["closes"][0] == {"code": CLOSE_DRAINING[0], "reason": CLOSE_DRAINING[1]}, result["closes"]
        assert all(close["code"] == 1006 for close in result["closes"][1:]), result["closes"]
        assert result["joins"] == 2  # joined, then rejoined by itself after reconnecting
        before, after = result["sent"]
        assert (before["seq"], after["seq"]) == (1, 2)
        assert result["seqs"][:1] == [1] and len(result["seqs"]) == len(set(result["seqs"]))
        assert sorted((m["seq"], m["id"]) for m in history) == [(1, before["id"]), (2, after["id"])]
    finally:
        services.close()
