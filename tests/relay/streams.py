"""Following a conversation topic over several relay instances: a socket reader in a thread of
its own, senders over the socket and over REST, and waiting for a condition (never for time)."""

from __future__ import annotations

import threading
import time
from typing import Any

from websockets.exceptions import ConnectionClosed

from tests.relay.phx import Msg, Phx
from tests.support import UserClient, client_random


class Reader(threading.Thread):
    """Reads everything a socket gets, in a thread of its own (heartbeating meanwhile)."""

    def __init__(self, sock: Phx, topic: str):
        super().__init__(daemon=True)
        self.sock, self.topic = sock, topic
        self.frames: list[Msg] = list(sock.inbox)
        sock.inbox.clear()
        self.lock = threading.Lock()
        self.closed = False
        self.stopping = threading.Event()
        self.start()

    def run(self) -> None:
        beat = time.monotonic()
        while not self.stopping.is_set():
            try:
                if time.monotonic() - beat > 10:
                    self.sock.push("phoenix", "heartbeat", {}, join_ref=None)
                    beat = time.monotonic()
                msg = self.sock.recv(timeout=0.2)
            except TimeoutError:
                continue
            except (ConnectionClosed, OSError):
                self.closed = True
                return
            with self.lock:
                self.frames.append(msg)

    def stop(self) -> None:
        self.stopping.set()
        self.join(5)

    def messages(self) -> list[dict[str, Any]]:
        with self.lock:
            return [m.payload["message"] for m in self.frames if m.topic == self.topic and m.event == "new_message"]

    def seqs(self) -> list[int]:
        return [m["seq"] for m in self.messages()]

    def events(self, name: str) -> list[Any]:
        with self.lock:
            return [m.payload for m in self.frames if m.topic == self.topic and m.event == name]


def push_sender(sock: Phx, topic: str, count: int, label: str, sent: list[dict[str, Any]]) -> None:
    for i in range(count):
        body = {"content": f"{label} {i}", "message_type": "text", "client_random": client_random()}
        sent.append(sock.ok(topic, "new_message", body)["message"])
        sock.inbox = [m for m in sock.inbox if m.event == "phx_reply"]  # its own copies: not needed here


def rest_sender(user: UserClient, conversation_id: str, count: int, label: str, sent: list[dict[str, Any]]) -> None:
    for i in range(count):
        sent.append(user.send(conversation_id, f"{label} {i}"))
