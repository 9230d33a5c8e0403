"""The state store port: presence and device sessions (architecture.md: in-process on one machine,
Firestore on Google Cloud).

The model, whatever the adapter:

- A **device session** is one open socket: user, device, the relay instance holding it, when it
  connected, and its status: `online`, or `away` after `away_after` seconds without activity
  (client pushes; heartbeats are not activity).
- While it lives, the session is **present on the conversation topics its socket joined**, in the
  Phoenix Presence shape: `{user_id: {metas: [meta, ...]}}`, one meta per session and topic
  (`phx_ref` tells them apart; `device_id`, `online_at`, `status` describe it). A status change
  replaces the meta: the new one (new `phx_ref`, `phx_ref_prev` = the old) joins, the old leaves,
  as Phoenix Presence updates do.
- A **user** is online while any session lives, away when every live session is away, and
  offline with `last_seen` once the last one closed (or the relay instance holding it stopped
  heartbeating). Metas leaving because their socket ended carry `last_seen`.

Changes are announced to the listeners as `PresenceDiff`s (one per topic) **after** the store
has them: a relay publishes a diff on the event bus only once a reader joining later would find
the same change in the store, so a join that subscribes before it reads misses nothing.

Reads (`presence_state`, `user_presence`, `device_sessions`, `tick`) may do network I/O: call
them from a worker thread. The other calls never block on the network.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

Meta = dict[str, Any]
State = dict[str, dict[str, list[Meta]]]  # {user_id: {"metas": [meta, ...]}}
Status = Literal["online", "away"]

ONLINE: Status = "online"
AWAY: Status = "away"


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class PresenceDiff:
    """A `presence_diff` for one topic."""

    topic: str
    joins: State
    leaves: State

    def payload(self) -> dict[str, State]:
        return {"joins": self.joins, "leaves": self.leaves}


PresenceListener = Callable[[Sequence[PresenceDiff]], None]


@dataclass(frozen=True)
class DeviceSession:
    """One open socket of one user's device, and where it is served."""

    session_id: str
    user_id: str
    device_id: str | None
    instance_id: str
    online_at: datetime
    status: Status = ONLINE
    metas: Mapping[str, Meta] = field(default_factory=dict)  # topic -> this session's meta there

    @property
    def topics(self) -> tuple[str, ...]:
        return tuple(self.metas)


@dataclass(frozen=True)
class UserPresence:
    user_id: str
    status: Literal["online", "away", "offline"]
    last_seen: datetime | None  # when the last session ended (None: never seen, or online)
    sessions: tuple[DeviceSession, ...] = ()


def user_presence_of(user_id: str, sessions: Sequence[DeviceSession], last_seen: datetime | None) -> UserPresence:
    """The aggregate: online if any live session is, away if all are, else offline."""
    if not sessions:
        return UserPresence(user_id, "offline", last_seen)
    status: Literal["online", "away"] = ONLINE if any(s.status == ONLINE for s in sessions) else AWAY
    ordered = tuple(sorted(sessions, key=lambda s: (s.online_at, s.session_id)))
    return UserPresence(user_id, status, None, ordered)


def merge_states(*states: State) -> State:
    merged: State = {}
    for state in states:
        for user_id, entry in state.items():
            merged.setdefault(user_id, {"metas": []})["metas"].extend(entry["metas"])
    return merged


class StateStore(Protocol):
    """Presence and device sessions. `instance_id` names the relay instance whose sockets this
    store object tracks (each instance writes only its own sessions)."""

    instance_id: str

    def subscribe(self, listener: PresenceListener) -> Callable[[], None]:
        """Hear presence diffs once persisted; returns a function that unsubscribes."""
        ...

    def connect(self, user_id: str, device_id: str | None) -> DeviceSession:
        """A socket opened on this instance."""
        ...

    def disconnect(self, session_id: str) -> None:
        """The socket closed: it leaves every topic (metas with `last_seen`) and the user's
        `last_seen` moves to now."""
        ...

    def track(self, session_id: str, topic: str) -> None:
        """The socket joined `topic` (announced as a join)."""
        ...

    def untrack(self, session_id: str, topic: str) -> None:
        """The socket left `topic` (announced as a leave); nothing if it was not tracked."""
        ...

    def activity(self, session_id: str) -> None:
        """The client did something: an away session is online again."""
        ...

    def tick(self) -> None:
        """Periodic upkeep, every few seconds: sessions idle past `away_after` go away; stores
        shared by several instances also end the sessions of instances that stopped
        heartbeating. May block."""
        ...

    def presence_state(self, topic: str) -> State:
        """Everyone present on `topic`, every instance included. May block."""
        ...

    def user_presence(self, user_id: str) -> UserPresence:
        """A user's aggregate presence and live sessions, every instance included. May block."""
        ...

    def present_users(self, user_ids: Collection[str]) -> set[str]:
        """Those of `user_ids` with a live session (online or away) on any instance: what
        `user_presence(u).status != "offline"` says of each, asked for many users at once (the
        push planner asks for a whole pass's members). May block."""
        ...

    def close(self) -> None:
        """A clean shutdown: this instance's sessions end."""
        ...
