"""Traces (shared/telemetry/tracing.py): with an in-memory exporter, one REST send, one socket
push or one RPC on the gRPC shim gives one trace from its entry span through the use case, the
store's transaction and the publish to the relay's delivery span (in-process bus here; through
Pub/Sub: tests/cloud/test_traces_pubsub.py). Off, nothing is recorded."""

from __future__ import annotations

import dataclasses

import grpc
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from shared.protogen.whispr.messaging.v1 import messaging_pb2 as pb
from shared.protogen.whispr.messaging.v1 import messaging_pb2_grpc
from shared.rpc.server import BackgroundGrpc
from shared.telemetry import tracing
from tests.relay.phx import Phx
from tests.support import RunningServer, client_random, make_settings, new_id, serve
from tests.traces import ancestors, in_trace, one_named

SEND_ROUTE = "/conversations/{conversation_id}/messages"


def test_one_rest_send_is_one_trace_from_http_to_delivery(
    pg_url: str, key_path: str, exported: InMemorySpanExporter
) -> None:
    with serve(make_settings(pg_url, key_path, messages_burst=1000, messages_per_minute=100_000)) as server:
        _send_and_deliver(server)
    spans = exported.get_finished_spans()
    http = [s for s in spans if s.attributes and s.attributes.get("http.route") == SEND_ROUTE]
    assert len(http) == 1 and http[0].parent is None and http[0].kind == tracing.SERVER
    assert http[0].attributes is not None and http[0].attributes["http.response.status_code"] == 201
    trace = in_trace(spans, http[0].context.trace_id)
    names = {s.name for s in trace}
    # the gateway's REST sends join the relay's group commit (shared/http/sends.py): the batch's
    # span continues the request's trace
    assert {"HTTP POST", "send_batch", "db.transaction", "publish", "deliver new_message"} <= names, names
    delivery = one_named(trace, "deliver new_message")
    assert ancestors(delivery, trace)[:2] == ["publish", "send_batch"] and ancestors(delivery, trace)[-1] == "HTTP POST"
    assert "send_batch" in ancestors(one_named(trace, "db.transaction"), trace)


