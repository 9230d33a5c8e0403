"""A socket's life: heartbeats and idle timeout, rejoins and leaves, losing membership mid-session,
catching up after a reconnect, and the v1 serializer."""

from __future__ import annotations

import json
import threading
import time

from shared.ports.bus import PublishedEvent
from tests.relay.conftest import ServeWith
from tests.relay.phx import Phx
from tests.support import RunningServer, client_random


def _body(content: str) -> dict[str, object]:
    return {"content": content, "message_type": "text", "client_random": client_random()}


def test_heartbeat_is_answered_with_an_ok_reply(relay: RunningServer) -> None:
    sock = Phx.open(relay, relay.client().user_id)
    try:
        ref = sock.push("phoenix", "heartbeat", {}, join_ref=None)
        reply = sock.reply(ref)
        assert (reply.join_ref, reply.topic, reply.payload) == (None, "phoenix", {"status": "ok", "response": {}})
    finally:
        sock.close()


def test_silent_socket_is_closed_and_a_beating_one_is_not(serve_with: ServeWith) -> None:
    server = serve_with(ws_idle_timeout_seconds=1.5)
    user = server.client()
    silent, beating = Phx.open(server, user.user_id), Phx.open(server, user.user_id)
    try:
        started = time.monotonic()
        replies = 0
        while time.monotonic() - started < 4.5:  # three idle periods, kept alive by beats
            beating.reply(beating.push("phoenix", "heartbeat", {}, join_ref=None))
            replies += 1
            time.sleep(0.2)
        assert silent.closed_by_server(timeout=5)
        assert beating.reply(beating.push("phoenix", "heartbeat", {}, join_ref=None)).payload["status"] == "ok"
        assert replies >= 6
    finally:
        silent.close()
        beating.close()


def test_second_join_replaces_the_first(relay: RunningServer) -> None:
    alice, bob = relay.client(), relay.client()
    conv = alice.direct_with(bob)
    topic = f"conversation:{conv['id']}"
    sock = Phx.open(relay, bob.user_id)
    try:
        sock.join_ok(topic)
        first_join_ref = sock.join_refs[topic]
        sock.join_ok(topic)
        closed = sock.wait(lambda m: m.event == "phx_close")
        assert (closed.topic, closed.join_ref) == (topic, first_join_ref)
        assert sock.join_refs[topic] != first_join_ref

        message = alice.send(conv["id"], "once please")
        got = sock.event(topic, "new_message")
        assert got["message"]["id"] == message["id"]
        assert [m for m in sock.barrier() if m.event == "new_message"] == []  # one join, one copy
        # the new join works for pushes
        assert sock.ok(topic, "new_message", _body("from the new join"))["message"]["seq"] == 2
    finally:
        sock.close()


def test_leave_ends_delivery_on_that_topic(relay: RunningServer) -> None:
    alice, bob = relay.client(), relay.client()
    conv = alice.direct_with(bob)
    topic = f"conversation:{conv['id']}"
    sock = Phx.open(relay, bob.user_id)
    try:
        sock.join_ok(topic)
        sock.joined(topic)  # not a barrier: the join's presence frames could come after it
        assert sock.ok(topic, "phx_leave") == {}
        sock.inbox.clear()  # whatever came before the leave's reply was sent before the leave
        alice.send(conv["id"], "after leave")
        assert [m for m in sock.barrier() if m.topic == topic] == []
        assert sock.error(topic, "new_message", _body("x"))["reason"] == "unmatched topic"
    finally:
        sock.close()


