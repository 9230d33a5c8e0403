"""A raw Phoenix Channels client for tests: real sockets, frames written and read by hand."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tests.support import RunningServer

PATH = "/messaging/socket/websocket"
TIMEOUT = 10.0


@dataclass(frozen=True)
class Msg:
    join_ref: Any
    ref: Any
    topic: str
    event: str
    payload: Any


def socket_url(server: RunningServer, path: str = PATH, **params: Any) -> str:
    query = urlencode({k: v for k, v in params.items() if v is not None})
    return server.url.replace("http://", "ws://", 1) + path + (f"?{query}" if query else "")


class Phx:
    def __init__(self, ws: ClientConnection, user_id: str, vsn: int = 2):
        self.ws = ws
        self.user_id = user_id
        self.vsn = vsn
        self.inbox: list[Msg] = []
        self._ref = 0
        self.join_refs: dict[str, str] = {}

    @classmethod
    def open(
        cls,
        server: RunningServer,
        user_id: str,
        *,
        device_id: str | None = None,
        vsn: str = "2.0.0",
        path: str = PATH,
        token: str | None = None,
        receive_buffer: int | None = None,
        **connect_args: Any,
    ) -> Phx:
        token = token or server.token(user_id, device_id)
        url = socket_url(server, path, token=token, vsn=vsn)
        if receive_buffer is not None:  # a small TCP receive window: a client that reads slowly
            raw = socket.socket()
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
            raw.connect((urlsplit(server.url).hostname, urlsplit(server.url).port))
            connect_args["sock"] = raw
        ws = connect(url, open_timeout=TIMEOUT, **connect_args)
        return cls(ws, user_id, vsn=1 if vsn.startswith("1") else 2)

    # -- writing --------------------------------------------------------------------------

    def next_ref(self) -> str:
        self._ref += 1
        return str(self._ref)

    def send_raw(self, text: str | bytes) -> None:
        self.ws.send(text)

    def push(
        self, topic: str, event: str, payload: Any = None, *, ref: str | None = "auto", join_ref: str | None = "auto"
    ) -> str | None:
        real_ref = self.next_ref() if ref == "auto" else ref
        real_join_ref = self.join_refs.get(topic) if join_ref == "auto" else join_ref
        payload = {} if payload is None else payload
        if self.vsn == 2:
            frame: Any = [real_join_ref, real_ref, topic, event, payload]
        else:
            frame = {"topic": topic, "event": event, "payload": payload, "ref": real_ref, "join_ref": real_join_ref}
        self.ws.send(json.dumps(frame, ensure_ascii=False))
        return real_ref

    # -- reading --------------------------------------------------------------------------

    def _decode(self, raw: str | bytes) -> Msg:
        data = json.loads(raw)
        if self.vsn == 2:
            assert isinstance(data, list) and len(data) == 5, data
            return Msg(*data)
        assert set(data) == {"topic", "event", "payload", "ref", "join_ref"}, data
        return Msg(data["join_ref"], data["ref"], data["topic"], data["event"], data["payload"])

    def recv(self, timeout: float = TIMEOUT) -> Msg:
        return self._decode(self.ws.recv(timeout=timeout))

    def wait(self, match: Callable[[Msg], bool], timeout: float = TIMEOUT, what: str = "a frame") -> Msg:
        for i, msg in enumerate(self.inbox):
            if match(msg):
                del self.inbox[i]
                return msg
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {what} within {timeout}s; got meanwhile: {self.inbox[-10:]}")
            try:
                msg = self.recv(left)
            except TimeoutError:
                continue
            if match(msg):
                return msg
            self.inbox.append(msg)

    def reply(self, ref: str | None, timeout: float = TIMEOUT) -> Msg:
        return self.wait(lambda m: m.event == "phx_reply" and m.ref == ref, timeout, f"reply to ref {ref}")

    def call(self, topic: str, event: str, payload: Any = None) -> tuple[str, dict[str, Any]]:
        """Push with a ref and return the reply's (status, response)."""
        ref = self.push(topic, event, payload)
        body = self.reply(ref).payload
        return body["status"], body["response"]

    def ok(self, topic: str, event: str, payload: Any = None) -> dict[str, Any]:
        status, response = self.call(topic, event, payload)
        assert status == "ok", (event, response)
        return response

    def error(self, topic: str, event: str, payload: Any = None) -> dict[str, Any]:
        status, response = self.call(topic, event, payload)
        assert status == "error", (event, response)
        return response

    def join(self, topic: str, payload: Any = None) -> tuple[str, dict[str, Any]]:
        join_ref = self.next_ref()
        self.join_refs[topic] = join_ref
        ref = self.push(topic, "phx_join", payload, join_ref=join_ref)
        body = self.reply(ref).payload
        return body["status"], body["response"]

    def join_ok(self, topic: str, payload: Any = None) -> dict[str, Any]:
        status, response = self.join(topic, payload)
        assert status == "ok", (topic, response)
        return response

    def joined(self, topic: str, timeout: float = TIMEOUT) -> None:
        """Return once the conversation join of `topic` is over. A join goes on after its reply
        (presence_state, catch-up, then live), and a heartbeat's reply (`barrier`) can overtake
        those frames: wait for its presence_state (kept in the inbox) instead."""
        join_ref = self.join_refs[topic]
        deadline = time.monotonic() + timeout
        while not any(m.event == "presence_state" and m.join_ref == join_ref for m in self.inbox):
            left = deadline - time.monotonic()
            assert left > 0, f"no presence_state after joining {topic}; got: {self.inbox[-10:]}"
            try:
                self.inbox.append(self.recv(left))
            except TimeoutError:
                continue

    def event(
        self, topic: str, event: str, match: Callable[[Any], bool] | None = None, timeout: float = TIMEOUT
    ) -> Any:
        found = self.wait(
            lambda m: m.topic == topic and m.event == event and (match is None or match(m.payload)),
            timeout,
            f"{event} on {topic}",
        )
        return found.payload

    def barrier(self) -> list[Msg]:
        """Everything that reached this socket before a heartbeat's reply (frames are written in
        order), then forget it: lets a test assert that something did NOT arrive, without sleeping."""
        ref = self.push("phoenix", "heartbeat", {}, join_ref=None)
        self.reply(ref)
        seen, self.inbox = self.inbox, []
        return seen

    def closed_by_server(self, timeout: float = TIMEOUT) -> bool:
        """True once the server ends the connection (frames still in flight are kept in inbox)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.inbox.append(self.recv(deadline - time.monotonic()))
            except TimeoutError:
                return False
            except ConnectionClosed:
                return True
        return False

    def close(self) -> None:
        self.ws.close()
