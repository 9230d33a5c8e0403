"""The load generator: one process, asyncio, raw frames. `python -m bench.loadgen JOB.json`.

The runner starts several of these so the generator is not what is measured (each reports the CPU
it used; a generator near 100 % of a core is flagged in the results). Talking to the runner:
the process connects everything its job names, prints `ready <json>`, waits for a line `go` on
stdin, runs, and prints `result <json>`. Every loop is bounded by the job's durations and by
`deadline` (seconds after start); it only ever connects to the addresses the runner gives it
(127.0.0.1).

Modes (`job["mode"]`):

- `pairs`: 1:1 chat. Each pair is a sender and a receiver; `proto` is `phx` (the relay: sender
  joins `conversation:<id>`, pushes `new_message`; receiver joins `user:<id>`), `bare` (the bare
  WebSocket pair server) or `matrix` (Synapse: `PUT .../send`, receiver long-polls `/sync`).
  Open loop at fixed rates (`steps`) or closed loop (`closed`: each sender waits for its ack).
- `fanout`: group fan-out: this process's members listen, process 0 also sends.
- `idle`: N sockets joined to `user:` and a conversation, heartbeating, held until `stop`.
- `http`: closed-loop HTTP/1.1 keep-alive requests (history reads, REST sends, Synapse reads).
- `catchup`: a receiver misses messages, rejoins with `last_seq`, takes the time to have them all.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import json
import random
import resource
import sys
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

Job = dict[str, Any]
PAD = "x" * 4096


def now_ns() -> int:
    return time.monotonic_ns()  # CLOCK_MONOTONIC: one clock for every process of the machine


def content(prefix: str, size: int) -> str:
    """A message-sized body that carries its own send time: `<prefix>:<ns>:xxxx`."""
    head = f"{prefix}:{now_ns()}:"
    return head + PAD[: max(0, size - len(head))]


def parse_content(text: str) -> tuple[str, int] | None:
    parts = text.split(":", 2)
    if len(parts) < 3:
        return None
    try:
        return parts[0], int(parts[1])
    except ValueError:
        return None


_RANDOM_BASE = random.getrandbits(32)
_random_count = 0


def client_random() -> int:
    """An idempotency key (unsigned 32-bit) that does not repeat within a run: a counter from a
    random start, so a collision (which the core answers with the original message, no second
    delivery) cannot pass for a lost message."""
    global _random_count
    _random_count += 1
    return (_RANDOM_BASE + _random_count) % (1 << 32)


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# -- Phoenix sockets --------------------------------------------------------------------------


_REFS = itertools.count(1)
EventHandler = Callable[[str, str, Any], None]
ReplyHandler = Callable[[str, Any], None]


class Phx:
    """A raw Phoenix v2 client: refs are strings, replies resolve futures or go to `on_reply`."""

    def __init__(self, ws: ClientConnection):
        self.ws = ws
        self.waiting: dict[str, asyncio.Future[Any]] = {}
        self.join_refs: dict[str, str] = {}
        self.on_event: EventHandler | None = None
        self.on_reply: ReplyHandler | None = None
        self.closed_by_server = False
        self.reader = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, url: str, token: str, *, source_ip: str | None = None) -> Phx:
        extra: dict[str, Any] = {}
        if source_ip and source_ip != "127.0.0.1":
            extra["local_addr"] = (source_ip, 0)
        ws = await connect(
            f"{url}?token={token}&vsn=2.0.0",
            compression=None,
            ping_interval=None,
            open_timeout=60,
            max_size=8 * 1024 * 1024,
            **extra,
        )
        return cls(ws)

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                _join_ref, ref, topic, event, payload = orjson.loads(raw)
                if event == "phx_reply":
                    future = self.waiting.pop(ref, None)
                    if future is not None:
                        if not future.done():
                            future.set_result(payload)
                    elif self.on_reply is not None:
                        self.on_reply(ref, payload)
                elif self.on_event is not None:
                    self.on_event(topic, event, payload)
        except ConnectionClosed:
            pass
        self.closed_by_server = True

    def next_ref(self) -> str:
        """Refs unique in the whole process, so that replies of many sockets share one table."""
        return str(next(_REFS))

    async def push(self, topic: str, event: str, payload: Any, *, ref: str | None = None) -> str:
        ref = ref or self.next_ref()
        await self.ws.send(orjson.dumps([self.join_refs.get(topic), ref, topic, event, payload]).decode())
        return ref

    async def call(self, topic: str, event: str, payload: Any, timeout: float = 60.0) -> Any:
        ref = self.next_ref()
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.waiting[ref] = future
        await self.push(topic, event, payload, ref=ref)
        return await asyncio.wait_for(future, timeout)

    async def join(self, topic: str, payload: Any = None, timeout: float = 60.0) -> Any:
        ref = self.next_ref()
        self.join_refs[topic] = ref
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.waiting[ref] = future
        await self.ws.send(orjson.dumps([ref, ref, topic, "phx_join", payload or {}]).decode())
        reply = await asyncio.wait_for(future, timeout)
        if reply.get("status") != "ok":
            raise RuntimeError(f"join {topic} refused: {reply}")
        return reply.get("response")

    async def heartbeat(self) -> None:
        await self.ws.send(orjson.dumps([None, self.next_ref(), "phoenix", "heartbeat", {}]).decode())

    async def close(self) -> None:
        self.reader.cancel()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ws.close(), 2.0)


class Bare:
    """A client of the bare WebSocket server: frames go out as they are, whatever comes in is an event."""

    def __init__(self, ws: ClientConnection):
        self.ws = ws
        self.on_text: Callable[[str], None] | None = None
        self.reader = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, url: str) -> Bare:
        return cls(await connect(url, compression=None, ping_interval=None, open_timeout=60))

    async def _read(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for raw in self.ws:
                if self.on_text is not None:
                    self.on_text(raw if isinstance(raw, str) else raw.decode())

    async def close(self) -> None:
        self.reader.cancel()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ws.close(), 2.0)


def bare_frame(topic: str, body: str) -> str:
    """What the bare server forwards: a frame shaped and sized like the relay's new_message."""
    return orjson.dumps([None, None, topic, "new_message", {"message": {"content": body}}]).decode()


