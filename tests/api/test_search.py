"""GET /messages/search and GET /conversations/search (api.md; rules.md: Signatures/E2E, Abuse)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from shared.app.services import utcnow
from shared.storage.schema import messages
from tests.support import RunningServer, UserClient, assert_error, make_settings, serve


@pytest.fixture
def time_travel(server: RunningServer) -> Iterator[list[timedelta]]:
    """Shift the service's clock: append a timedelta (from real now) to move to that time."""
    offset = [timedelta(0)]
    server.services.clock = lambda: utcnow() + offset[-1]
    try:
        yield offset
    finally:
        server.services.clock = utcnow


def word() -> str:
    """A word no other test uses (the database is shared by the session)."""
    return "w" + secrets.token_hex(6)


def search(client: UserClient, query: str, **params: Any) -> dict[str, Any]:
    response = client.get("/messages/search", params={"query": query, **params})
    assert response.status_code == 200, response.text
    return dict(response.json())


def ids(body: dict[str, Any]) -> list[str]:
    return [m["id"] for m in body["data"]]


def index_rows(server: RunningServer, message_id: str) -> tuple[int, int]:
    """(1 if the message has a full-text document, the number of its blind tokens): what the
    index holds for it (both live in its row)."""
    with server.services.db.transaction() as conn:
        row = conn.execute(
            select(messages.c.search_document.is_not(None).label("document"), messages.c.search_tokens).where(
                messages.c.id == message_id
            )
        ).one()
    return int(bool(row.document)), len(row.search_tokens or [])


def test_finds_a_word_in_a_plaintext_conversation(server: RunningServer) -> None:
    alice, bob = server.client(), server.client()
    cid = alice.direct_with(bob)["id"]
    w = word()
    target = alice.send(cid, f"Let's meet at the {w} tomorrow, ok?")
    alice.send(cid, "something else entirely")

    body = search(bob, w)
    assert ids(body) == [target["id"]]
    found = body["data"][0]
    assert found["content"] == f"Let's meet at the {w} tomorrow, ok?" and found["conversation_id"] == cid
    assert "status" not in found  # bob is not the sender
    assert body["meta"] == {"count": 1, "has_more": False, "next_cursor": None}
    # the sender gets the status, like in history
    assert search(alice, w)["data"][0]["status"] == "sent"
    # case-insensitive, prefix of a word, every word must match
    assert ids(search(bob, w.upper())) == [target["id"]]
    assert ids(search(bob, w[:-3])) == [target["id"]]
    assert ids(search(bob, f"meet {w}")) == [target["id"]]
    assert ids(search(bob, f"{w} banana{secrets.token_hex(3)}")) == []
    # the `q` alias and the conversation filter
    alias = bob.get("/messages/search", params={"q": w})
    assert alias.status_code == 200 and ids(alias.json()) == [target["id"]]
    assert ids(search(bob, w, conversation_id=cid)) == [target["id"]]
    other = alice.direct_with(server.client())["id"]
    assert ids(search(alice, w, conversation_id=other)) == []
    assert index_rows(server, target["id"]) == (1, 0)


def test_never_from_a_conversation_the_caller_left_or_was_never_in(server: RunningServer) -> None:
    alice, bob, carol, dave = server.client(), server.client(), server.client(), server.client()
    group = alice.group_with(bob, carol, name="Secrets")["id"]
    w = word()
    before = alice.send(group, f"{w} before carol leaves")
    assert ids(search(carol, w)) == [before["id"]]
    assert carol.post(f"/conversations/{group}/leave").status_code == 204
    after = bob.send(group, f"{w} after carol left")

    assert ids(search(carol, w)) == []  # neither the old message nor the new one
    assert_error(carol.get("/messages/search", params={"query": w, "conversation_id": group}), 403, "not_a_member")
    # dave was never in the group: nothing, even with the same word in his own conversation
    mine = dave.send(dave.direct_with(alice)["id"], f"{w} in dave's chat")
    assert ids(search(dave, w)) == [mine["id"]]
    assert_error(dave.get("/messages/search", params={"query": w, "conversation_id": group}), 403, "not_a_member")
    # a removed member likewise
    assert alice.delete(f"/conversations/{group}/members/{bob.user_id}").status_code == 204
    assert ids(search(bob, w)) == []
    # the members still find everything, newest first
    assert ids(search(alice, w)) == [mine["id"], after["id"], before["id"]]
    # an unknown conversation is not searchable either
    assert_error(
        alice.get("/messages/search", params={"query": w, "conversation_id": "8d6f5a52-7a0e-4a77-9a3c-000000000000"}),
        404,
        "conversation_not_found",
    )