def test_removed_member_is_unsubscribed_at_once(relay: RunningServer) -> None:
    owner, stays, removed = relay.client(), relay.client(), relay.client()
    group = owner.group_with(stays, removed, name="Club")
    topic = f"conversation:{group['id']}"
    r, s = Phx.open(relay, removed.user_id), Phx.open(relay, stays.user_id)
    try:
        r.join_ok(topic)
        r.join_ok(f"user:{removed.user_id}")
        s.join_ok(topic)
        join_ref = r.join_refs[topic]
        r.barrier()

        assert owner.delete(f"/conversations/{group['id']}/members/{removed.user_id}").status_code == 204
        closed = r.wait(lambda m: m.event == "phx_close")
        assert (closed.topic, closed.join_ref) == (topic, join_ref)
        # before its phx_close the channel hears why, and nothing else from the conversation
        assert [m.event for m in r.inbox if m.topic == topic] == ["member_removed"]
        assert r.event(f"user:{removed.user_id}", "member_removed")["user_id"] == removed.user_id
        assert s.event(topic, "member_removed")["user_id"] == removed.user_id
        r.barrier()

        secret = owner.send(group["id"], "they are gone")
        assert s.event(topic, "new_message", lambda p: p["message"]["id"] == secret["id"])
        after = r.barrier()
        assert [m for m in after if m.event == "new_message" and m.payload["message"]["id"] == secret["id"]] == []
        assert [m for m in after if m.topic == topic] == []
        assert r.error(topic, "new_message", _body("let me in"))["reason"] == "unmatched topic"
        assert r.join(topic)[1]["reason"] == "not_authorized"
    finally:
        r.close()
        s.close()


def test_member_who_leaves_is_unsubscribed_on_all_devices(relay: RunningServer) -> None:
    owner, leaver = relay.client(), relay.client()
    group = owner.group_with(leaver, relay.client(), name="Exit")
    topic = f"conversation:{group['id']}"
    phone, laptop = Phx.open(relay, leaver.user_id), Phx.open(relay, leaver.user_id)
    try:
        phone.join_ok(topic)
        laptop.join_ok(topic)
        assert leaver.post(f"/conversations/{group['id']}/leave").status_code == 204
        for sock in (phone, laptop):
            assert sock.wait(lambda m: m.event == "phx_close").topic == topic
    finally:
        phone.close()
        laptop.close()


def test_rejoin_with_last_seq_replays_what_was_missed_in_order(relay: RunningServer) -> None:
    alice, bob = relay.client(), relay.client()
    conv = alice.direct_with(bob)
    topic = f"conversation:{conv['id']}"
    sent = [alice.send(conv["id"], f"m{i}") for i in range(1, 6)]
    sock = Phx.open(relay, bob.user_id)
    try:
        assert "catch_up" not in sock.join_ok(topic, {"last_seq": 2})
        frames = [sock.recv() for _ in range(4)]
        assert [f.event for f in frames] == ["presence_state", "new_message", "new_message", "new_message"]
        assert [f.payload["message"]["seq"] for f in frames[1:]] == [3, 4, 5]
        history = {m["id"]: m for m in bob.get(f"/conversations/{conv['id']}/messages").json()["data"]}
        assert [f.payload["message"] for f in frames[1:]] == [history[m["id"]] for m in sent[2:]]
        live = alice.send(conv["id"], "live")
        assert sock.event(topic, "new_message")["message"]["id"] == live["id"]
        assert [m for m in sock.barrier() if m.event == "new_message"] == []
    finally:
        sock.close()


def test_catch_up_switches_to_live_without_gap_or_duplicate(relay: RunningServer) -> None:
    alice, bob = relay.client(), relay.client()
    conv = alice.direct_with(bob)
    topic = f"conversation:{conv['id']}"
    for i in range(10):
        alice.send(conv["id"], f"before {i}")
    total = 40
    go = threading.Event()

    def keep_sending() -> None:
        go.wait()
        for i in range(total - 10):
            alice.send(conv["id"], f"during {i}")

    sender = threading.Thread(target=keep_sending)
    sender.start()
    sock = Phx.open(relay, bob.user_id)
    try:
        go.set()  # sends race the join below
        sock.join_ok(topic, {"last_seq": 0})
        seqs: list[int] = []
        while len(seqs) < total:
            seqs.append(sock.event(topic, "new_message")["message"]["seq"])
        sender.join()
        assert seqs == list(range(1, total + 1))
        assert [m for m in sock.barrier() if m.event == "new_message"] == []
    finally:
        go.set()
        sender.join()
        sock.close()


