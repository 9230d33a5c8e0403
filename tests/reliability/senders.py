"""Well-behaved clients for the fault tests: they send continuously, and what failed (an error
reply, a dropped socket, a 5xx, a refused connection) they send again with the same
`client_random` until it is acknowledged, as the mobile client does. What they were told is
kept, so the test can hold the service to it: every acknowledged message in history exactly
once, in seq order, with no gap."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.relay.phx import Phx
from tests.support import BASE, RunningServer, client_random

IN_FLIGHT = 4  # pushes a socket sender keeps outstanding
HEARTBEAT_SECONDS = 10.0  # phoenix.js: 30 s; the relay closes a socket silent for WHISPR_WS_IDLE_TIMEOUT_SECONDS
RETRY_PAUSE = 0.05  # a client's pause before trying again after a failure (not a test's wait)


@dataclass
class Sender:
    """One client's sends and what they got: acked (client_random -> message), failures seen."""

    server: RunningServer
    user_id: str
    conversation_id: str
    acked: dict[int, dict[str, Any]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)  # what went wrong and was retried
    refused: list[Any] = field(default_factory=list)  # answers that are not retryable: a defect
    stop: threading.Event = field(default_factory=threading.Event)  # stop starting new sends
    lock: threading.Lock = field(default_factory=threading.Lock)
    counter: int = 0

    def new_random(self) -> int:
        self.counter += 1
        return client_random()

    def ack(self, random: int, message: dict[str, Any]) -> None:
        with self.lock:
            previous = self.acked.setdefault(random, message)
        if message["client_random"] != random or previous["id"] != message["id"]:
            self.refused.append(f"client_random {random} acknowledged as {previous} and {message}")

    def failed(self, what: str) -> None:
        with self.lock:
            self.failures.append(what)


class SocketSender(Sender):
    """Pushes `new_message` on a Phoenix socket; a push answered with an error is pushed again,
    a channel that errors is rejoined, a socket that drops is reopened."""

    def run(self, deadline: float) -> None:
        pending: list[int] = []  # to (re)send
        while time.monotonic() < deadline:
            if self.stop.is_set() and not pending:
                return
            try:
                sock = Phx.open(self.server, self.user_id)
            except (OSError, InvalidStatus, TimeoutError) as error:
                self.failed(f"connect: {error!r}")
                time.sleep(RETRY_PAUSE)
                continue
            try:
                pending = self._session(sock, pending, deadline)
            except (ConnectionClosed, OSError, TimeoutError, AssertionError) as error:  # Phx: no reply in time
                self.failed(f"socket: {error!r}")
            finally:
                sock.close()
        self.refused.append(f"still unacknowledged at the deadline: {pending}")

    def _session(self, sock: Phx, pending: list[int], deadline: float) -> list[int]:
        """One socket's life: join, push, collect replies; returns what is still to send."""
        topic = f"conversation:{self.conversation_id}"
        in_flight: dict[str, int] = {}
        joined = False
        try:
            while time.monotonic() < deadline:
                if not joined:
                    status, response = sock.join(topic)
                    if status != "ok":
                        self.failed(f"join: {response}")
                        time.sleep(RETRY_PAUSE)
                        continue
                    joined = True
                while len(in_flight) < IN_FLIGHT and (pending or not self.stop.is_set()):
                    random = pending.pop(0) if pending else self.new_random()
                    payload = {"content": f"s{self.counter}", "message_type": "text", "client_random": random}
                    ref = sock.push(topic, "new_message", payload)
                    assert ref is not None
                    in_flight[ref] = random
                if not in_flight:
                    return pending
                msg = sock.recv()
                if msg.event == "phx_reply" and msg.ref in in_flight:
                    random = in_flight.pop(msg.ref)
                    if msg.payload["status"] == "ok":
                        self.ack(random, msg.payload["response"]["message"])
                    else:
                        self._retryable(msg.payload["response"])
                        pending.append(random)
                elif msg.event == "phx_error" and msg.topic == topic:  # the channel crashed: rejoin
                    self.failed("phx_error")
                    joined = False
                    pending += in_flight.values()
                    in_flight.clear()
            return pending
        finally:
            pending += in_flight.values()

    def _retryable(self, response: dict[str, Any]) -> None:
        reason = response.get("reason") or response.get("code")
        self.failed(f"push: {reason}")
        if reason not in ("store_unavailable", "internal_error", "service_unavailable"):
            self.refused.append(response)


class RestSender(Sender):
    """POSTs messages one at a time; a 5xx or a refused connection is sent again."""

    def run(self, deadline: float) -> None:
        headers = {"Authorization": f"Bearer {self.server.token(self.user_id)}"}
        url = f"{self.server.url}{BASE}/conversations/{self.conversation_id}/messages"
        with httpx.Client(headers=headers, timeout=30) as http:
            random: int | None = None
            while time.monotonic() < deadline:
                if random is None:
                    if self.stop.is_set():
                        return
                    random = self.new_random()
                body = {"content": f"r{self.counter}", "message_type": "text", "client_random": random}
                try:
                    response = http.post(url, json=body)
                except httpx.HTTPError as error:
                    self.failed(f"http: {error!r}")
                    time.sleep(RETRY_PAUSE)
                    continue
                if response.status_code in (200, 201):
                    self.ack(random, response.json()["data"])
                    random = None
                elif response.status_code >= 500:
                    self.failed(f"{response.status_code}: {response.text[:200]}")
                    time.sleep(RETRY_PAUSE)
                else:
                    self.refused.append((response.status_code, response.text[:500]))
                    random = None
            if random is not None:
                self.refused.append(f"still unacknowledged at the deadline: {random}")


class LiveReader:
    """A member's socket on a conversation, joined and read all the time in a thread of its own
    (as a client does: a reader that stops reading is a slow consumer), with a heartbeat every
    HEARTBEAT_SECONDS as phoenix.js sends (a silent socket is closed as idle); `live` holds the
    new_message events it got, in arrival order, `closed` what ended the socket if it ended."""

    def __init__(self, server: RunningServer, user_id: str, conversation_id: str):
        self.topic = f"conversation:{conversation_id}"
        self.live: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self.closed: ConnectionClosed | None = None
        self.sock = Phx.open(server, user_id)
        self.sock.join_ok(self.topic)
        self.sock.joined(self.topic)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        beat = time.monotonic()
        while not self._stop.is_set():
            try:
                if time.monotonic() - beat > HEARTBEAT_SECONDS:
                    self.sock.push("phoenix", "heartbeat", {}, join_ref=None)
                    beat = time.monotonic()
                msg = self.sock.recv(timeout=0.5)
            except TimeoutError:
                continue
            except ConnectionClosed as closed:
                self.closed = closed
                return
            if msg.topic == self.topic and msg.event == "new_message":
                self.live.append(msg.payload["message"])

    @property
    def reading(self) -> bool:
        return self._thread.is_alive()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self.sock.close()
