"""Traces (OpenTelemetry) across one message's life: the REST or socket entry, the use case,
the store's transaction, the publish, the bus (Pub/Sub carries the context in the message's
`traceparent` attribute), and each relay's delivery to its sockets.

Off by default: `WHISPR_TRACE_EXPORTER=none`. Then `span()` hands back one shared no-op
context manager, without touching OpenTelemetry at all, so the hot path pays one global read
and a call. `gcp` exports to Cloud Trace, `otlp` to an OTLP/HTTP collector
(`OTEL_EXPORTER_OTLP_ENDPOINT`, default http://localhost:4318). Spans go out in batches from a
background thread. The provider is this module's own (not OpenTelemetry's global one), so
tests can turn tracing on with an in-memory exporter and off again (`enable`, `disable`).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

    from shared.config import Settings

log = logging.getLogger(__name__)

SERVER, CLIENT, PRODUCER, CONSUMER, INTERNAL = (
    SpanKind.SERVER,
    SpanKind.CLIENT,
    SpanKind.PRODUCER,
    SpanKind.CONSUMER,
    SpanKind.INTERNAL,
)
_NOTHING = contextlib.nullcontext()
_PROPAGATOR = TraceContextTextMapPropagator()
_provider: TracerProvider | None = None
_tracer: trace.Tracer | None = None


def enabled() -> bool:
    return _tracer is not None


def span(
    name: str, *, kind: SpanKind = INTERNAL, parent: Context | None = None, attributes: Mapping[str, Any] | None = None
) -> contextlib.AbstractContextManager[Any]:
    """A span around a block (the current span's child, or `parent`'s); nothing when off."""
    tracer = _tracer
    if tracer is None:
        return _NOTHING
    return tracer.start_as_current_span(name, context=parent, kind=kind, attributes=attributes)


def continued(
    name: str, traceparent: str | None, *, kind: SpanKind = CONSUMER
) -> contextlib.AbstractContextManager[Any]:
    """A span continuing the trace an event carried across the bus; nothing when off or when
    the event carries none (published with tracing off, or by the outbox sweeper)."""
    parent = from_traceparent(traceparent) if _tracer is not None else None
    return _NOTHING if parent is None else span(name, kind=kind, parent=parent)


def for_many(
    name: str, traceparents: Sequence[str], *, attributes: Mapping[str, Any] | None = None
) -> contextlib.AbstractContextManager[Any]:
    """A span for work done at once for several traced callers (a group commit of socket
    sends): the child of the first caller's span, linked to every caller's, so that the first
    trace runs on through it (store, publish, delivery) and each other one points to it.
    Nothing when off or when no caller was traced."""
    tracer = _tracer
    if tracer is None or not traceparents:
        return _NOTHING
    parents = [c for c in map(from_traceparent, traceparents) if c is not None]
    links = [trace.Link(trace.get_current_span(c).get_span_context()) for c in parents]
    root = parents[0] if parents else Context()  # never the context the calling task inherited
    return tracer.start_as_current_span(name, context=root, attributes=attributes, links=links)


def annotate(**attributes: str | int) -> None:
    """Attributes on the active span (nothing when off)."""
    if _tracer is not None:
        trace.get_current_span().set_attributes(attributes)


def extract(carrier: Mapping[str, str]) -> Context | None:
    """The caller's context from W3C headers (`traceparent`), or None when off or absent."""
    if _tracer is None or "traceparent" not in carrier:
        return None
    return _PROPAGATOR.extract(carrier)


def from_traceparent(traceparent: str | None) -> Context | None:
    return extract({"traceparent": traceparent}) if traceparent else None


def current_traceparent() -> str | None:
    """The active span as a W3C `traceparent`, to carry across the bus; None when off."""
    if _tracer is None:
        return None
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get("traceparent")


def current_ids() -> tuple[str, str] | None:
    """(trace id, span id) of the active span, for log lines; None when off or outside a span."""
    if _tracer is None:
        return None
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return f"{context.trace_id:032x}", f"{context.span_id:016x}"


def enable(exporter: SpanExporter, *, batch: bool = True, service: str = "whispr-messaging") -> None:
    """Export spans to `exporter` from now on (tests: an in-memory one, `batch=False`)."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    global _provider, _tracer
    disable()
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter))
    _provider, _tracer = provider, provider.get_tracer("whispr")


def disable() -> None:
    global _provider, _tracer
    provider, _provider, _tracer = _provider, None, None
    if provider is not None:
        provider.shutdown()  # flushes what is batched


def setup_tracing(settings: Settings) -> None:
    """Turn tracing on as `WHISPR_TRACE_EXPORTER` says (once per process; `none`: nothing)."""
    if settings.trace_exporter == "none" or _tracer is not None:
        return
    exporter: SpanExporter
    if settings.trace_exporter == "gcp":
        from opentelemetry.exporter.cloud_trace import CloudTraceSpanExporter

        exporter = CloudTraceSpanExporter(project_id=settings.gcp_project)  # type: ignore[no-untyped-call]
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()
    enable(exporter, service=f"whispr-messaging-{settings.component or 'gateway'}")
    log.info("tracing on: spans exported to %s", settings.trace_exporter)
