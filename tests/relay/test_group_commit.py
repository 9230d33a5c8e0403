"""Group commit on the socket send path, over real sockets: concurrent `new_message` pushes share
one transaction, each still answered on its own (shared/relay/batching.py).

To put known pushes in one batch without relying on timing, these servers wait (practically)
forever for the window and flush when exactly `send_batch_max` sends are waiting, one batch at a
time (no splitting between parallel batches); the commit is observed in the outbox: the events
of one batch carry one transaction id.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import func, select

from shared.app import moderation
from shared.domain.models import Actor
from shared.relay.batching import MIN_SPLIT
from shared.storage.schema import events
from shared.storage.schema import messages as messages_table
from tests.relay.conftest import FREE
from tests.relay.phx import Phx
from tests.support import RunningServer, UserClient, client_random, make_settings, serve

Batched = Callable[[int], RunningServer]
FOREVER_MS = 600_000.0


@pytest.fixture
def batched(pg_url: str, key_path: str) -> Iterator[Batched]:
    """`batched(n)`: a gateway whose batches are exactly n sends."""
    with contextlib.ExitStack() as stack:

        def start(n: int) -> RunningServer:
            settings = dataclasses.replace(
                make_settings(pg_url, key_path, **FREE),
                send_batch_max=n,
                send_batch_window_ms=FOREVER_MS,
                send_batch_parallel=1,
            )
            return stack.enter_context(serve(settings))

        yield start


def _body(content: str, random: int | None = None, **fields: Any) -> dict[str, Any]:
    return {
        "content": content,
        "message_type": "text",
        "client_random": client_random() if random is None else random,
        **fields,
    }


def _open(server: RunningServer, user: UserClient, *topics: str, device: str | None = None) -> Phx:
    sock = Phx.open(server, user.user_id, device_id=device)
    for topic in topics:
        sock.join_ok(topic)
    return sock


def _txids(server: RunningServer, conversation_ids: list[str], after_seq: int = 0) -> set[int]:
    """The transactions that recorded these conversations' new_message events (after a seq)."""
    with server.services.db.transaction() as conn:
        rows = conn.execute(
            select(events.c.txid).where(
                events.c.name == "new_message", events.c.conversation_id.in_(conversation_ids), events.c.seq > after_seq
            )
        )
        return {int(r.txid) for r in rows}


def _seqs(server: RunningServer, conversation_id: str) -> list[int]:
    with server.services.db.transaction() as conn:
        rows = conn.execute(
            select(messages_table.c.seq)
            .where(messages_table.c.conversation_id == conversation_id)
            .order_by(messages_table.c.seq)
        )
        return [int(r.seq) for r in rows]


def _new_messages(sock: Phx, topic: str) -> list[dict[str, Any]]:
    """Every new_message that reached the socket on `topic` so far (a heartbeat barrier)."""
    return [m.payload["message"] for m in sock.barrier() if m.topic == topic and m.event == "new_message"]


def test_concurrent_sends_across_conversations_commit_together(batched: Batched) -> None:
    server = batched(4)
    pairs = [(server.client(), server.client()) for _ in range(4)]
    convs = [a.direct_with(b)["id"] for a, b in pairs]
    senders = [_open(server, a, f"conversation:{c}") for (a, _), c in zip(pairs, convs, strict=True)]
    receivers = [_open(server, b, f"conversation:{c}") for (_, b), c in zip(pairs, convs, strict=True)]
    try:
        refs = [
            s.push(f"conversation:{c}", "new_message", _body(f"to {c}")) for s, c in zip(senders, convs, strict=True)
        ]
        replies = [s.reply(r).payload for s, r in zip(senders, refs, strict=True)]
        assert [r["status"] for r in replies] == ["ok"] * 4
        assert [r["response"]["message"]["seq"] for r in replies] == [1, 1, 1, 1]
        assert len(_txids(server, convs)) == 1  # the four sends were one transaction
        for receiver, conv, reply in zip(receivers, convs, replies, strict=True):
            got = receiver.event(f"conversation:{conv}", "new_message")["message"]
            assert got["id"] == reply["response"]["message"]["id"] and got["content"] == f"to {conv}"
    finally:
        for sock in senders + receivers:
            sock.close()


