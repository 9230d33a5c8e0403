"""In-process presence: the state store port's embedded adapter (shared/ports/state.py), in the
Phoenix Presence shape `{user_id: {metas: [meta, ...]}}`, one meta per socket and topic (its
`phx_ref` tells the joins of one user apart, e.g. two devices).

It knows this process's sockets only. With several relay instances presence lives in the shared
state store (`shared/adapters/firestore_state.py`, which keeps one of these for its own sockets
and persists what changes); the shapes stay the same.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone

from shared.ports.state import (
    AWAY,
    ONLINE,
    DeviceSession,
    Meta,
    PresenceDiff,
    PresenceListener,
    State,
    Status,
    UserPresence,
    iso,
    user_presence_of,
)

# (the session as it is now, the diffs of the change, when it ended if it did)
ChangeHook = Callable[[DeviceSession, Sequence[PresenceDiff], datetime | None], None]


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _ref() -> str:
    return uuid.uuid4().hex


@dataclass(slots=True)
class _Session:
    session_id: str
    user_id: str
    device_id: str | None
    online_at: datetime
    last_active: float
    status: Status = ONLINE
    metas: dict[str, Meta] = field(default_factory=dict)  # topic -> meta


class Presence:
    def __init__(
        self,
        *,
        instance_id: str = "local",
        away_after_seconds: float = 300.0,
        clock: Callable[[], datetime] = _utcnow,
        on_change: ChangeHook | None = None,
    ):
        self.instance_id = instance_id
        self._away_after = away_after_seconds
        self._clock = clock
        self._on_change = on_change  # a persisting adapter takes the changes here (else: listeners)
        self._lock = threading.RLock()
        # topic -> user_id -> phx_ref -> meta
        self._topics: dict[str, dict[str, dict[str, Meta]]] = {}
        self._sessions: dict[str, _Session] = {}
        self._by_user: dict[str, set[str]] = {}
        self._last_seen: dict[str, datetime] = {}
        self._listeners: list[PresenceListener] = []

    # -- the port ---------------------------------------------------------------------------

    def subscribe(self, listener: PresenceListener) -> Callable[[], None]:
        with self._lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe

    def connect(self, user_id: str, device_id: str | None) -> DeviceSession:
        with self._lock:
            session = _Session(str(uuid.uuid4()), user_id, device_id, self._clock(), time.monotonic())
            self._sessions[session.session_id] = session
            self._by_user.setdefault(user_id, set()).add(session.session_id)
            self._changed(session, [], None)
            return self._snapshot(session)

    def disconnect(self, session_id: str) -> None:
        with self._lock:
            session = self._sessions.pop(session_id, None)
            if session is None:
                return
            ended = self._clock()
            diffs = []
            for topic in list(session.metas):
                meta = self._remove(session, topic)
                diffs.append(PresenceDiff(topic, {}, {session.user_id: {"metas": [{**meta, "last_seen": iso(ended)}]}}))
            ids = self._by_user.get(session.user_id, set())
            ids.discard(session_id)
            if not ids:
                self._by_user.pop(session.user_id, None)
            previous = self._last_seen.get(session.user_id)
            self._last_seen[session.user_id] = ended if previous is None else max(previous, ended)
            self._changed(session, diffs, ended)

    def track(self, session_id: str, topic: str) -> None:
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                return
            leaves: State = {}
            if topic in session.metas:  # joined again on the same socket: the old join leaves
                leaves = {session.user_id: {"metas": [self._remove(session, topic)]}}
            meta: Meta = {
                "phx_ref": _ref(),
                "device_id": session.device_id,
                "online_at": iso(session.online_at),
                "status": session.status,
            }
            self._add(session, topic, meta)
            diff = PresenceDiff(topic, {session.user_id: {"metas": [dict(meta)]}}, leaves)
            self._changed(session, [diff], None)

    def untrack(self, session_id: str, topic: str) -> None:
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None or topic not in session.metas:
                return
            meta = self._remove(session, topic)
            self._changed(session, [PresenceDiff(topic, {}, {session.user_id: {"metas": [meta]}})], None)

    def activity(self, session_id: str) -> None:
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                return
            session.last_active = time.monotonic()
            if session.status == AWAY:
                self._set_status(session, ONLINE)

    def tick(self) -> None:
        with self._lock:
            idle_since = time.monotonic() - self._away_after
            for session in list(self._sessions.values()):
                if session.status == ONLINE and session.last_active <= idle_since:
                    self._set_status(session, AWAY)

    def presence_state(self, topic: str) -> State:
        with self._lock:
            return {
                user: {"metas": [dict(m) for m in metas.values()]}
                for user, metas in self._topics.get(topic, {}).items()
            }

    def user_presence(self, user_id: str) -> UserPresence:
        with self._lock:
            return user_presence_of(user_id, self.local_sessions(user_id), self._last_seen.get(user_id))

    def present_users(self, user_ids: Collection[str]) -> set[str]:
        with self._lock:
            return {user_id for user_id in user_ids if self._by_user.get(user_id)}

    def close(self) -> None:
        with self._lock:
            self._listeners.clear()

    # -- for the adapters built on this one ------------------------------------------------------

    def replay(self) -> None:
        """Tell the change hook every session's current state again (no diffs): a persisting
        adapter rewrites them after its store may have lost them."""
        with self._lock:
            for session in list(self._sessions.values()):
                self._changed(session, [], None)

    def local_sessions(self, user_id: str | None = None) -> list[DeviceSession]:
        with self._lock:
            ids = self._sessions if user_id is None else self._by_user.get(user_id, set())
            return [self._snapshot(self._sessions[i]) for i in ids]

    def last_seen(self, user_id: str) -> datetime | None:
        with self._lock:
            return self._last_seen.get(user_id)

    def online_users(self, topic: str) -> set[str]:
        with self._lock:
            return set(self._topics.get(topic, {}))

    # -- internals (under the lock) -------------------------------------------------------------

    def _snapshot(self, session: _Session) -> DeviceSession:
        return DeviceSession(
            session.session_id,
            session.user_id,
            session.device_id,
            self.instance_id,
            session.online_at,
            session.status,
            {t: dict(m) for t, m in session.metas.items()},
        )

    def _add(self, session: _Session, topic: str, meta: Meta) -> None:
        session.metas[topic] = meta
        self._topics.setdefault(topic, {}).setdefault(session.user_id, {})[meta["phx_ref"]] = meta

    def _remove(self, session: _Session, topic: str) -> Meta:
        meta = session.metas.pop(topic)
        users = self._topics.get(topic, {})
        refs = users.get(session.user_id, {})
        refs.pop(meta["phx_ref"], None)
        if not refs:
            users.pop(session.user_id, None)
        if not users:
            self._topics.pop(topic, None)
        return dict(meta)

    def _set_status(self, session: _Session, status: Status) -> None:
        """A status change replaces each meta (Phoenix Presence's update: new ref joins, old leaves)."""
        session.status = status
        diffs = []
        for topic in list(session.metas):
            old = self._remove(session, topic)
            new = {**old, "phx_ref": _ref(), "phx_ref_prev": old["phx_ref"], "status": status}
            self._add(session, topic, new)
            diffs.append(
                PresenceDiff(topic, {session.user_id: {"metas": [dict(new)]}}, {session.user_id: {"metas": [old]}})
            )
        self._changed(session, diffs, None)

    def _changed(self, session: _Session, diffs: Sequence[PresenceDiff], ended: datetime | None) -> None:
        """Told under the lock, so that every listener hears one session's changes in order."""
        if self._on_change is not None:
            self._on_change(self._snapshot(session), diffs, ended)
        elif diffs:
            for listener in list(self._listeners):
                listener(diffs)


def diff(joins: State, leaves: State) -> dict[str, State]:
    return {"joins": joins, "leaves": leaves}
