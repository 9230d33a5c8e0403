"""Groups, roles and membership through REST (rules.md: Conversations and members)."""

from __future__ import annotations

from tests.support import RunningServer, assert_error


def test_group_creator_is_owner_and_name_is_kept_in_metadata(server: RunningServer) -> None:
    alice, bob, carol = server.client(), server.client(), server.client()
    conv = alice.group_with(bob, carol, name="Climbing")
    assert conv["name"] == "Climbing" and conv["metadata"]["name"] == "Climbing"
    roles = {m["user_id"]: m["role"] for m in conv["members"]}
    assert roles == {alice.user_id: "owner", bob.user_id: "member", carol.user_id: "member"}
    renamed = alice.put(f"/conversations/{conv['id']}", {"name": "Bouldering", "metadata": {"color": "red"}})
    assert renamed.status_code == 200
    data = renamed.json()["data"]
    assert data["name"] == data["metadata"]["name"] == "Bouldering"
    assert data["metadata"]["color"] == "red" and data["member_count"] == 3
    history = bob.get(f"/conversations/{conv['id']}/messages").json()["data"]
    assert history[0]["message_type"] == "system" and history[0]["metadata"]["system"]["name"] == "Bouldering"


def test_group_name_bounds(server: RunningServer) -> None:
    alice, bob = server.client(), server.client()
    ok = alice.post("/conversations", {"type": "group", "name": "x" * 100, "user_ids": [bob.user_id]})
    assert ok.status_code == 201
    too_long = alice.post("/conversations", {"type": "group", "name": "x" * 101, "user_ids": [bob.user_id]})
    assert_error(too_long, 422)
    alone = alice.post("/conversations", {"type": "group", "name": "Solo", "user_ids": [alice.user_id]})
    assert_error(alone, 422)


def test_direct_is_one_per_pair_and_never_with_yourself(server: RunningServer) -> None:
    alice, bob = server.client(), server.client()
    first = alice.post("/conversations", {"type": "direct", "other_user_id": bob.user_id})
    again = bob.post("/conversations", {"type": "direct", "user_ids": [bob.user_id, alice.user_id]})
    assert first.status_code == 201 and again.status_code == 200
    assert again.json()["data"]["id"] == first.json()["data"]["id"]
    assert_error(alice.post("/conversations", {"type": "direct", "other_user_id": alice.user_id}), 422)
    # deleting and creating again reactivates the same conversation
    conv_id = first.json()["data"]["id"]
    assert alice.delete(f"/conversations/{conv_id}").status_code == 204
    assert_error(bob.get(f"/conversations/{conv_id}"), 404)
    back = alice.post("/conversations", {"type": "direct", "other_user_id": bob.user_id})
    assert back.status_code == 200 and back.json()["data"]["id"] == conv_id


def test_roles_add_remove_and_removed_member_sees_nothing(server: RunningServer) -> None:
    alice, bob, carol, dave = (server.client() for _ in range(4))
    conv = alice.group_with(bob)
    cid = conv["id"]
    # a plain member cannot add people
    assert_error(bob.post(f"/conversations/{cid}/members", {"user_id": carol.user_id}), 403, "insufficient_role")
    added = alice.post(f"/conversations/{cid}/members", {"user_ids": [carol.user_id, dave.user_id]})
    assert added.status_code == 201
    assert {m["user_id"] for m in added.json()["data"]} == {alice.user_id, bob.user_id, carol.user_id, dave.user_id}
    # roles: an admin cannot grant owner; the owner can make an admin
    assert alice.patch(f"/conversations/{cid}/members/{bob.user_id}/role", {"role": "admin"}).status_code == 200
    assert_error(bob.patch(f"/conversations/{cid}/members/{carol.user_id}/role", {"role": "owner"}), 403)
    assert_error(bob.delete(f"/conversations/{cid}/members/{alice.user_id}"), 403)
    assert_error(alice.patch(f"/conversations/{cid}/members/{bob.user_id}/role", {"role": "king"}), 422)
    # the admin removes carol; carol then gets nothing from the conversation
    assert bob.delete(f"/conversations/{cid}/members/{carol.user_id}").status_code == 204
    alice.send(cid, "after carol left")
    assert_error(carol.get(f"/conversations/{cid}/messages"), 403, "not_a_member")
    assert_error(carol.get(f"/conversations/{cid}"), 403)
    assert_error(carol.post(f"/conversations/{cid}/messages", {"content": "hi", "client_random": 1}), 403)
    assert cid not in [c["id"] for c in carol.get("/conversations").json()["data"]]
    members = alice.get(f"/conversations/{cid}/members").json()["data"]
    assert carol.user_id not in {m["user_id"] for m in members}


