"""The request a line of log belongs to: a request id per HTTP request, socket, RPC or task,
and the trace it is part of, kept in a context variable (copied into worker threads by
anyio.to_thread, and into the tasks a socket starts).

The id comes from the caller when it sends one: `X-Request-Id` (kept when it is a sane token),
else the trace id of W3C `traceparent`, else that of Google's `X-Cloud-Trace-Context`; otherwise a
new one. It is echoed back in `X-Request-Id`."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

REQUEST_ID_HEADER = "x-request-id"
_SANE_ID = re.compile(r"[A-Za-z0-9._:/+=-]{1,128}")
_HEX = re.compile(r"[0-9a-f]+")


@dataclass(frozen=True, slots=True)
class RequestContext:
    request_id: str
    trace_id: str | None = None  # 32 hex digits, from the caller's trace header
    span_id: str | None = None  # 16 hex digits


current: ContextVar[RequestContext | None] = ContextVar("whispr_request", default=None)


def new_request_id() -> str:
    return uuid.uuid4().hex


def _from_traceparent(value: str) -> tuple[str, str] | None:
    parts = value.strip().split("-")
    if len(parts) < 4 or len(parts[1]) != 32 or len(parts[2]) != 16:
        return None
    trace_id, span_id = parts[1].lower(), parts[2].lower()
    if not (_HEX.fullmatch(trace_id) and _HEX.fullmatch(span_id)) or trace_id == "0" * 32:
        return None
    return trace_id, span_id


def _from_cloud_trace(value: str) -> tuple[str, str | None] | None:
    """`TRACE_ID/SPAN_ID;o=1`: the span id is decimal there."""
    trace_id, _, rest = value.strip().partition("/")
    trace_id = trace_id.lower()
    if len(trace_id) != 32 or not _HEX.fullmatch(trace_id):
        return None
    span = rest.split(";", 1)[0]
    return trace_id, (f"{int(span):016x}" if span.isdigit() and 0 < int(span) < 2**64 else None)


def context_from_headers(get: Callable[[str], str | None]) -> RequestContext:
    """The request context of an incoming call, from its headers (`get(name)`, lower-case names)."""
    trace: tuple[str, str | None] | None = None
    if traceparent := get("traceparent"):
        trace = _from_traceparent(traceparent)
    if trace is None and (cloud := get("x-cloud-trace-context")):
        trace = _from_cloud_trace(cloud)
    given = get(REQUEST_ID_HEADER)
    if given and _SANE_ID.fullmatch(given):
        return RequestContext(given, *(trace or (None, None)))
    return RequestContext(trace[0] if trace else new_request_id(), *(trace or (None, None)))


@contextmanager
def request_scope(context: RequestContext) -> Iterator[RequestContext]:
    """Lines logged inside (and in the threads and tasks started inside) carry this context."""
    token = current.set(context)
    try:
        yield context
    finally:
        current.reset(token)


@contextmanager
def work_scope(kind: str) -> Iterator[RequestContext]:
    """A unit of work nobody requested (a scheduled fire, a sweep): a new id, unless it runs
    inside a request (a Cloud Tasks call), whose id it keeps."""
    existing = current.get()
    if existing is not None:
        yield existing
        return
    with request_scope(RequestContext(f"{kind}-{new_request_id()}")) as context:
        yield context


def request_id() -> str | None:
    context = current.get()
    return context.request_id if context else None