def test_an_incoming_traceparent_is_continued(pg_url: str, key_path: str, exported: InMemorySpanExporter) -> None:
    with serve(make_settings(pg_url, key_path)) as server:
        alice = server.client()
        trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
        alice.get("/conversations", headers={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"})
    http = [s for s in exported.get_finished_spans() if s.name == "HTTP GET"]
    assert len(http) == 1 and f"{http[0].context.trace_id:032x}" == trace_id
    assert http[0].parent is not None and f"{http[0].parent.span_id:016x}" == "00f067aa0ba902b7"


def test_one_socket_push_is_one_trace_from_the_push_to_delivery(
    pg_url: str, key_path: str, exported: InMemorySpanExporter
) -> None:
    """A push has no headers: it starts a trace of its own, which runs on through the group
    commit's batch (the batch's span is its child and links to it) to the delivery."""
    with serve(make_settings(pg_url, key_path)) as server:
        topic = _push_and_deliver(server, exported)
    spans = exported.get_finished_spans()
    push = one_named(list(spans), "socket new_message")
    assert push.parent is None and push.kind == tracing.SERVER and push.attributes == {"whispr.topic": topic}
    trace = in_trace(spans, push.context.trace_id)
    delivery = one_named(trace, "deliver new_message")
    assert ancestors(delivery, trace) == ["publish", "send_batch", "socket new_message"]
    assert ancestors(one_named(trace, "db.transaction"), trace) == ["send_batch", "socket new_message"]
    assert [link.context.span_id for link in one_named(trace, "send_batch").links] == [push.context.span_id]


def test_a_batch_of_pushes_from_two_sockets_links_to_each(
    pg_url: str, key_path: str, exported: InMemorySpanExporter
) -> None:
    """Two pushes committed together (the batch waits until it holds two: a window far longer
    than the test): the batch's span continues the first push's trace and links to both, so
    each push's trace leads to the store, the publish and the delivery of both messages."""
    settings = make_settings(pg_url, key_path, send_batch_window_ms=600_000.0, send_batch_max=2)
    with serve(settings) as server:
        alice, bob = server.client(), server.client()
        topic = f"conversation:{alice.direct_with(bob)['id']}"
        sockets = [Phx.open(server, alice.user_id), Phx.open(server, bob.user_id)]
        try:
            for sock in sockets:
                sock.join_ok(topic)
                sock.joined(topic)
            refs = [sock.push(topic, "new_message", _text(f"batched {i}")) for i, sock in enumerate(sockets)]
            for sock, ref in zip(sockets, refs, strict=True):
                assert sock.reply(ref).payload["status"] == "ok"
        finally:
            for sock in sockets:
                sock.close()
    spans = exported.get_finished_spans()
    pushes = [s for s in spans if s.name == "socket new_message"]
    batch = one_named(list(spans), "send_batch")
    assert len(pushes) == 2 and all(p.parent is None for p in pushes)
    assert {link.context.span_id for link in batch.links} == {p.context.span_id for p in pushes}
    assert batch.parent is not None and batch.parent.span_id in {p.context.span_id for p in pushes}
    assert batch.attributes is not None and batch.attributes["whispr.sends"] == 2
    trace = in_trace(spans, batch.context.trace_id)
    deliveries = [s for s in trace if s.name == "deliver new_message"]
    assert len(deliveries) == 2 and all(ancestors(d, trace)[:2] == ["publish", "send_batch"] for d in deliveries)


def test_an_rpc_is_one_trace_from_the_call_to_delivery(
    pg_url: str, key_path: str, exported: InMemorySpanExporter
) -> None:
    """A system message sent by a sibling over the gRPC shim: the call's span continues the
    caller's `traceparent`, the use case runs under it, and the relay's delivery ends the trace;
    the call's request id comes back in the response's initial metadata."""
    caller_trace, caller_span = "5bf92f3577b34da6a3ce929d0e0e4736", "10f067aa0ba902b7"
    metadata = (("x-request-id", "rpc-traced-1"), ("traceparent", f"00-{caller_trace}-{caller_span}-01"))
    with serve(dataclasses.replace(make_settings(pg_url, key_path), scheduler="none")) as server:
        shim = BackgroundGrpc(server.services, "127.0.0.1", 0)
        alice, bob = server.client(), server.client()
        group = alice.group_with(bob)
        topic = f"conversation:{group['id']}"
        sock = Phx.open(server, bob.user_id)
        try:
            sock.join_ok(topic)
            sock.joined(topic)
            with grpc.insecure_channel(f"127.0.0.1:{shim.port}") as channel:
                stub = messaging_pb2_grpc.MessagingServiceStub(channel)
                request = pb.SendSystemMessageRequest(conversation_id=group["id"], action="renamed", client_random=3)
                answer, call = stub.SendSystemMessage.with_call(request, metadata=metadata, timeout=30)
                assert dict(call.initial_metadata())["x-request-id"] == "rpc-traced-1"
                sock.event(topic, "new_message", lambda p: p["message"]["id"] == answer.message.id)
                nowhere = pb.SendSystemMessageRequest(conversation_id=new_id(), action="x", client_random=1)
                try:
                    stub.SendSystemMessage(nowhere, timeout=30)
                except grpc.RpcError as error:
                    assert error.code() == grpc.StatusCode.NOT_FOUND
        finally:
            sock.close()
            shim.stop()
    spans = exported.get_finished_spans()
    name = "whispr.messaging.v1.MessagingService/SendSystemMessage"
    calls = sorted((s for s in spans if s.name == name), key=_started)
    assert len(calls) == 2 and all(c.kind == tracing.SERVER for c in calls)
    rpc, refused = calls
    assert f"{rpc.context.trace_id:032x}" == caller_trace
    assert rpc.parent is not None and f"{rpc.parent.span_id:016x}" == caller_span
    assert rpc.attributes is not None and rpc.attributes["rpc.grpc.status_code"] == 0
    trace = in_trace(spans, rpc.context.trace_id)
    delivery = one_named(trace, "deliver new_message")
    assert ancestors(delivery, trace) == ["publish", "send_system_notice", name]
    assert "send_system_notice" in ancestors(one_named(trace, "db.transaction"), trace)
    assert refused.parent is None and refused.attributes is not None
    assert refused.attributes["rpc.grpc.status_code"] == grpc.StatusCode.NOT_FOUND.value[0]
    assert not refused.status.is_ok


def test_off_nothing_is_recorded(pg_url: str, key_path: str) -> None:
    exporter = InMemorySpanExporter()
    tracing.enable(exporter, batch=False)
    tracing.disable()
    assert not tracing.enabled() and tracing.current_traceparent() is None
    with serve(make_settings(pg_url, key_path)) as server:
        _send_and_deliver(server)
        _push_and_deliver(server)
    assert exporter.get_finished_spans() == ()


def _send_and_deliver(server: RunningServer) -> None:
    alice, bob = server.client(), server.client()
    cid = alice.direct_with(bob)["id"]
    sock = Phx.open(server, bob.user_id)
    try:
        sock.join_ok(f"conversation:{cid}")
        sock.joined(f"conversation:{cid}")
        alice.send(cid, "traced")
        sock.event(f"conversation:{cid}", "new_message", lambda p: p["message"]["content"] == "traced")
    finally:
        sock.close()


def _push_and_deliver(server: RunningServer, exported: InMemorySpanExporter | None = None) -> str:
    """Alice pushes a message over her socket, Bob's socket gets it; the topic. The spans of
    what came before the push (the joins) are cleared from `exported`."""
    alice, bob = server.client(), server.client()
    topic = f"conversation:{alice.direct_with(bob)['id']}"
    pusher, listener = Phx.open(server, alice.user_id), Phx.open(server, bob.user_id)
    try:
        for sock in (pusher, listener):
            sock.join_ok(topic)
            sock.joined(topic)
        if exported is not None:
            exported.clear()
        pusher.ok(topic, "new_message", _text("pushed"))
        listener.event(topic, "new_message", lambda p: p["message"]["content"] == "pushed")
    finally:
        pusher.close()
        listener.close()
    return topic


def _text(content: str) -> dict[str, object]:
    return {"content": content, "message_type": "text", "client_random": client_random()}


def _started(span: ReadableSpan) -> int:
    return span.start_time or 0
