"""The first real capability: two users have a conversation over REST (PostgreSQL)."""

from __future__ import annotations

import concurrent.futures

from tests.support import RunningServer, client_random


def test_alice_and_bob_talk_and_alice_sees_read(server: RunningServer) -> None:
    alice, bob = server.client(), server.client()
    created = alice.post("/conversations", {"type": "direct", "other_user_id": bob.user_id})
    assert created.status_code == 201
    conv = created.json()["data"]
    assert conv["type"] == "direct"
    assert sorted(conv["member_user_ids"]) == sorted([alice.user_id, bob.user_id])

    content = "Salut Bob 👋 — ünïcödé, \u0000 and \r\n kept exactly"
    sent = alice.post(
        f"/conversations/{conv['id']}/messages", {"content": content, "message_type": "text", "client_random": 7}
    )
    assert sent.status_code == 201
    message = sent.json()["data"]
    assert message["seq"] == 1 and message["status"] == "sent"

    listed = bob.get(f"/conversations/{conv['id']}/messages")
    assert listed.status_code == 200
    history = listed.json()
    assert [m["id"] for m in history["data"]] == [message["id"]]
    assert history["data"][0]["content"].encode() == content.encode()
    assert history["data"][0]["seq"] == 1
    assert "status" not in history["data"][0]  # status is for the sender only
    assert history["meta"]["has_more"] is False

    bobs_list = bob.get("/conversations").json()["data"]
    assert [c["id"] for c in bobs_list] == [conv["id"]]
    assert bobs_list[0]["unread_count"] == 1
    assert bobs_list[0]["last_message"]["id"] == message["id"]

    read = bob.post(f"/conversations/{conv['id']}/read", {"up_to_seq": 1})
    assert read.status_code == 200
    assert read.json()["data"]["last_read_seq"] == 1
    assert bob.get("/conversations").json()["data"][0]["unread_count"] == 0

    mine = alice.get(f"/conversations/{conv['id']}/messages").json()["data"]
    assert mine[0]["status"] == "read"
    assert alice.get(f"/messages/{message['id']}").json()["data"]["status"] == "read"
    status = alice.get(f"/messages/{message['id']}/status").json()["data"]
    assert status["recipients"] == [{"user_id": bob.user_id, "status": "read"}]


def test_same_routes_answer_under_api_v1(server: RunningServer) -> None:
    alice, bob = server.client(), server.client()
    conv = alice.direct_with(bob)
    short = alice.http.get(server.url + f"/api/v1/conversations/{conv['id']}")
    assert short.status_code == 200
    assert short.json()["data"]["id"] == conv["id"]


def test_retried_send_returns_the_original_and_history_holds_one(server: RunningServer) -> None:
    alice, bob = server.client(), server.client()
    conv = alice.direct_with(bob)
    body = {"content": "only once", "message_type": "text", "client_random": 123456}
    first = alice.post(f"/conversations/{conv['id']}/messages", body)
    again = alice.post(f"/conversations/{conv['id']}/messages", {"message": body})  # nested form too
    assert first.status_code == 201
    assert again.status_code == 200
    assert again.json()["data"]["id"] == first.json()["data"]["id"]
    assert again.json()["data"]["seq"] == 1
    history = bob.get(f"/conversations/{conv['id']}/messages").json()["data"]
    assert [m["content"] for m in history] == ["only once"]
    # the same client_random from the other member is a different message
    assert bob.post(f"/conversations/{conv['id']}/messages", body).status_code == 201


def test_fifty_concurrent_sends_get_seq_1_to_50(server: RunningServer) -> None:
    alice, bob = server.client(), server.client()
    conv = alice.group_with(bob)
    senders = [alice, bob]

    def send(i: int) -> int:
        sender = senders[i % 2]
        response = sender.post(
            f"/conversations/{conv['id']}/messages", {"content": f"m{i}", "client_random": client_random()}
        )
        assert response.status_code == 201, response.text
        return int(response.json()["data"]["seq"])

    with concurrent.futures.ThreadPoolExecutor(max_workers=50) as pool:
        seqs = list(pool.map(send, range(50)))
    assert sorted(seqs) == list(range(1, 51))
    history = alice.get(f"/conversations/{conv['id']}/messages", params={"limit": 100}).json()["data"]
    assert [m["seq"] for m in history] == list(range(50, 0, -1))
    assert sorted(m["content"] for m in history) == sorted(f"m{i}" for i in range(50))


def test_behind_api_gateway_the_forwarded_client_token_is_used(server: RunningServer) -> None:
    """API Gateway puts its own ID token in Authorization and the client's in
    X-Forwarded-Authorization."""
    alice, bob = server.client(), server.client()
    conv = alice.direct_with(bob)
    headers = {"Authorization": "Bearer gateway-id-token", "X-Forwarded-Authorization": f"Bearer {bob.token}"}
    response = alice.http.get(f"/conversations/{conv['id']}", headers=headers)
    assert response.status_code == 200
    forged = {"Authorization": f"Bearer {bob.token}", "X-Forwarded-Authorization": "Bearer forged"}
    assert alice.http.get(f"/conversations/{conv['id']}", headers=forged).status_code == 401