def test_e2e_content_is_never_matched_but_its_blind_tokens_are(server: RunningServer) -> None:
    alice, bob = server.client(), server.client()
    response = alice.post(
        "/conversations",
        {"type": "group", "name": "E2E", "user_ids": [bob.user_id], "metadata": {"e2ee": {"enabled": True}}},
    )
    assert response.status_code == 201, response.text
    e2e = response.json()["data"]["id"]
    w = word()
    token_a, token_b = "hmac:" + secrets.token_urlsafe(24), "hmac:" + secrets.token_urlsafe(24)
    sealed = alice.send(
        e2e, f"{w} (the server would never read this)", metadata={"search_tokens": [token_a, token_b, token_a]}
    )
    untokened = alice.send(e2e, f"{w} without tokens")

    assert ids(search(bob, w)) == []  # content: never
    assert ids(search(bob, w, conversation_id=e2e)) == []
    assert index_rows(server, sealed["id"]) == (0, 2)  # content not indexed; tokens once each
    assert index_rows(server, untokened["id"]) == (0, 0)
    assert ids(search(bob, token_a)) == [sealed["id"]]  # tokens: exactly
    assert ids(search(bob, f"{token_b} {token_a}", conversation_id=e2e)) == [sealed["id"]]
    assert ids(search(bob, token_a[:-2])) == []  # no prefix matching of tokens
    assert ids(search(bob, f"{token_a} {'t' * 300}")) == []  # longer than any token: matches nothing
    assert ids(search(bob, f"{token_a} hmac:{secrets.token_urlsafe(8)}")) == []  # all of them must match

    # malformed tokens are refused, not silently dropped
    bad = alice.post(
        f"/conversations/{e2e}/messages",
        {"content": "x", "client_random": 7, "metadata": {"search_tokens": "not-a-list"}},
    )
    assert_error(bad, 422, "invalid_search_tokens")
    bad = alice.post(
        f"/conversations/{e2e}/messages",
        {"content": "x", "client_random": 8, "metadata": {"search_tokens": ["ok", ""]}},
    )
    assert_error(bad, 422, "invalid_search_tokens")

    # in a plaintext conversation tokens mean nothing; turning E2E on stops content search at once
    plain = alice.group_with(bob, name="Plain")["id"]
    sent = alice.send(plain, f"{w} plaintext", metadata={"search_tokens": [token_a]})
    assert ids(search(bob, w)) == [sent["id"]]
    assert ids(search(bob, token_a)) == [sealed["id"]]
    assert alice.put(f"/conversations/{plain}", {"metadata": {"e2ee": {"enabled": True}}}).status_code == 200
    assert ids(search(bob, w)) == []


def test_pagination_is_newest_first_with_an_exact_has_more(server: RunningServer) -> None:
    alice, bob = server.client(), server.client()
    cid = alice.direct_with(bob)["id"]
    w = word()
    sent = [alice.send(cid, f"{w} number {i}")["id"] for i in range(5)]
    newest_first = list(reversed(sent))

    first = search(bob, w, limit=2)
    assert ids(first) == newest_first[:2] and first["meta"]["has_more"] is True
    second = search(bob, w, limit=2, cursor=first["meta"]["next_cursor"])
    assert ids(second) == newest_first[2:4] and second["meta"]["has_more"] is True
    third = search(bob, w, limit=2, cursor=second["meta"]["next_cursor"])
    assert ids(third) == newest_first[4:] and third["meta"]["has_more"] is False
    assert third["meta"]["next_cursor"] is None
    # exactly a page's worth left: has_more is false, not "maybe"
    exact = search(bob, w, limit=3, cursor=first["meta"]["next_cursor"])
    assert ids(exact) == newest_first[2:] and exact["meta"]["has_more"] is False
    whole = search(bob, w, limit=5)
    assert ids(whole) == newest_first and whole["meta"]["has_more"] is False
    assert_error(bob.get("/messages/search", params={"query": w, "cursor": "not-a-cursor"}), 400, "invalid_cursor")


def test_limit_boundaries(server: RunningServer) -> None:
    alice, bob = server.client(), server.client()
    cid = alice.direct_with(bob)["id"]
    w = word()
    for i in range(101):
        alice.send(cid, f"{w} {i}")
    at_max = search(bob, w, limit=100)
    assert len(at_max["data"]) == 100 and at_max["meta"]["has_more"] is True
    assert len(search(bob, w, limit=101)["data"]) == 100  # capped, never an error
    rest = search(bob, w, limit=100, cursor=at_max["meta"]["next_cursor"])
    assert len(rest["data"]) == 1 and rest["meta"]["has_more"] is False
    assert len(search(bob, w)["data"]) == 20  # the default
    assert_error(bob.get("/messages/search", params={"query": w, "limit": 0}), 422)
    assert_error(bob.get("/messages/search", params={"query": w, "limit": "ten"}), 400, "invalid_number")
    for blank in ({"query": "  "}, {}):  # a cleared search box: nothing, and no error
        empty = bob.get("/messages/search", params=blank)
        assert empty.status_code == 200 and empty.json() == {
            "data": [],
            "meta": {"count": 0, "has_more": False, "next_cursor": None},
        }
    assert_error(bob.get("/messages/search", params={"query": "x" * 513}), 422)
    assert_error(bob.get("/messages/search", params={"query": w, "conversation_id": "nope"}), 400, "invalid_id")


