"""Presence and device sessions on Firestore (the state store port, shared/ports/state.py).

Documents (native mode, no composite index needed: every query has one equality or one
inequality on one field):

- `presence_sessions/{session_id}`: one per open socket (user, device, relay instance):
  `user_id, device_id, instance_id, online_at, status, topics[], metas{topic: meta}`. Written by
  the instance holding the socket when it connects, joins or leaves topics, changes status
  (away/online) and disconnects (deleted). `topics` answers "who is on this conversation"
  (`array_contains`), `user_id` "is this user online".
- `presence_instances/{instance_id}`: `heartbeat_at, expires_at` of a relay instance, refreshed
  every `heartbeat_seconds`. A session is live while its instance is: one heartbeat write per
  instance instead of one per socket (50,000 sockets per instance would otherwise be thousands of
  writes per second). An instance whose `expires_at` passed (killed, partitioned) is ended by
  whichever live instance claims it first (a transaction): its sessions are deleted, their users'
  `last_seen` moves to its last heartbeat, and the leaves are announced.
- `presence_users/{user_id}`: `last_seen_ms`, moved forward with Firestore's `Maximum`
  transform when a session ends; offline users show it.

Write rate: Firestore takes about one sustained write per second per document. This instance
writes each document at most once per `min_write_interval` (1 s): changes that come faster are
coalesced (the latest state of the document wins; a first change waits `settle_seconds` for the
ones that usually follow it, so a socket that connects and joins 50 conversations is one or two
writes, not 51). Heartbeats (phoenix `heartbeat` frames) and activity do not write
at all; only status transitions do.

Consistency: the relay announces a presence change (on the event bus) only once its write has
committed, and a join subscribes to the bus before it reads `presence_state`; so a reader never
misses a change that the store did not have yet. This instance's own sockets are read from
memory (they are the latest truth and may still be waiting for their coalesced write).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter

from shared.ports.state import (
    ONLINE,
    DeviceSession,
    PresenceDiff,
    PresenceListener,
    State,
    UserPresence,
    iso,
    merge_states,
    user_presence_of,
)
from shared.relay.presence import Presence

log = logging.getLogger(__name__)

SESSIONS = "presence_sessions"
INSTANCES = "presence_instances"
USERS = "presence_users"
MAX_BATCH = 500  # Firestore's limit of writes per commit
LIVENESS_CACHE_SECONDS = 1.0
MAX_IN_VALUES = 30  # Firestore's limit of values in one `in` filter


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


@dataclass
class _Write:
    kind: Literal["set", "delete", "last_seen"]
    data: dict[str, Any] | None
    due: float
    diffs: list[PresenceDiff] = field(default_factory=list)
    last_seen_ms: int = 0


class FirestoreStateStore:
    def __init__(
        self,
        project: str,
        *,
        database: str = "(default)",
        instance_id: str | None = None,
        away_after_seconds: float = 300.0,
        heartbeat_seconds: float = 15.0,
        lease_seconds: float = 45.0,
        min_write_interval: float = 1.0,
        settle_seconds: float = 0.15,
        client: firestore.Client | None = None,
    ):
        if lease_seconds <= heartbeat_seconds:
            raise ValueError("the lease must outlast the heartbeat interval")
        self.instance_id = instance_id or uuid.uuid4().hex[:12]
        self._client = client or firestore.Client(project=project, database=database)
        self._sessions = self._client.collection(SESSIONS)
        self._instances = self._client.collection(INSTANCES)
        self._users = self._client.collection(USERS)
        self._heartbeat = heartbeat_seconds
        self._lease = lease_seconds
        self._min_interval = min_write_interval
        self._settle = settle_seconds  # a change waits this long for the ones that usually follow
        self._local = Presence(
            instance_id=self.instance_id, away_after_seconds=away_after_seconds, on_change=self._local_changed
        )
        self._listeners: list[PresenceListener] = []
        self._listeners_lock = threading.Lock()
        # the writer: documents waiting (latest state wins) and when each was last written
        self._cond = threading.Condition()
        self._pending: dict[str, _Write] = {}
        self._written: dict[str, float] = {}
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._next_heartbeat = 0.0
        self._last_heartbeat_ok: float | None = None
        self._rewrite = False  # our heartbeat lapsed: write every session again
        self._inflight = 0
        self._liveness: dict[str, tuple[float, bool]] = {}  # instance -> (valid until, live)
        self._next_reap = 0.0
        self.documents_written = 0  # for observability (and tests): document writes committed

    # -- the port: this instance's sockets (never blocks on the network) -----------------------

    def subscribe(self, listener: PresenceListener) -> Callable[[], None]:
        with self._listeners_lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._listeners_lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe

    def connect(self, user_id: str, device_id: str | None) -> DeviceSession:
        return self._local.connect(user_id, device_id)

    def disconnect(self, session_id: str) -> None:
        self._local.disconnect(session_id)

    def track(self, session_id: str, topic: str) -> None:
        self._local.track(session_id, topic)

    def untrack(self, session_id: str, topic: str) -> None:
        self._local.untrack(session_id, topic)

    def activity(self, session_id: str) -> None:
        self._local.activity(session_id)

    # -- the port: reads and upkeep (block on the network: worker threads) ----------------------

    def presence_state(self, topic: str) -> State:
        docs = self._sessions.where(filter=FieldFilter("topics", "array_contains", topic)).stream()
        remote = self._live_sessions(d.to_dict() or {} for d in docs)
        state: State = {}
        for data in remote:
            meta = (data.get("metas") or {}).get(topic)
            if isinstance(meta, dict):
                state.setdefault(data["user_id"], {"metas": []})["metas"].append(meta)
        return merge_states(self._local.presence_state(topic), state)

    def user_presence(self, user_id: str) -> UserPresence:
        docs = self._sessions.where(filter=FieldFilter("user_id", "==", user_id)).stream()
        remote = [self._session_of(d) for d in self._live_sessions(doc.to_dict() or {} for doc in docs)]
        last_seen = self._local.last_seen(user_id)
        stored = (self._users.document(user_id).get().to_dict() or {}).get("last_seen_ms")
        if isinstance(stored, (int, float)):
            remembered = datetime.fromtimestamp(stored / 1000, timezone.utc)
            last_seen = remembered if last_seen is None else max(last_seen, remembered)
        return user_presence_of(user_id, [*self._local.local_sessions(user_id), *remote], last_seen)

    def present_users(self, user_ids: Collection[str]) -> set[str]:
        """This instance's sessions from memory; for the others, one query per `MAX_IN_VALUES`
        users (`user_id in [...]`) instead of two reads per user."""
        present = self._local.present_users(user_ids)
        others = sorted(set(user_ids) - present)
        for start in range(0, len(others), MAX_IN_VALUES):
            chunk = others[start : start + MAX_IN_VALUES]
            docs = self._sessions.where(filter=FieldFilter("user_id", "in", chunk)).stream()
            present.update(data["user_id"] for data in self._live_sessions(doc.to_dict() or {} for doc in docs))
        return present

    def tick(self) -> None:
        self._local.tick()
        now = time.monotonic()
        if now >= self._next_reap:
            self._next_reap = now + self._heartbeat
            self._reap_lapsed_instances()

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until every change made so far is written (tests; shutdown)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while (self._pending or self._inflight) and self._thread is not None and self._thread.is_alive():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.05))
            return not self._pending and not self._inflight

    def close(self) -> None:
        """A clean shutdown: this instance's sessions end now, then its heartbeat document goes."""
        for session in self._local.local_sessions():
            self._local.disconnect(session.session_id)
        with self._cond:
            if self._thread is None:
                return
            self._put(f"{INSTANCES}/{self.instance_id}", "delete", None, ())
            self._stopping = True
            self._cond.notify_all()
        self._thread.join(30)
        with self._listeners_lock:
            self._listeners.clear()

    # -- changes of this instance's sessions -> coalesced writes --------------------------------

    def _local_changed(self, session: DeviceSession, diffs: Sequence[PresenceDiff], ended: datetime | None) -> None:
        """From the local presence, under its lock (so writes are queued in the order made)."""
        with self._cond:
            self._start()
            path = f"{SESSIONS}/{session.session_id}"
            if ended is None:
                self._put(path, "set", self._document(session), diffs)
            else:
                # The delete and the user's last_seen go in one commit: no reader sees the user
                # gone with an older last_seen, or last_seen moved while the session is still there.
                user = f"{USERS}/{session.user_id}"
                due = self._put(path, "delete", None, diffs, not_before=self._earliest(user))
                self._put(user, "last_seen", None, (), last_seen_ms=_ms(ended), not_before=due)

    def _document(self, session: DeviceSession) -> dict[str, Any]:
        return {
            "session_id": session.session_id,
            "user_id": session.user_id,
            "device_id": session.device_id,
            "instance_id": self.instance_id,
            "online_at": session.online_at,
            "status": session.status,
            "topics": list(session.metas),
            "metas": {topic: dict(meta) for topic, meta in session.metas.items()},
        }

    def _put(
        self,
        path: str,
        kind: Literal["set", "delete", "last_seen"],
        data: dict[str, Any] | None,
        diffs: Iterable[PresenceDiff],
        *,
        last_seen_ms: int = 0,
        not_before: float = 0.0,
    ) -> float:
        """Queue a document's new state (under `_cond`); returns when it will be written."""
        now = time.monotonic()
        write = self._pending.get(path)
        if write is None:
            due = max(now + self._settle, self._written.get(path, float("-inf")) + self._min_interval, not_before)
            write = self._pending[path] = _Write(kind, data, due)
        else:
            write.due = max(write.due, not_before)
            if kind != "last_seen":
                write.kind, write.data = kind, data
        write.diffs.extend(diffs)
        write.last_seen_ms = max(write.last_seen_ms, last_seen_ms)
        self._cond.notify_all()
        return write.due

    def _earliest(self, path: str) -> float:
        """When a write of `path` queued now would go (under `_cond`)."""
        waiting = self._pending.get(path)
        if waiting is not None:
            return waiting.due
        return max(time.monotonic() + self._settle, self._written.get(path, float("-inf")) + self._min_interval)

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name=f"firestore presence {self.instance_id}", daemon=True
            )
            self._thread.start()

    def _run(self) -> None:
        try:  # sessions a previous process with our instance id left behind are over
            self._end_sessions_of(self.instance_id, _utcnow(), keep_instance=True)
        except Exception:
            log.exception("clearing the sessions a previous %s left failed", self.instance_id)
        while True:
            if self._rewrite:
                self._rewrite = False
                self._local.replay()  # outside `_cond`: the local presence's lock comes first
            with self._cond:
                while True:
                    now = time.monotonic()
                    if not self._stopping and now >= self._next_heartbeat:
                        self._queue_heartbeat(now)
                    ready = [p for p, w in self._pending.items() if w.due <= now or self._stopping]
                    if ready:
                        batch = [(p, self._pending.pop(p)) for p in ready[:MAX_BATCH]]
                        for path, _ in batch:  # counted from now: a change meanwhile waits its turn
                            self._written[path] = now
                        self._inflight += 1
                        break
                    if self._stopping:
                        self._cond.notify_all()
                        return
                    wake = min([w.due for w in self._pending.values()] + [self._next_heartbeat])
                    self._cond.wait(max(0.0, wake - now))
            self._commit(batch)

    def _queue_heartbeat(self, now: float) -> None:
        self._next_heartbeat = now + self._heartbeat
        if self._last_heartbeat_ok is not None and now - self._last_heartbeat_ok > self._lease:
            # Silent past our own lease: another instance may have ended our sessions. Write them again.
            log.warning("presence heartbeat of %s lapsed; rewriting its sessions", self.instance_id)
            self._rewrite = True
        wall = _utcnow()
        self._put(
            f"{INSTANCES}/{self.instance_id}",
            "set",
            {
                "instance_id": self.instance_id,
                "heartbeat_at": wall,
                "expires_at": wall + timedelta(seconds=self._lease),
            },
            (),
        )

    def _commit(self, writes: list[tuple[str, _Write]]) -> None:
        batch = self._client.batch()
        for path, write in writes:
            ref = self._client.document(path)
            if write.kind == "set":
                batch.set(ref, write.data or {})
            elif write.kind == "delete":
                batch.delete(ref)
            else:
                batch.set(ref, {"last_seen_ms": firestore.Maximum(write.last_seen_ms)}, merge=True)
        try:
            batch.commit()
        except Exception:
            log.exception("writing %d presence documents failed; retrying", len(writes))
            with self._cond:
                self._inflight -= 1
                retry = time.monotonic() + 1.0
                for path, write in writes:
                    newer = self._pending.get(path)
                    if newer is None:
                        write.due = retry
                        self._pending[path] = write
                    else:  # a newer state waits already: it wins, the older diffs go first
                        newer.diffs[:0] = write.diffs
                        newer.last_seen_ms = max(newer.last_seen_ms, write.last_seen_ms)
                        newer.due = max(newer.due, retry)
            return
        now = time.monotonic()
        with self._cond:
            self._inflight -= 1
            self.documents_written += len(writes)
            if any(path == f"{INSTANCES}/{self.instance_id}" for path, _ in writes):
                self._last_heartbeat_ok = now
            stale = [p for p, at in self._written.items() if now - at > self._min_interval]
            for path in stale:
                del self._written[path]
            self._cond.notify_all()
        self._announce([d for _, write in writes for d in write.diffs])

    def _announce(self, diffs: Sequence[PresenceDiff]) -> None:
        if not diffs:
            return
        with self._listeners_lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(diffs)
            except Exception:
                log.exception("a presence listener failed")

    # -- other instances -------------------------------------------------------------------------

    def _live_sessions(self, documents: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        """Other instances' session documents whose instance still heartbeats (ours are in memory)."""
        others = [d for d in documents if d.get("instance_id") != self.instance_id and "user_id" in d]
        live = self._live_instances({d["instance_id"] for d in others})
        return [d for d in others if live.get(d["instance_id"], False)]

    def _live_instances(self, ids: set[str]) -> dict[str, bool]:
        now = time.monotonic()
        result: dict[str, bool] = {}
        missing = []
        for instance_id in ids:
            cached = self._liveness.get(instance_id)
            if cached is not None and cached[0] > now:
                result[instance_id] = cached[1]
            else:
                missing.append(instance_id)
        if missing:
            wall = _utcnow()
            for snapshot in self._client.get_all([self._instances.document(i) for i in missing]):
                expires = (snapshot.to_dict() or {}).get("expires_at") if snapshot.exists else None
                live = isinstance(expires, datetime) and expires > wall
                result[snapshot.id] = live
                self._liveness[snapshot.id] = (now + LIVENESS_CACHE_SECONDS, live)
        if len(self._liveness) > 10_000:
            self._liveness = {k: v for k, v in self._liveness.items() if v[0] > now}
        return result

    def _session_of(self, data: dict[str, Any]) -> DeviceSession:
        return DeviceSession(
            session_id=str(data.get("session_id") or ""),
            user_id=data["user_id"],
            device_id=data.get("device_id"),
            instance_id=data["instance_id"],
            online_at=data.get("online_at") or _utcnow(),
            status=data.get("status") or ONLINE,
            metas=dict(data.get("metas") or {}),
        )

    def _reap_lapsed_instances(self) -> None:
        wall = _utcnow()
        lapsed = self._instances.where(filter=FieldFilter("expires_at", "<", wall)).stream()
        for snapshot in lapsed:
            if snapshot.id == self.instance_id:
                continue
            last_alive = (snapshot.to_dict() or {}).get("heartbeat_at")
            if self._claim(snapshot.reference, wall):
                self._end_sessions_of(snapshot.id, last_alive if isinstance(last_alive, datetime) else wall)

    def _claim(self, ref: Any, wall: datetime) -> bool:
        """Whoever's transaction marks the lapsed instance first ends its sessions. A claim older
        than a lease (the claimer died too) can be taken again."""
        transaction = self._client.transaction()

        @firestore.transactional
        def claim(tx: Any) -> bool:
            snapshot = ref.get(transaction=tx)
            if not snapshot.exists:
                return False
            data = snapshot.to_dict() or {}
            expires, claimed = data.get("expires_at"), data.get("reaping_at")
            if not isinstance(expires, datetime) or expires >= wall:
                return False
            if isinstance(claimed, datetime) and claimed > wall - timedelta(seconds=self._lease):
                return False
            tx.update(ref, {"reaping_at": wall, "reaped_by": self.instance_id})
            return True

        try:
            return bool(claim(transaction))
        except Exception:
            log.exception("claiming lapsed relay instance %s failed", ref.id)
            return False

    def _end_sessions_of(self, instance_id: str, last_alive: datetime, *, keep_instance: bool = False) -> None:
        docs = list(self._sessions.where(filter=FieldFilter("instance_id", "==", instance_id)).stream())
        diffs: list[PresenceDiff] = []
        users: dict[str, int] = {}
        seen = iso(last_alive)
        for doc in docs:
            data = doc.to_dict() or {}
            user_id = data.get("user_id")
            if not isinstance(user_id, str):
                continue
            users[user_id] = _ms(last_alive)
            for topic, meta in (data.get("metas") or {}).items():
                diffs.append(PresenceDiff(topic, {}, {user_id: {"metas": [{**meta, "last_seen": seen}]}}))
        writes: list[tuple[str, Any]] = [("delete", doc.reference) for doc in docs]
        writes += [("last_seen", (self._users.document(u), ms)) for u, ms in users.items()]
        for start in range(0, len(writes), MAX_BATCH):
            batch = self._client.batch()
            for kind, target in writes[start : start + MAX_BATCH]:
                if kind == "delete":
                    batch.delete(target)
                else:
                    batch.set(target[0], {"last_seen_ms": firestore.Maximum(target[1])}, merge=True)
            batch.commit()
        if not keep_instance:
            self._instances.document(instance_id).delete()
        if docs:
            log.info("ended %d sessions of lapsed relay instance %s", len(docs), instance_id)
        self._announce(diffs)