def test_too_much_to_catch_up_says_use_rest(serve_with: ServeWith) -> None:
    server = serve_with(ws_catch_up_max_messages=3)
    alice, bob = server.client(), server.client()
    conv = alice.direct_with(bob)
    topic = f"conversation:{conv['id']}"
    for i in range(5):
        alice.send(conv["id"], f"m{i}")
    sock = Phx.open(server, bob.user_id)
    try:
        joined = sock.join_ok(topic, {"last_seq": 1})
        assert (joined["catch_up"], joined["last_seq"]) == ("use_rest", 5)
        assert [m for m in sock.barrier() if m.event == "new_message"] == []
        live = alice.send(conv["id"], "live")
        assert sock.event(topic, "new_message")["message"]["seq"] == live["seq"] == 6
        # up to three is replayed
        other = Phx.open(server, bob.user_id)
        try:
            assert "catch_up" not in other.join_ok(topic, {"last_seq": 3})
            assert [other.event(topic, "new_message")["message"]["seq"] for _ in range(3)] == [4, 5, 6]
        finally:
            other.close()
    finally:
        sock.close()


def test_v1_serializer_speaks_objects(relay: RunningServer) -> None:
    alice, bob = relay.client(), relay.client()
    conv = alice.direct_with(bob)
    topic = f"conversation:{conv['id']}"
    a = Phx.open(relay, alice.user_id, vsn="1.0.0")
    b = Phx.open(relay, bob.user_id, vsn="1.0.0")
    try:
        a.join_ok(topic)
        b.join_ok(topic)
        a.ws.send(
            json.dumps(
                {
                    "topic": topic,
                    "event": "new_message",
                    "payload": _body("v1"),
                    "ref": "r1",
                    "join_ref": a.join_refs[topic],
                }
            )
        )
        raw = json.loads(a.ws.recv(timeout=10))
        while raw["event"] != "phx_reply":
            raw = json.loads(a.ws.recv(timeout=10))
        assert set(raw) == {"topic", "event", "payload", "ref", "join_ref"}
        assert raw["ref"] == "r1" and raw["payload"]["status"] == "ok"
        assert b.event(topic, "new_message")["message"]["content"] == "v1"  # Phx checks the v1 shape
    finally:
        a.close()
        b.close()


def test_disconnect_ends_typing_and_presence_for_the_others(relay: RunningServer) -> None:
    alice, bob = relay.client(), relay.client()
    conv = alice.direct_with(bob)
    topic = f"conversation:{conv['id']}"
    a, b = Phx.open(relay, alice.user_id), Phx.open(relay, bob.user_id)
    try:
        a.join_ok(topic)
        b.join_ok(topic)
        b.ok(topic, "user_typing", {"typing": True})
        assert a.event(topic, "user_typing")["typing"] is True
        b.close()
        assert a.event(topic, "user_typing") == {"user_id": bob.user_id, "typing": False}
        assert bob.user_id in a.event(topic, "presence_diff", lambda p: bob.user_id in p["leaves"])["leaves"]
    finally:
        a.close()


def test_an_event_published_twice_is_delivered_once(relay: RunningServer) -> None:
    """The outbox sweeper may republish what was already published (at-least-once)."""
    alice, bob = relay.client(), relay.client()
    conv = alice.direct_with(bob)
    topic = f"conversation:{conv['id']}"
    published: list[PublishedEvent] = []
    stop = relay.services.bus.subscribe(published.append)
    sock = Phx.open(relay, bob.user_id)
    try:
        sock.join_ok(topic)
        message = alice.send(conv["id"], "only once")
        assert sock.event(topic, "new_message")["message"]["id"] == message["id"]
        relay.services.bus.publish([e for e in published if e.name == "new_message"])  # the sweeper's retry
        assert [m for m in sock.barrier() if m.event == "new_message"] == []
    finally:
        stop()
        sock.close()