def test_last_owner_cannot_leave_or_be_demoted(server: RunningServer) -> None:
    alice, bob = server.client(), server.client()
    cid = alice.group_with(bob)["id"]
    assert_error(alice.post(f"/conversations/{cid}/leave"), 403, "last_owner")
    assert_error(alice.patch(f"/conversations/{cid}/members/{alice.user_id}/role", {"role": "member"}), 403)
    assert alice.patch(f"/conversations/{cid}/members/{bob.user_id}/role", {"role": "owner"}).status_code == 200
    assert alice.post(f"/conversations/{cid}/leave").status_code == 204
    assert_error(alice.get(f"/conversations/{cid}"), 403)
    remaining = bob.get(f"/conversations/{cid}/members").json()["data"]
    assert [m["user_id"] for m in remaining] == [bob.user_id]


def test_settings_pin_and_archive(server: RunningServer) -> None:
    alice = server.client()
    convs = [alice.direct_with(server.client())["id"] for _ in range(6)]
    for cid in convs[:5]:
        assert alice.post(f"/conversations/{cid}/pin").json()["data"]["is_pinned"] is True
    assert alice.post(f"/conversations/{convs[0]}/pin").status_code == 200  # idempotent
    assert_error(alice.post(f"/conversations/{convs[5]}/pin"), 422, "pin_limit_reached")
    # archiving unpins, and frees a pin slot
    archived = alice.post(f"/conversations/{convs[0]}/archive")
    assert archived.json()["data"] == {"conversation_id": convs[0], "is_archived": True, "is_pinned": False}
    assert alice.post(f"/conversations/{convs[5]}/pin").status_code == 200
    listed = [c["id"] for c in alice.get("/conversations").json()["data"]]
    assert convs[0] not in listed
    assert convs[0] in [
        c["id"] for c in alice.get("/conversations", params={"include_archived": "true"}).json()["data"]
    ]
    assert [c["id"] for c in alice.get("/conversations/archived").json()["data"]] == [convs[0]]
    settings = alice.put(f"/conversations/{convs[1]}/settings", {"show_read_receipts": False, "custom_name": "Bob"})
    assert settings.status_code == 200
    assert alice.get(f"/conversations/{convs[1]}/settings").json()["data"]["custom_name"] == "Bob"
    assert_error(alice.put(f"/conversations/{convs[1]}/settings", {"custom_name": "x" * 51}), 422)


def test_conversation_list_pages_with_a_cursor(server: RunningServer) -> None:
    alice = server.client()
    ids = [alice.direct_with(server.client())["id"] for _ in range(5)]
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = alice.get("/conversations", params=params).json()
        seen += [c["id"] for c in page["data"]]
        if not page["meta"]["has_more"]:
            break
        cursor = page["meta"]["next_cursor"]
    assert sorted(seen) == sorted(ids) and len(seen) == 5


def test_a_literal_path_never_falls_through_to_an_id_route(server: RunningServer) -> None:
    alice = server.client()
    response = alice.put("/conversations/archived", {"name": "x"})
    assert_error(response, 405, "method_not_allowed")
    assert "GET" in response.headers["Allow"]


def test_an_expired_mute_is_not_muted(server: RunningServer) -> None:
    alice, bob = server.client(), server.client()
    cid = alice.direct_with(bob)["id"]
    past = alice.put(f"/conversations/{cid}/settings", {"muted_until": "2020-01-01T00:00:00Z"}).json()["data"]
    assert past["is_muted"] is False
    future = alice.put(f"/conversations/{cid}/settings", {"muted_until": "2999-01-01T00:00:00Z"}).json()["data"]
    assert future["is_muted"] is True
    assert alice.get(f"/conversations/{cid}").json()["data"]["is_muted"] is True
