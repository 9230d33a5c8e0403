"""Traces (shared/telemetry/tracing.py): with an in-memory exporter, one REST send gives one
trace from the HTTP span through the use case, the store's transaction and the publish to the
relay's delivery span (in-process bus here; Pub/Sub carries the same context in the message's
`traceparent` attribute). Off, nothing is recorded."""

from __future__ import annotations

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from shared.telemetry import tracing
from tests.relay.phx import Phx
from tests.support import RunningServer, make_settings, serve
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
    assert {"HTTP POST", "send_message", "db.transaction", "publish", "deliver new_message"} <= names, names
    delivery = one_named(trace, "deliver new_message")
    assert (
        ancestors(delivery, trace)[:2] == ["publish", "send_message"] and ancestors(delivery, trace)[-1] == "HTTP POST"
    )
    assert "send_message" in ancestors(one_named(trace, "db.transaction"), trace)


def test_an_incoming_traceparent_is_continued(pg_url: str, key_path: str, exported: InMemorySpanExporter) -> None:
    with serve(make_settings(pg_url, key_path)) as server:
        alice = server.client()
        trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
        alice.get("/conversations", headers={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"})
    http = [s for s in exported.get_finished_spans() if s.name == "HTTP GET"]
    assert len(http) == 1 and f"{http[0].context.trace_id:032x}" == trace_id
    assert http[0].parent is not None and f"{http[0].parent.span_id:016x}" == "00f067aa0ba902b7"


def test_off_nothing_is_recorded(pg_url: str, key_path: str) -> None:
    exporter = InMemorySpanExporter()
    tracing.enable(exporter, batch=False)
    tracing.disable()
    assert not tracing.enabled() and tracing.current_traceparent() is None
    with serve(make_settings(pg_url, key_path)) as server:
        _send_and_deliver(server)
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