def test_a_bad_send_in_a_batch_gets_its_own_error_and_the_others_commit(batched: Batched) -> None:
    server = batched(5)  # the malformed push never reaches the batcher: five sends do
    owner, bob, carol, dave = (server.client() for _ in range(4))
    group = owner.group_with(bob, carol, dave)["id"]
    other = owner.direct_with(carol)["id"]
    created = owner.post(
        "/conversations",
        {"type": "group", "name": "E2E", "user_ids": [dave.user_id], "metadata": {"e2ee": {"enabled": True}}},
    )
    assert created.status_code == 201, created.text
    e2ee = created.json()["data"]["id"]
    elsewhere = owner.send_alone(other, _body("elsewhere"))  # not through the batcher: it counts sends
    moderation.create_sanction(
        server.services, Actor(owner.user_id), group, user_id=bob.user_id, kind="mute", duration_seconds=600
    )
    topic, secret = f"conversation:{group}", f"conversation:{e2ee}"
    start = len(_seqs(server, group))
    socks = {
        "owner": _open(server, owner, topic),
        "bob": _open(server, bob, topic),
        "carol": _open(server, carol, topic),
        "dave": _open(server, dave, topic, secret),
        "owner2": _open(server, owner, topic, device="second"),
    }
    listener = _open(server, carol, topic, device="listener")
    try:
        malformed = socks["owner2"].push(topic, "new_message", {"content": 42, "message_type": "text"})
        refs = {
            "owner": socks["owner"].push(topic, "new_message", _body("first")),
            "bob": socks["bob"].push(topic, "new_message", _body("muted")),
            "carol": socks["carol"].push(topic, "new_message", _body("bad reply", reply_to_id=elsewhere["id"])),
            # fails after its row and seq were written: its savepoint rolls them back
            "dave-secret": socks["dave"].push(secret, "new_message", _body("bad", metadata={"search_tokens": [""]})),
            "dave": socks["dave"].push(topic, "new_message", _body("second")),
        }
        answers = {name: socks[name.split("-")[0]].reply(ref).payload for name, ref in refs.items()}
        bad = socks["owner2"].reply(malformed).payload

        assert bad["status"] == "error" and bad["response"]["reason"] == "validation_failed"
        assert answers["bob"]["status"] == "error" and answers["bob"]["response"]["reason"] == "sanctioned"
        assert answers["carol"]["status"] == "error" and answers["carol"]["response"]["reason"] == "validation_failed"
        assert "reply_to_id" in answers["carol"]["response"]["details"]
        assert answers["dave-secret"]["status"] == "error"
        assert answers["dave-secret"]["response"]["reason"] == "invalid_search_tokens"
        assert answers["owner"]["status"] == "ok" and answers["dave"]["status"] == "ok"
        good = [answers["owner"]["response"]["message"], answers["dave"]["response"]["message"]]
        assert sorted(m["seq"] for m in good) == [start + 1, start + 2]
        assert _seqs(server, group) == list(range(1, start + 3))
        assert _seqs(server, e2ee) == list(range(1, len(_seqs(server, e2ee)) + 1))
        assert len(_txids(server, [group, e2ee], after_seq=start)) == 1  # committed together
        heard = [
            listener.event(topic, "new_message", lambda p: p["message"]["seq"] > start)["message"] for _ in range(2)
        ]
        assert [m["content"] for m in sorted(heard, key=lambda m: m["seq"])] == [
            m["content"] for m in sorted(good, key=lambda m: m["seq"])
        ]
        assert [m for m in _new_messages(listener, topic) if m["seq"] > start] == []  # nothing else
        history = owner.get(f"/conversations/{group}/messages").json()["data"]
        assert {"muted", "bad reply"}.isdisjoint(m["content"] for m in history)
        for sock in socks.values():  # domain errors are replies: no channel crashed (phx_error)
            assert [m for m in sock.barrier() if m.event == "phx_error"] == []
    finally:
        for sock in [*socks.values(), listener]:
            sock.close()


def test_duplicates_inside_one_batch_return_the_original_once(batched: Batched) -> None:
    server = batched(3)
    alice, bob, carol = server.client(), server.client(), server.client()
    group = alice.group_with(bob, carol)["id"]
    topic = f"conversation:{group}"
    stored = bob.send_alone(group, _body("already stored", 77))  # not through the batcher: it counts sends
    phone = _open(server, alice, topic, device="phone")
    laptop = _open(server, alice, topic, device="laptop")
    bob_sock = _open(server, bob, topic)
    watcher = _open(server, carol, topic)
    try:
        refs = [
            (phone, phone.push(topic, "new_message", _body("hello", 5))),
            (laptop, laptop.push(topic, "new_message", _body("hello", 5))),
            (bob_sock, bob_sock.push(topic, "new_message", _body("already stored", 77))),
        ]
        answers = [sock.reply(ref).payload for sock, ref in refs]
        assert [a["status"] for a in answers] == ["ok"] * 3
        first, second, old = (a["response"]["message"] for a in answers)
        assert first["id"] == second["id"] and first["seq"] == second["seq"]
        assert old["id"] == stored["id"]
        got = [m for m in _new_messages(watcher, topic) if m["seq"] > stored["seq"]]
        assert [m["id"] for m in got] == [first["id"]]  # one event for the two pushes, none for the old one
        assert _seqs(server, group)[-2:] == [stored["seq"], stored["seq"] + 1]
    finally:
        for sock in (phone, laptop, bob_sock, watcher):
            sock.close()


