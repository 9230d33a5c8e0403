"""Query parameters that were accepted and ignored (issue 11, item 3) now do what they say; one a
route does not take is a 400 (the route-table-wide test: tests/api/test_error_contract.py)."""

from __future__ import annotations

import secrets

from tests.support import RunningServer, assert_error, moderator_client


def test_conversations_of_one_type_and_offset_pages(server: RunningServer) -> None:
    alice, bob, carol = server.client(), server.client(), server.client()
    direct = alice.direct_with(bob)["id"]
    groups = [alice.group_with(bob, name="one")["id"], alice.group_with(carol, name="two")["id"]]
    everything = [c["id"] for c in alice.get("/conversations").json()["data"]]
    assert set(everything) == {direct, *groups}

    only_groups = alice.get("/conversations", params={"type": "group"}).json()
    assert [c["id"] for c in only_groups["data"]] == [c for c in everything if c in groups]
    assert {c["type"] for c in only_groups["data"]} == {"group"} and only_groups["meta"]["count"] == 2
    only_direct = alice.get("/conversations", params={"type": "direct"}).json()["data"]
    assert [c["id"] for c in only_direct] == [direct]
    assert "type" in assert_error(alice.get("/conversations", params={"type": "channel"}), 422)["details"]

    page = alice.get("/conversations", params={"limit": 1, "offset": 1}).json()
    assert [c["id"] for c in page["data"]] == everything[1:2] and page["meta"]["has_more"] is True
    last = alice.get("/conversations", params={"limit": 5, "offset": 2}).json()
    assert [c["id"] for c in last["data"]] == everything[2:] and last["meta"]["has_more"] is False
    paged_groups = alice.get("/conversations", params={"type": "group", "limit": 1, "offset": 1}).json()["data"]
    assert [c["id"] for c in paged_groups] == [c for c in everything if c in groups][1:]


def test_conversation_search_honours_limit(server: RunningServer) -> None:
    alice, bob = server.client(), server.client()
    word = f"crew-{secrets.token_hex(4)}"
    made = [alice.group_with(bob, name=f"{word} {i}")["id"] for i in range(3)]
    every = alice.get("/conversations/search", params={"q": word}).json()
    assert len(every["data"]) == 3 and every["meta"] == {"count": 3, "has_more": False}
    two = alice.get("/conversations/search", params={"q": word, "limit": 2}).json()
    assert [c["id"] for c in two["data"]] == [c["id"] for c in every["data"]][:2]
    assert two["meta"] == {"count": 2, "has_more": True}
    assert set(made) == {c["id"] for c in every["data"]}
    assert_error(alice.get("/conversations/search", params={"q": word, "limit": 0}), 422)


def test_pins_page_with_limit_and_offset(server: RunningServer) -> None:
    alice, bob = server.client(), server.client()
    cid = alice.group_with(bob)["id"]
    for i in range(3):
        message = alice.send(cid, f"pin {i}")
        assert alice.post(f"/messages/{message['id']}/pin").status_code in (200, 201)
    path = f"/conversations/{cid}/pins"
    every = alice.get(path).json()
    assert every["meta"]["count"] == 3 and every["meta"]["has_more"] is False
    page = alice.get(path, params={"limit": 2, "offset": 1}).json()
    assert [p["message"]["id"] for p in page["data"]] == [p["message"]["id"] for p in every["data"]][1:3]
    assert page["meta"]["count"] == 2 and page["meta"]["has_more"] is False and page["meta"]["offset"] == 1
    first = alice.get(path, params={"limit": 1}).json()
    assert [p["message"]["id"] for p in first["data"]] == [every["data"][0]["message"]["id"]]
    assert first["meta"]["has_more"] is True


def test_the_report_queue_by_status(server: RunningServer) -> None:
    alice, bob = server.client(), server.client()
    mod = moderator_client(server)
    cid = alice.direct_with(bob)["id"]
    reports = [bob.post("/reports", {"message_id": alice.send(cid, "x")["id"], "category": "spam"}) for _ in range(2)]
    kept, closed = (r.json()["data"]["id"] for r in reports)
    assert mod.put(f"/reports/{closed}/resolve", {"action": "dismiss"}).status_code == 200

    def queue(**params: object) -> list[str]:
        response = mod.get("/reports/queue", params={"limit": 100, **params})
        assert response.status_code == 200, response.text
        return [r["id"] for r in response.json()["data"]]

    pending = queue()
    assert kept in pending and closed not in pending and queue(status="pending") == pending
    resolved = queue(status="resolved")
    assert closed in resolved and kept not in resolved
    assert "status" in assert_error(mod.get("/reports/queue", params={"status": "lost"}), 422)["details"]


def test_message_search_offset(server: RunningServer) -> None:
    alice, bob = server.client(), server.client()
    cid = alice.direct_with(bob)["id"]
    word = f"needle{secrets.token_hex(4)}"
    for i in range(3):
        alice.send(cid, f"{word} number {i}")
    every = [m["id"] for m in alice.get("/messages/search", params={"query": word}).json()["data"]]
    assert len(every) == 3
    page = alice.get("/messages/search", params={"query": word, "limit": 1, "offset": 1}).json()
    assert [m["id"] for m in page["data"]] == every[1:2] and page["meta"]["has_more"] is True


def test_what_the_client_sends_beyond_the_table(server: RunningServer) -> None:
    """The Whispr client searches a conversation with `?search=` on its history and falls back to
    filtering on the device when the server refuses it: a 400, never unfiltered history. Ids the
    path already says (`conversation_id` on message routes, `user_id` on reactions) are taken."""
    alice, bob = server.client(), server.client()
    cid = alice.direct_with(bob)["id"]
    message = alice.send(cid, "hello")
    refused = alice.get(f"/conversations/{cid}/messages", params={"search": "hello", "limit": 20})
    assert "search" in assert_error(refused, 400, "unknown_parameter")["details"]
    assert alice.post(f"/messages/{message['id']}/reactions", {"reaction": "👍"}).status_code == 201
    removed = alice.delete(f"/messages/{message['id']}/reactions/👍", params={"user_id": alice.user_id})
    assert removed.status_code == 204
    assert alice.post(f"/messages/{message['id']}/pin").status_code in (200, 201)
    assert alice.delete(f"/messages/{message['id']}/pin", params={"conversation_id": cid}).status_code == 200
    deleted = alice.delete(f"/messages/{message['id']}", params={"conversation_id": cid, "delete_for_everyone": "true"})
    assert deleted.status_code == 200 and bob.get(f"/messages/{message['id']}").json()["data"]["is_deleted"] is True