def test_hidden_deleted_edited_and_expired_messages(server: RunningServer, time_travel: list[timedelta]) -> None:
    alice, bob = server.client(), server.client()
    cid = alice.direct_with(bob)["id"]
    w = word()
    hidden = alice.send(cid, f"{w} hidden by bob")
    deleted = alice.send(cid, f"{w} deleted for everyone")
    edited = alice.send(cid, f"{w} first version")
    ephemeral = alice.send(cid, f"{w} ephemeral", expires_in_seconds=3600)
    assert bob.delete(f"/messages/{hidden['id']}").status_code == 200
    assert alice.delete(f"/messages/{deleted['id']}", params={"delete_for_everyone": "true"}).status_code == 200
    assert index_rows(server, deleted["id"]) == (0, 0)
    assert alice.put(f"/messages/{edited['id']}", {"content": "second version only"}).status_code == 200

    assert ids(search(bob, w)) == [ephemeral["id"]]
    assert ids(search(alice, w)) == [ephemeral["id"], hidden["id"]]  # hidden for bob only
    assert ids(search(bob, "second version")) == [edited["id"]]  # the index follows edits
    time_travel.append(timedelta(hours=1, seconds=1))
    assert ids(search(bob, w)) == []  # expired, even before the purge runs
    assert ids(search(alice, w)) == [hidden["id"]]


def test_nul_and_query_syntax_are_harmless(server: RunningServer) -> None:
    alice, bob = server.client(), server.client()
    cid = alice.direct_with(bob)["id"]
    w = word()
    sent = alice.send(cid, f"nul\u0000{w}\u0000 inside")
    for query in [w, f'"{w}', f"{w} AND", f"{w}*", "NEAR(", "-", "'); DROP TABLE messages; --", "&|!:*()"]:
        response = bob.get("/messages/search", params={"query": query})
        assert response.status_code == 200, (query, response.text)
    assert ids(search(bob, f'"{w}')) == [sent["id"]]
    assert search(bob, w)["data"][0]["content"] == f"nul\u0000{w}\u0000 inside"


def test_search_conversations_by_group_name_and_other_member(server: RunningServer) -> None:
    alice, bob, carol = server.client(), server.client(), server.client()
    tag = secrets.token_hex(4)
    team = alice.group_with(bob, name=f"Team {tag} Rocket")["id"]
    left = carol.group_with(alice, name=f"Old {tag} club")["id"]
    direct = alice.direct_with(carol)["id"]
    assert alice.post(f"/conversations/{left}/leave").status_code == 204

    found = alice.get("/conversations/search", params={"q": f"team {tag.upper()}"})
    assert found.status_code == 200
    assert [c["id"] for c in found.json()["data"]] == [team]
    assert found.json()["meta"]["count"] == 1
    assert [c["id"] for c in alice.get("/conversations/search", params={"q": tag}).json()["data"]] == [team]
    by_member = alice.get("/conversations/search", params={"q": carol.user_id}).json()["data"]
    assert [c["id"] for c in by_member] == [direct] and by_member[0]["type"] == "direct"
    assert [c["id"] for c in alice.get("/conversations/search", params={"q": carol.user_id[:13]}).json()["data"]] == [
        direct
    ]
    # bob is in the team, not in the direct conversation; carol's own group she is still in
    assert alice.get("/conversations/search", params={"q": bob.user_id}).json()["data"] == []
    assert [c["id"] for c in carol.get("/conversations/search", params={"q": "old " + tag}).json()["data"]] == [left]
    assert alice.get("/conversations/search").json() == {"data": [], "meta": {"count": 0, "has_more": False}}
    assert alice.get("/conversations/search", params={"q": " "}).json()["data"] == []
    assert_error(alice.get("/conversations/search", params={"q": "x" * 513}), 422)


def test_searches_are_rate_limited_per_user(pg_url: str, key_path: str) -> None:
    with serve(make_settings(pg_url, key_path, searches_per_hour=3)) as server:
        alice, bob = server.client(), server.client()
        assert alice.get("/messages/search", params={"query": "a"}).status_code == 200
        assert alice.get("/conversations/search", params={"q": "a"}).status_code == 200
        assert alice.get("/messages/search", params={"query": "a"}).status_code == 200
        limited = alice.get("/messages/search", params={"query": "a"})
        body = assert_error(limited, 429, "rate_limited")
        assert int(limited.headers["Retry-After"]) >= 1 and body["details"]["retry_after"] >= 1
        assert_error(alice.get("/conversations/search", params={"q": "a"}), 429, "rate_limited")
        assert bob.get("/messages/search", params={"query": "a"}).status_code == 200