def test_pushes_queued_on_one_socket_keep_their_order_and_each_get_a_reply(relay: RunningServer) -> None:
    alice, bob = relay.client(), relay.client()
    conv = alice.direct_with(bob)["id"]
    topic = f"conversation:{conv}"
    sock = _open(relay, alice, topic)
    try:
        refs = [
            sock.push(topic, "new_message", _body(f"m{i}") if i != 7 else {"content": "no type or random"})
            for i in range(30)
        ]
        answers = [sock.reply(ref).payload for ref in refs]
        assert answers[7]["status"] == "error" and answers[7]["response"]["reason"] == "validation_failed"
        sent = [a["response"]["message"] for i, a in enumerate(answers) if i != 7]
        assert [a["status"] for i, a in enumerate(answers) if i != 7] == ["ok"] * 29
        assert [m["content"] for m in sent] == [f"m{i}" for i in range(30) if i != 7]
        assert [m["seq"] for m in sent] == list(range(1, 30))  # push order
    finally:
        sock.close()


def test_seq_is_gap_free_under_concurrent_socket_and_rest_sends(relay: RunningServer) -> None:
    users = [relay.client() for _ in range(5)]
    group = users[0].group_with(*users[1:])["id"]
    topic = f"conversation:{group}"
    start = len(_seqs(relay, group))
    per_sender = 25
    acked: list[tuple[str, int, str]] = []  # (via, seq, message id)
    lock = threading.Lock()
    errors: list[BaseException] = []

    def socket_sender(user: UserClient) -> None:
        sock = _open(relay, user, topic)
        try:
            refs = [sock.push(topic, "new_message", _body(f"ws {i}")) for i in range(per_sender)]
            for ref in refs:
                answer = sock.reply(ref).payload
                assert answer["status"] == "ok", answer
                with lock:
                    acked.append(("ws", answer["response"]["message"]["seq"], answer["response"]["message"]["id"]))
        finally:
            sock.close()

    def rest_sender(user: UserClient) -> None:
        for i in range(per_sender):
            message = user.send(group, f"rest {i}")
            with lock:
                acked.append(("rest", message["seq"], message["id"]))

    def run(target: Callable[[UserClient], None], user: UserClient) -> None:
        try:
            target(user)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=run, args=(socket_sender, u)) for u in users[:3]]
    threads += [threading.Thread(target=run, args=(rest_sender, u)) for u in users[3:]]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors
    assert len(acked) == 5 * per_sender
    assert sorted(seq for _, seq, _ in acked) == list(range(start + 1, start + 5 * per_sender + 1))
    assert len({mid for _, _, mid in acked}) == len(acked)
    assert _seqs(relay, group) == list(range(1, start + 5 * per_sender + 1))
    with relay.services.db.transaction() as conn:
        stored = conn.execute(
            select(func.count())
            .select_from(messages_table)
            .where(messages_table.c.conversation_id == group, messages_table.c.message_type == "text")
        ).scalar_one()
    assert stored == 5 * per_sender


@pytest.mark.parametrize(("waiting", "expected"), [(16, [8, 8]), (12, [8, 4])])
def test_two_free_slots_split_what_is_waiting_never_below_min_split(
    pg_url: str, key_path: str, waiting: int, expected: list[int]
) -> None:
    """With two batches allowed in flight (`send_batch_parallel=2`) and both slots free, the
    sends waiting when the batch fills are shared between the slots, half each but never fewer
    than `MIN_SPLIT` (8) in a batch; the rest go once the window has passed. One socket per
    conversation, one push each: every push is a group of its own. Each batch is one
    transaction (the txid of its events), every push is answered with its message."""
    settings = dataclasses.replace(
        make_settings(pg_url, key_path, **FREE),
        send_batch_max=waiting,
        send_batch_window_ms=3_000.0,  # long enough for every push to be waiting: the batch fills
        send_batch_parallel=2,
    )
    assert MIN_SPLIT == 8
    with serve(settings) as server:
        pairs = [(server.client(), server.client()) for _ in range(waiting)]
        convs = [a.direct_with(b)["id"] for a, b in pairs]
        senders = [_open(server, a, f"conversation:{c}") for (a, _), c in zip(pairs, convs, strict=True)]
        try:
            pushed = zip(senders, convs, strict=True)
            refs = [s.push(f"conversation:{c}", "new_message", _body(f"to {c}")) for s, c in pushed]
            replies = [s.reply(r).payload for s, r in zip(senders, refs, strict=True)]
        finally:
            for sock in senders:
                sock.close()
        assert [r["status"] for r in replies] == ["ok"] * waiting
        assert [r["response"]["message"]["seq"] for r in replies] == [1] * waiting
        by_tx: dict[int, int] = {}
        for conv in convs:
            (txid,) = _txids(server, [conv])
            by_tx[txid] = by_tx.get(txid, 0) + 1
        assert sorted(by_tx.values(), reverse=True) == expected
