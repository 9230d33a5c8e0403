"""GET /sync: a device catches up with exactly the server's state (PostgreSQL)."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support import RunningServer, UserClient, assert_error, client_random
from tests.sync.replica import Replica


def _head(client: UserClient) -> str:
    response = client.get("/sync")
    assert response.status_code == 200 and response.json()["data"] == []
    return str(response.json()["meta"]["next_cursor"])


def test_sync_returns_changes_in_order_with_paging(server: RunningServer) -> None:
    alice, bob = server.client(), server.client()
    start = _head(bob)
    cid = alice.direct_with(bob)["id"]
    sent = [alice.send(cid, f"m{i}") for i in range(5)]
    alice.put(f"/messages/{sent[0]['id']}", {"content": "m0 edited"})
    bob.post(f"/conversations/{cid}/read", {"up_to_seq": 5})
    seen: list[dict[str, Any]] = []
    cursor, requests = start, 0
    while True:
        page = bob.get("/sync", params={"since": cursor, "limit": 2}).json()
        requests += 1
        seen += page["data"]
        cursor = page["meta"]["next_cursor"]
        if not page["meta"]["has_more"]:
            break
    names = [c["event"] for c in seen]
    assert names == ["conversation_created", *["new_message"] * 5, "message_updated", "conversation_read"]
    assert [c["seq"] for c in seen if c["event"] == "new_message"] == [1, 2, 3, 4, 5]
    assert requests == 4
    # nothing new: same cursor, no changes
    again = bob.get("/sync", params={"since": cursor}).json()
    assert again["data"] == [] and again["meta"]["next_cursor"] == cursor


def test_sync_is_private_and_follows_membership(server: RunningServer) -> None:
    alice, bob, eve = server.client(), server.client(), server.client()
    eve_start = _head(eve)
    cid = alice.group_with(bob, eve)["id"]
    alice.send(cid, "before")
    bob.post(f"/conversations/{cid}/archive")  # bob's own setting: not for others
    alice.delete(f"/conversations/{cid}/members/{eve.user_id}")
    alice.send(cid, "after eve left")
    changes = eve.get("/sync", params={"since": eve_start, "limit": 100}).json()["data"]
    names = [c["event"] for c in changes]
    assert "conversation_archived" not in names
    assert names[-1] == "member_removed" and changes[-1]["payload"]["user_id"] == eve.user_id
    # like the REST API, a former member reads nothing of the conversation: only that they are out
    assert not [c for c in changes if c["event"] == "new_message"]
    bobs = [
        c["payload"]["message"]["content"]
        for c in bob.get("/sync", params={"since": eve_start, "limit": 100}).json()["data"]
        if c["event"] == "new_message" and c["payload"]["message"]["message_type"] == "text"
    ]
    assert bobs == ["before", "after eve left"]


def test_bad_cursor_is_a_400(server: RunningServer) -> None:
    alice = server.client()
    assert_error(alice.get("/sync", params={"since": "yesterday"}), 400, "invalid_cursor")
    assert_error(alice.get("/sync", params={"since": "1-2", "limit": "many"}), 400)


OPS = [
    "direct",
    "group",
    "send",
    "send",
    "send",
    "edit",
    "delete_me",
    "delete_all",
    "read",
    "add",
    "remove",
    "rename",
    "pin",
    "archive",
    "snapshot",
]


class World:
    """Three users doing random things; Alice's devices are checked."""

    def __init__(self, server: RunningServer):
        self.users = [server.client() for _ in range(3)]
        self.alice = self.users[0]
        self.convs: list[str] = []
        self.sent: list[tuple[int, str]] = []  # (user index, message id)

    def seed(self) -> None:
        """A group of all three and a direct conversation, so that random ops have targets."""
        self.convs.append(self.alice.group_with(*self.users[1:], name="seed")["id"])
        self.convs.append(self.alice.direct_with(self.users[1])["id"])
        for i, user in enumerate(self.users):
            self.sent.append((i, user.send(self.convs[0], f"hello from {i}")["id"]))

    def pick_conv(self, n: int) -> str | None:
        return self.convs[n % len(self.convs)] if self.convs else None

    def run(self, op: str, who: int, other: int, n: int) -> None:
        user = self.users[who]
        cid = self.pick_conv(n)
        if op == "direct" and who != other:
            self.convs.append(user.direct_with(self.users[other])["id"])
        elif op == "group":
            others = [u for i, u in enumerate(self.users) if i != who]
            self.convs.append(user.group_with(*others, name=f"g{n}")["id"])
        elif op == "send" and cid:
            body = {"content": f"c{n}", "client_random": client_random()}
            response = user.post(f"/conversations/{cid}/messages", body)
            if response.status_code == 201:
                self.sent.append((who, response.json()["data"]["id"]))
        elif op in ("edit", "delete_me", "delete_all") and self.sent:
            owner, mid = self.sent[n % len(self.sent)]
            actor = self.users[owner] if op != "delete_me" else user
            if op == "edit":
                actor.put(f"/messages/{mid}", {"content": f"e{n}"})
            else:
                actor.delete(f"/messages/{mid}", params={"delete_for_everyone": str(op == "delete_all").lower()})
        elif op == "read" and cid:
            user.post(f"/conversations/{cid}/read", {})
        elif op == "add" and cid:
            user.post(f"/conversations/{cid}/members", {"user_id": self.users[other].user_id})
        elif op == "remove" and cid and who != other:
            user.delete(f"/conversations/{cid}/members/{self.users[other].user_id}")
        elif op == "rename" and cid:
            user.put(f"/conversations/{cid}", {"name": f"r{n}"})
        elif op == "pin" and cid:
            user.request("POST" if n % 2 else "DELETE", f"/conversations/{cid}/pin")
        elif op == "archive" and cid:
            user.request("POST" if n % 2 else "DELETE", f"/conversations/{cid}/archive")


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    ops=st.lists(
        st.tuples(st.sampled_from(OPS), st.integers(0, 2), st.integers(0, 2), st.integers(0, 1000)),
        min_size=4,
        max_size=20,
    )
)
def test_replaying_sync_from_any_cursor_converges_to_a_full_read(server: RunningServer, ops: list[Any]) -> None:
    world = World(server)
    # a second device of alice's takes (cursor, full read) snapshots as it goes
    snapshots = [(_head(world.alice), Replica.full_read(world.alice))]
    world.seed()
    for op, who, other, n in ops:
        if op == "snapshot":
            snapshots.append((_head(world.alice), Replica.full_read(world.alice)))
        else:
            world.run(op, who, other, n)
    final = Replica.full_read(world.alice)
    for cursor, replica in snapshots:
        replica.replay(world.alice, cursor)
        assert replica == final


def test_expired_and_deleted_content_is_gone_from_sync(server: RunningServer) -> None:
    from datetime import timedelta

    from shared.app.scheduled import expire_due_messages

    alice, bob = server.client(), server.client()
    start = _head(bob)
    cid = alice.direct_with(bob)["id"]
    ephemeral = alice.send(cid, "self-destructing secret", expires_in_seconds=3600)
    deleted = alice.send(cid, "regretted secret")
    assert alice.delete(f"/messages/{deleted['id']}", params={"delete_for_everyone": "true"}).status_code == 200
    expire_due_messages(server.services, now=server.services.clock() + timedelta(seconds=3601))

    changes = bob.get("/sync", params={"since": start, "limit": 100}).json()["data"]
    assert "secret" not in str(changes)
    names = [(c["event"], c["payload"].get("message_id") or c["payload"].get("message", {}).get("id")) for c in changes]
    assert ("message_expired", ephemeral["id"]) in names and ("message_deleted", deleted["id"]) in names
    assert_error(bob.get(f"/messages/{ephemeral['id']}"), 404)
