"""Traces (OpenTelemetry). Placeholder until tracing lands: no span is ever active."""

from __future__ import annotations


def current_ids() -> tuple[str, str] | None:
    """(trace id, span id) of the active span, or None."""
    return None
