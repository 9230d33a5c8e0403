"""In-process presence per topic, in the Phoenix Presence shape: `{user_id: {metas: [meta, ...]}}`,
one meta per joined socket (its `phx_ref` tells the joins of one user apart, e.g. two devices).

This instance's sockets only: with several relay instances, presence belongs in the shared state
store (Firestore in GCP); the shapes stay the same.
"""

from __future__ import annotations

from typing import Any

Meta = dict[str, Any]
State = dict[str, dict[str, list[Meta]]]


class Presence:
    def __init__(self) -> None:
        # topic -> user_id -> phx_ref -> meta
        self._topics: dict[str, dict[str, dict[str, Meta]]] = {}

    def track(self, topic: str, user_id: str, phx_ref: str, meta: Meta) -> State:
        """Add one join; returns the diff's `joins` part."""
        full = {**meta, "phx_ref": phx_ref}
        self._topics.setdefault(topic, {}).setdefault(user_id, {})[phx_ref] = full
        return {user_id: {"metas": [full]}}

    def untrack(self, topic: str, user_id: str, phx_ref: str) -> State:
        """Remove one join; returns the diff's `leaves` part (empty if it was not tracked)."""
        users = self._topics.get(topic)
        if users is None or phx_ref not in users.get(user_id, {}):
            return {}
        meta = users[user_id].pop(phx_ref)
        if not users[user_id]:
            del users[user_id]
        if not users:
            del self._topics[topic]
        return {user_id: {"metas": [meta]}}

    def state(self, topic: str) -> State:
        return {user: {"metas": list(metas.values())} for user, metas in self._topics.get(topic, {}).items()}

    def online_users(self, topic: str) -> set[str]:
        return set(self._topics.get(topic, {}))


def diff(joins: State, leaves: State) -> dict[str, State]:
    return {"joins": joins, "leaves": leaves}