# -- raw HTTP/1.1 -----------------------------------------------------------------------------


class Http:
    """One keep-alive HTTP/1.1 connection, written and read by hand (no client library in the way)."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def _connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port, limit=16 * 1024 * 1024)

    async def request(
        self, method: str, path: str, token: str | None = None, body: bytes | None = None, timeout: float = 120.0
    ) -> tuple[int, bytes]:
        for attempt in (1, 2):
            if self.writer is None:
                await self._connect()
            try:
                return await asyncio.wait_for(self._request(method, path, token, body), timeout)
            except (ConnectionError, asyncio.IncompleteReadError):
                self.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def _request(self, method: str, path: str, token: str | None, body: bytes | None) -> tuple[int, bytes]:
        assert self.reader is not None and self.writer is not None
        head = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}", "Connection: keep-alive"]
        if token:
            head.append(f"Authorization: Bearer {token}")
        if body is not None:
            head += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
        self.writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + (body or b""))
        raw = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
        if "content-length" in headers:
            data = await self.reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).strip().split(b";")[0], 16)
                chunk = await self.reader.readexactly(size + 2)
                if size == 0:
                    break
                chunks.append(chunk[:-2])
            data = b"".join(chunks)
        else:
            data = b""
        if headers.get("connection", "").lower() == "close":
            self.close()
        return status, data

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


# -- the runner's handshake -------------------------------------------------------------------


def say(kind: str, data: Any) -> None:
    sys.stdout.write(f"{kind} {json.dumps(data)}\n")
    sys.stdout.flush()


async def wait_line(expected: str, timeout: float) -> bool:
    """Wait for a line from the runner (`go`, `stop`); False at timeout or end of input."""
    loop = asyncio.get_running_loop()
    try:
        line = await asyncio.wait_for(loop.run_in_executor(None, sys.stdin.readline), timeout)
    except TimeoutError:
        return False
    return str(line).strip() == expected


async def heartbeats(sockets: list[Phx], every: float, stop: asyncio.Event) -> None:
    """Each socket beats every `every` seconds, the beats spread over the interval."""
    if not sockets:
        return
    gap = every / len(sockets)
    while not stop.is_set():
        for sock in sockets:
            if stop.is_set():
                return
            with contextlib.suppress(Exception):
                await sock.heartbeat()
            await asyncio.sleep(gap)


async def bounded_gather(factories: list[Callable[[], Any]], limit: int) -> list[Any]:
    semaphore = asyncio.Semaphore(limit)

    async def one(factory: Callable[[], Any]) -> Any:
        async with semaphore:
            try:
                return await factory()
            except Exception as error:
                return error

    return list(await asyncio.gather(*(one(f) for f in factories)))


# -- pairs (B1, the bare pair ceiling, Synapse B1) ----------------------------------------------


class StepStats:
    def __init__(self) -> None:
        self.sent = 0
        self.acked = 0
        self.errors = 0
        self.received = 0
        self.lat_us: list[int] = []
        self.ack_us: list[int] = []
        self.first_send = 0
        self.last_send = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "acked": self.acked,
            "errors": self.errors,
            "received": self.received,
            "lat_us": self.lat_us,
            "ack_us": self.ack_us,
            "send_span_s": (self.last_send - self.first_send) / 1e9,
        }


class PairsJob:
    def __init__(self, job: Job):
        self.job = job
        self.proto: str = job["proto"]
        self.size: int = job.get("content_bytes", 128)
        self.stats: dict[str, StepStats] = {}
        self.senders: list[Any] = []
        self.receivers: list[Any] = []
        self.http_senders: list[Http] = []
        self.ack_wait: dict[str, tuple[str, int]] = {}  # phx: ref -> (step, t_send)
        self.delivered: dict[int, asyncio.Event] = {}  # closed loop on bare/matrix: pair -> event
        self._closed_events: dict[str, asyncio.Event] = {}  # closed loop on phx: ref -> event
        self.outstanding: set[str] = set()  # "step:sent_ns" of every message sent and not yet received
        self.stop = asyncio.Event()
        self.tasks: list[asyncio.Task[Any]] = []

    # receiving side
    def _got(self, text: str, pair: int | None = None) -> None:
        parsed = parse_content(text)
        if parsed is None:
            return
        step, sent_at = parsed
        stats = self.stats.get(step)
        key = f"{step}:{sent_at}"
        if stats is None or key not in self.outstanding:
            return  # not sent by this process, or a second copy: Synapse's /sync can replay older events
        self.outstanding.discard(key)
        stats.received += 1
        stats.lat_us.append((now_ns() - sent_at) // 1000)
        if pair is not None and pair in self.delivered:
            self.delivered[pair].set()

    def _bare_got(self, text: str, pair: int) -> None:
        self._got(orjson.loads(text)[4]["message"]["content"], pair)

    def _phx_event(self, topic: str, event: str, payload: Any, pair: int | None = None) -> None:
        if event == "new_message":
            self._got(payload["message"]["content"], pair)

    def _phx_reply(self, ref: str, payload: Any) -> None:
        waiting = self.ack_wait.pop(ref, None)
        if waiting is None:
            return
        step, sent_at = waiting
        stats = self.stats[step]
        if payload.get("status") == "ok":
            stats.acked += 1
            stats.ack_us.append((now_ns() - sent_at) // 1000)
        else:
            stats.errors += 1
        pair_event = self._closed_events.get(ref)
        if pair_event is not None:
            pair_event.set()

    async def connect(self) -> dict[str, Any]:
        url = self.job["ws_url"]
        pairs = self.job["pairs"]
        if self.proto == "phx":

            async def one(pair: dict[str, Any]) -> tuple[Phx, Phx]:
                receiver = await Phx.open(url, pair["receiver"])
                receiver.on_event = functools.partial(self._phx_event, pair=pair["pair"])
                await receiver.join(f"user:{pair['receiver_id']}")
                sender = await Phx.open(url, pair["sender"])
                sender.on_reply = self._phx_reply
                await sender.join(f"conversation:{pair['conversation']}")
                return sender, receiver

            results = await bounded_gather([functools.partial(one, p) for p in pairs], 32)
            for result in results:
                if isinstance(result, BaseException):
                    raise result
                self.senders.append(result[0])
                self.receivers.append(result[1])
            self.tasks.append(asyncio.create_task(heartbeats(self.receivers + self.senders, 20.0, self.stop)))
        elif self.proto == "bare":
            for pair in pairs:
                receiver = await Bare.open(f"{url}/pair/{pair['pair']}/receiver")
                receiver.on_text = functools.partial(self._bare_got, pair=pair["pair"])
                sender = await Bare.open(f"{url}/pair/{pair['pair']}/sender")
                self.receivers.append(receiver)
                self.senders.append(sender)
        else:  # matrix
            host, port = self.job["http"]
            for pair in pairs:
                self.http_senders.append(Http(host, port))
                self.senders.append(pair)
            since = await asyncio.gather(*(self._initial_sync(pair) for pair in pairs))
            for pair, token in zip(pairs, since, strict=True):
                self.tasks.append(asyncio.create_task(self._sync_loop(pair, token)))
        return {"senders": len(self.senders)}

    # Synapse: /sync long-poll per receiver
    SYNC_FILTER = urllib.parse.quote(
        json.dumps(
            {
                "room": {"timeline": {"limit": 200}, "state": {"lazy_load_members": True}, "ephemeral": {"types": []}},
                "presence": {"types": []},
                "account_data": {"types": []},
            },
            separators=(",", ":"),
        )
    )

    async def _initial_sync(self, pair: dict[str, Any]) -> str:
        status, body = await Http(*self.job["http"]).request(
            "GET", f"/_matrix/client/v3/sync?filter={self.SYNC_FILTER}&timeout=0", pair["receiver"]
        )
        if status != 200:
            raise RuntimeError(f"initial /sync: {status} {body[:200]!r}")
        return str(orjson.loads(body)["next_batch"])

    async def _sync_loop(self, pair: dict[str, Any], since: str) -> None:
        conn = Http(*self.job["http"])
        while not self.stop.is_set():
            try:
                status, body = await conn.request(
                    "GET",
                    f"/_matrix/client/v3/sync?filter={self.SYNC_FILTER}&timeout=5000&since={since}",
                    pair["receiver"],
                    timeout=30,
                )
            except (OSError, TimeoutError, asyncio.IncompleteReadError):
                await asyncio.sleep(0.05)
                continue
            if status != 200:
                await asyncio.sleep(0.05)
                continue
            data = orjson.loads(body)
            since = data["next_batch"]
            for room in data.get("rooms", {}).get("join", {}).values():
                for event in room.get("timeline", {}).get("events", []):
                    if event.get("type") == "m.room.message":
                        self._got(str(event.get("content", {}).get("body", "")), pair["pair"])
        conn.close()

    async def _send(self, index: int, step: str, closed: bool = False) -> None:
        stats = self.stats[step]
        body = content(step, self.size)
        sent_at = int(body.split(":", 2)[1])
        self.outstanding.add(f"{step}:{sent_at}")
        if stats.first_send == 0:
            stats.first_send = sent_at
        stats.last_send = sent_at
        stats.sent += 1
        if self.proto == "phx":
            sender: Phx = self.senders[index]
            pair = self.job["pairs"][index]
            ref = sender.next_ref()
            self.ack_wait[ref] = (step, sent_at)
            event: asyncio.Event | None = None
            if closed:  # the next send waits for the ack and for the receiver to have it
                event = asyncio.Event()
                self._closed_events[ref] = event
                self.delivered[pair["pair"]] = asyncio.Event()
            await sender.push(
                f"conversation:{pair['conversation']}",
                "new_message",
                {"content": body, "message_type": "text", "client_random": client_random()},
                ref=ref,
            )
            if event is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), 30)
                    await asyncio.wait_for(self.delivered[pair["pair"]].wait(), 30)
                self._closed_events.pop(ref, None)
        elif self.proto == "bare":
            pair_id = self.job["pairs"][index]["pair"]
            if closed:
                self.delivered[pair_id] = asyncio.Event()
            await self.senders[index].ws.send(bare_frame(f"pair:{pair_id}", body))
            if closed:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.delivered[pair_id].wait(), 30)
        else:
            pair = self.job["pairs"][index]
            txn = f"{step}-{index}-{sent_at}"
            path = f"/_matrix/client/v3/rooms/{urllib.parse.quote(pair['conversation'])}/send/m.room.message/{txn}"
            payload = orjson.dumps({"msgtype": "m.text", "body": body})
            if closed:
                self.delivered[pair["pair"]] = asyncio.Event()
            try:
                status, _ = await self.http_senders[index].request("PUT", path, pair["sender"], payload)
            except (OSError, TimeoutError, asyncio.IncompleteReadError):
                status = 599
            if status == 200:
                stats.acked += 1
                stats.ack_us.append((now_ns() - sent_at) // 1000)
            else:
                stats.errors += 1
            if closed and status == 200:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.delivered[pair["pair"]].wait(), 30)

    async def run_rate(self, name: str, rate: float, duration: float) -> None:
        """Open loop: `rate` sends per second from this process, round-robin over its senders."""
        self.stats[name] = StepStats()
        count = len(self.senders)
        start = time.monotonic()
        sent = 0
        index = 0
        pending: set[asyncio.Task[Any]] = set()
        while True:
            elapsed = time.monotonic() - start
            if elapsed >= duration:
                break
            due = int(elapsed * rate) - sent
            for _ in range(max(0, due)):
                if self.proto == "matrix":  # HTTP sends run concurrently, one connection per sender
                    task = asyncio.create_task(self._send(index, name))
                    pending.add(task)
                    task.add_done_callback(pending.discard)
                else:
                    await self._send(index, name)
                index = (index + 1) % count
                sent += 1
            await asyncio.sleep(0.002)
        if pending:
            await asyncio.wait(pending, timeout=30)

    async def run_closed(self, name: str, duration: float) -> None:
        """Closed loop: every sender sends its next message as soon as the previous one is acknowledged."""
        self.stats[name] = StepStats()
        end = time.monotonic() + duration

        async def sender(index: int) -> None:
            while time.monotonic() < end:
                await self._send(index, name, closed=True)

        await asyncio.wait([asyncio.create_task(sender(i)) for i in range(len(self.senders))], timeout=duration + 60)

    async def settle(self, name: str, grace: float) -> None:
        stats = self.stats[name]
        end = time.monotonic() + grace
        while time.monotonic() < end and (
            stats.received < stats.sent - stats.errors
            or (self.proto != "bare" and stats.acked + stats.errors < stats.sent)
        ):
            await asyncio.sleep(0.02)

    async def run(self) -> dict[str, Any]:
        grace = float(self.job.get("grace", 3.0))
        results: dict[str, Any] = {}
        for i, step in enumerate(self.job.get("steps", [])):
            name = f"s{i}"
            await self.run_rate(name, float(step["rate"]), float(step["duration"]))
            await self.settle(name, grace)
            results[name] = self.stats[name].as_dict()
        closed = self.job.get("closed")
        if closed:
            await self.run_closed("closed", float(closed["duration"]))
            await self.settle("closed", grace)
            results["closed"] = self.stats["closed"].as_dict()
        return results

    async def close(self) -> None:
        self.stop.set()
        for task in self.tasks:
            task.cancel()
        for sock in self.senders + self.receivers:
            if isinstance(sock, Phx | Bare):
                await sock.close()
        for conn in self.http_senders:
            conn.close()


# -- fan-out (B2, the bare broadcast ceiling) ----------------------------------------------------


class FanoutJob:
    def __init__(self, job: Job):
        self.job = job
        self.proto: str = job["proto"]
        self.members: list[Any] = []
        self.sender: Any = None
        self.recv: dict[str, dict[int, list[int]]] = {}  # step -> idx -> [count, last receive ns]
        self.sent: dict[str, dict[int, int]] = {}
        self.stop = asyncio.Event()
        self.tasks: list[asyncio.Task[Any]] = []
        self.acks = 0
        self.errors = 0
        self.in_flight: asyncio.Semaphore | None = None

    def _got(self, text: str) -> None:
        parts = text.split(":", 3)
        if len(parts) < 4:
            return
        seen = self.recv.setdefault(parts[0], {}).setdefault(int(parts[1]), [0, 0])
        seen[0] += 1
        seen[1] = now_ns()

    def _phx_event(self, topic: str, event: str, payload: Any) -> None:
        if event == "new_message":
            self._got(payload["message"]["content"])

    def _phx_reply(self, ref: str, payload: Any) -> None:
        if payload.get("status") == "ok":
            self.acks += 1
        else:
            self.errors += 1
        if self.in_flight is not None:
            self.in_flight.release()

    async def connect(self) -> dict[str, Any]:
        url = self.job["ws_url"]
        if self.proto == "phx":

            async def one(member: dict[str, Any]) -> Phx:
                sock = await Phx.open(url, member["token"])
                sock.on_event = self._phx_event
                await sock.join(f"user:{member['user_id']}")
                return sock

            for result in await bounded_gather([functools.partial(one, m) for m in self.job["members"]], 32):
                if isinstance(result, BaseException):
                    raise result
                self.members.append(result)
            sender = self.job.get("sender")
            if sender:
                self.sender = await Phx.open(url, sender["token"])
                self.sender.on_reply = self._phx_reply
                await self.sender.join(f"conversation:{self.job['conversation']}")
            socks = self.members + ([self.sender] if self.sender else [])
            self.tasks.append(asyncio.create_task(heartbeats(socks, 20.0, self.stop)))
        else:
            for _ in self.job["members"]:
                sock = await Bare.open(f"{url}/room/0/receiver")
                sock.on_text = lambda text: self._got(orjson.loads(text)[4]["message"]["content"])
                self.members.append(sock)
            if self.job.get("sender"):
                self.sender = await Bare.open(f"{url}/room/0/sender")
        return {"members": len(self.members)}

    async def _send(self, step: str, idx: int) -> None:
        body = content(f"{step}:{idx}", 128)
        self.sent.setdefault(step, {})[idx] = int(body.split(":", 3)[2])
        if self.proto == "phx":
            if self.in_flight is not None:
                await self.in_flight.acquire()
            await self.sender.push(
                f"conversation:{self.job['conversation']}",
                "new_message",
                {"content": body, "message_type": "text", "client_random": client_random()},
            )
        else:
            await self.sender.ws.send(bare_frame("room:0", body))

    async def run(self) -> dict[str, Any]:
        grace = float(self.job.get("grace", 3.0))
        expected = int(self.job["expected_receivers"])
        for i, step in enumerate(self.job["steps"]):
            name = f"s{i}"
            self.recv.setdefault(name, {})
            if self.sender is not None:
                if "burst" in step:  # saturation: as fast as the acks (window) allow
                    self.in_flight = asyncio.Semaphore(int(step.get("window", 64))) if self.proto == "phx" else None
                    for idx in range(int(step["burst"])):
                        await self._send(name, idx)
                    self.in_flight = None
                else:
                    rate, duration = float(step["rate"]), float(step["duration"])
                    start, idx = time.monotonic(), 0
                    while time.monotonic() - start < duration:
                        due = int((time.monotonic() - start) * rate)
                        while idx < due:
                            await self._send(name, idx)
                            idx += 1
                        await asyncio.sleep(0.002)
            # every process waits the same bounded time for the step's last deliveries
            total = int(step.get("burst", 0)) or int(float(step.get("rate", 0)) * float(step.get("duration", 0)))
            end = time.monotonic() + grace + (0 if self.sender is not None else float(step.get("duration", 0)))
            while time.monotonic() < end:
                seen = self.recv[name]
                if len(seen) >= total and all(c >= expected for c, _ in seen.values()):
                    break
                await asyncio.sleep(0.02)
        return {"sent": self.sent, "recv": self.recv, "acks": self.acks, "errors": self.errors}

    async def close(self) -> None:
        self.stop.set()
        for task in self.tasks:
            task.cancel()
        for sock in [*self.members, self.sender]:
            if sock is not None:
                await sock.close()


# -- idle sockets (B3) ----------------------------------------------------------------------


class IdleJob:
    def __init__(self, job: Job):
        self.job = job
        self.socks: list[Phx] = []
        self.failed = 0
        self.errors: dict[str, int] = {}
        self.stop = asyncio.Event()
        self.tasks: list[asyncio.Task[Any]] = []
        self.connect_s = 0.0

    async def connect(self) -> dict[str, Any]:
        url = self.job["ws_url"]
        ips: list[str] = self.job.get("source_ips") or ["127.0.0.1"]
        per_ip = int(self.job.get("sockets_per_source_ip", 20_000))

        every = float(self.job.get("heartbeat", 30))

        async def beat(sock: Phx) -> None:
            """This socket's heartbeat from the moment it is joined (connecting thousands takes
            longer than the relay's idle timeout), at a random phase so the beats spread out."""
            await asyncio.sleep(random.uniform(0, every))
            while not self.stop.is_set() and not sock.closed_by_server:
                with contextlib.suppress(Exception):
                    await sock.heartbeat()
                await asyncio.sleep(every)

        async def one(i: int, member: dict[str, Any]) -> Phx:
            sock = await Phx.open(url, member["token"], source_ip=ips[(i // per_ip) % len(ips)])
            await sock.join(f"user:{member['user_id']}")
            await sock.join(f"conversation:{member['conversation']}")
            self.tasks.append(asyncio.create_task(beat(sock)))
            return sock

        start = time.monotonic()
        members = self.job["members"]
        results = await bounded_gather(
            [functools.partial(one, i, m) for i, m in enumerate(members)], int(self.job.get("connect_concurrency", 64))
        )
        self.connect_s = time.monotonic() - start
        for result in results:
            if isinstance(result, BaseException):
                self.failed += 1
                key = type(result).__name__ + ": " + str(result)[:80]
                self.errors[key] = self.errors.get(key, 0) + 1
            else:
                self.socks.append(result)
        alive = sum(1 for sock in self.socks if not sock.closed_by_server)
        return {
            "connected": len(self.socks),
            "alive": alive,
            "failed": self.failed,
            "connect_s": self.connect_s,
            "errors": dict(list(self.errors.items())[:5]),
        }

    async def run(self) -> dict[str, Any]:
        await wait_line("stop", float(self.job.get("hold_max", 600)))
        closed = sum(1 for s in self.socks if s.closed_by_server)
        return {
            "connected": len(self.socks),
            "failed": self.failed,
            "closed_by_server": closed,
            "connect_s": self.connect_s,
        }

    async def close(self) -> None:
        self.stop.set()
        for task in self.tasks:
            task.cancel()
        await bounded_gather([s.close for s in self.socks], 256)


# -- HTTP (B4, B5, Synapse B4) ----------------------------------------------------------------


class HttpJob:
    def __init__(self, job: Job):
        self.job = job

    async def connect(self) -> dict[str, Any]:
        return {}

    async def run(self) -> dict[str, Any]:
        host, port = self.job["http"]
        requests: list[dict[str, Any]] = self.job["requests"]
        duration = float(self.job["duration"])
        max_requests = int(self.job.get("max_requests", 10_000_000))
        lat: list[int] = []
        status: dict[str, int] = {}
        count = 0
        rng = random.Random(self.job.get("seed", 1))
        end = time.monotonic() + duration

        async def worker() -> None:
            nonlocal count
            conn = Http(host, port)
            while time.monotonic() < end and count < max_requests:
                count += 1
                req = requests[rng.randrange(len(requests))]
                body = req.get("body")
                data = None
                if body is not None:
                    if "client_random" in body:
                        body = {**body, "client_random": client_random()}
                    data = orjson.dumps(body)
                t0 = now_ns()
                try:
                    code, _ = await conn.request(req.get("method", "GET"), req["path"], req.get("token"), data)
                except (OSError, TimeoutError, asyncio.IncompleteReadError):
                    code = 599
                lat.append((now_ns() - t0) // 1000)
                status[str(code)] = status.get(str(code), 0) + 1
            conn.close()

        start = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(int(self.job.get("connections", 8)))))
        return {"lat_us": lat, "status": status, "n": len(lat), "elapsed": time.monotonic() - start}

    async def close(self) -> None:
        return None


# -- catch-up (B6) --------------------------------------------------------------------------


class CatchupJob:
    def __init__(self, job: Job):
        self.job = job
        self.sender: Phx | None = None

    async def connect(self) -> dict[str, Any]:
        self.sender = await Phx.open(self.job["ws_url"], self.job["sender"])
        await self.sender.join(f"conversation:{self.job['conversation']}")
        return {}

    async def _fill(self, count: int) -> None:
        """The sender pushes `count` messages (64 in flight) while the receiver is away."""
        assert self.sender is not None
        window = asyncio.Semaphore(64)
        topic = f"conversation:{self.job['conversation']}"

        async def one(i: int) -> None:
            async with window:
                reply = await self.sender.call(  # type: ignore[union-attr]
                    topic,
                    "new_message",
                    {"content": content(f"c{i}", 128), "message_type": "text", "client_random": client_random()},
                )
                if reply.get("status") != "ok":
                    raise RuntimeError(f"send refused: {reply}")

        await asyncio.gather(*(one(i) for i in range(count)))

    async def run(self) -> dict[str, Any]:
        url, cid = self.job["ws_url"], self.job["conversation"]
        count = int(self.job["messages"])
        host, port = self.job["http"]
        runs: list[dict[str, Any]] = []
        for _ in range(int(self.job.get("repeats", 3))):
            # the receiver is connected once, learns its last_seq, and goes away
            receiver = await Phx.open(url, self.job["receiver"])
            joined = await receiver.join(f"conversation:{cid}")
            last_seq = int(joined["conversation"].get("last_seq") or 0)
            await receiver.close()
            await self._fill(count)
            # back: rejoin with last_seq, take the replay (or page through REST when told to)
            got: list[int] = []
            done = asyncio.Event()

            def on_event(
                topic: str, event: str, payload: Any, got: list[int] = got, done: asyncio.Event = done
            ) -> None:
                if event == "new_message":
                    got.append(int(payload["message"]["seq"]))
                    if len(got) >= count:
                        done.set()

            start = now_ns()
            receiver = await Phx.open(url, self.job["receiver"])
            receiver.on_event = on_event
            response = await receiver.join(f"conversation:{cid}", {"last_seq": last_seq})
            path = "socket"
            if response.get("catch_up") == "use_rest":
                path = "rest"
                receiver.on_event = None
                got.clear()
                http = Http(host, port)
                after = last_seq
                for _page in range(count):  # bounded: at least one message a page
                    status, body = await http.request(
                        "GET",
                        f"/messaging/api/v1/conversations/{cid}/messages?limit=100&after_seq={after}",
                        self.job["receiver"],
                    )
                    if status != 200:
                        raise RuntimeError(f"history: {status} {body[:200]!r}")
                    data = orjson.loads(body)
                    page = sorted(int(m["seq"]) for m in data["data"])
                    got.extend(page)
                    if not page or not data.get("meta", {}).get("has_more"):
                        break
                    after = page[-1]
                http.close()
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(done.wait(), 60)
            seconds = (now_ns() - start) / 1e9
            await receiver.close()
            expected = list(range(last_seq + 1, last_seq + count + 1))
            runs.append({"seconds": seconds, "received": len(got), "in_order": got[:count] == expected, "path": path})
        return {"runs": runs}

    async def close(self) -> None:
        if self.sender is not None:
            await self.sender.close()


JOBS: dict[str, Callable[[Job], Any]] = {
    "pairs": PairsJob,
    "fanout": FanoutJob,
    "idle": IdleJob,
    "http": HttpJob,
    "catchup": CatchupJob,
}


async def main_async(job: Job) -> None:
    runner = JOBS[job["mode"]](job)
    deadline = float(job.get("deadline", 900))

    async def body() -> None:
        info = await runner.connect()
        say("ready", info)
        if not await wait_line("go", float(job.get("go_timeout", 600))):
            say("result", {"error": "no go from the runner"})
            return
        cpu0, wall0 = cpu_seconds(), time.monotonic()
        result = await runner.run()
        result["cpu_s"] = cpu_seconds() - cpu0
        result["wall_s"] = time.monotonic() - wall0
        say("result", result)

    try:
        await asyncio.wait_for(body(), deadline)
    except Exception as error:
        say("result", {"error": f"{type(error).__name__}: {error}"})
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(runner.close(), 30)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    with open(args[0], "rb") as handle:
        job = orjson.loads(handle.read())
    asyncio.run(main_async(job))
    return 0


if __name__ == "__main__":
    sys.exit(main())
