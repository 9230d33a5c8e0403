"""Reading what the in-memory span exporter recorded: the spans of one trace and a span's
chain of ancestors (shared/telemetry/tracing.py; tests/infra/test_traces.py and the emulator
test tests/cloud/test_traces_pubsub.py; the `exported` fixture is in tests/conftest.py)."""

from __future__ import annotations

from opentelemetry.sdk.trace import ReadableSpan


def in_trace(spans: tuple[ReadableSpan, ...], trace_id: int) -> list[ReadableSpan]:
    return [s for s in spans if s.context is not None and s.context.trace_id == trace_id]


def ancestors(span: ReadableSpan, spans: list[ReadableSpan]) -> list[str]:
    """The names of `span`'s parent, its parent's parent... up to the trace's root, or to the
    first parent that is not among `spans` (a caller's, across the network)."""
    index = {s.context.span_id: s for s in spans if s.context is not None}
    chain = []
    while span.parent is not None and span.parent.span_id in index:
        span = index[span.parent.span_id]
        chain.append(span.name)
    return chain


def one_named(spans: list[ReadableSpan], name: str) -> ReadableSpan:
    named = [s for s in spans if s.name == name]
    assert len(named) == 1, f"{len(named)} spans named {name!r} in {[s.name for s in spans]}"
    return named[0]
