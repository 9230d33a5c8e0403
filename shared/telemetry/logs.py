"""One logger setup for every entry point (functions, relay, gRPC shim, CLI): `setup_logging`.

Off a terminal (Cloud Run, Cloud Functions, files), each record is one JSON line in the shape
Cloud Logging reads from a container's output: `severity`, `message`, `time`, the request id,
`logging.googleapis.com/trace` and `logging.googleapis.com/spanId` when the request's trace is
known (so Cloud Logging groups the lines of a request under its trace), and `httpRequest` on
access lines. On a terminal (`make run`), a readable line instead. `WHISPR_LOG_FORMAT` forces
either.

Tokens never reach the output: whatever a line says, bearer tokens, `token=` query values and
anything shaped like a JWT are replaced by `[redacted]` here, the last place before the output.
Message content and E2E payloads are never logged by the code (lines name ids, not bodies);
tests/infra/test_logs.py greps a full flow's output for them.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from datetime import datetime, timezone
from typing import Any

import orjson

from shared.telemetry import context

TRACE_FIELD = "logging.googleapis.com/trace"
SPAN_FIELD = "logging.googleapis.com/spanId"
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
_LEVELS["critical"] = logging.CRITICAL
# Libraries that narrate every call at INFO: quiet unless debugging.
_CHATTY = ("httpx", "httpcore", "urllib3", "google", "grpc", "alembic.runtime.migration")

_SECRETS = re.compile(
    r"(?P<bearer>(?i:bearer)\s+)[^\s,;\"']+"
    r"|(?P<query>\btoken=)[^&\s\"']+"
    r"|eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"
)


def redact(text: str) -> str:
    """Bearer tokens, `token=` values and JWT-shaped strings replaced by `[redacted]`."""
    if "eyJ" not in text and "oken=" not in text and "earer" not in text:
        return text  # the common case costs three substring scans
    return _SECRETS.sub(lambda m: (m.group("bearer") or m.group("query") or "") + "[redacted]", text)


def _project() -> str:
    return os.environ.get("WHISPR_GCP_PROJECT") or os.environ.get("GOOGLE_CLOUD_PROJECT") or "whispr-local"


def trace_ids() -> tuple[str | None, str | None]:
    """(trace id, span id) of the current line: the active OpenTelemetry span when tracing is
    on, else the caller's trace header."""
    from shared.telemetry import tracing

    active = tracing.current_ids()
    if active is not None:
        return active
    ctx = context.current.get()
    return (ctx.trace_id, ctx.span_id) if ctx else (None, None)


class CloudLoggingFormatter(logging.Formatter):
    """A record as one JSON line of Cloud Logging's structured format."""

    def __init__(self, project: str | None = None):
        super().__init__()
        self.project = project or _project()

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.exc_info:  # Error Reporting reads the stack from the message
            message = f"{message}\n{self.formatException(record.exc_info)}"
        entry: dict[str, Any] = {
            "severity": record.levelname,
            "message": redact(message),
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat().replace("+00:00", "Z"),
            "logger": record.name,
        }
        request_id = context.request_id()
        if request_id:
            entry["request_id"] = request_id
        trace_id, span_id = trace_ids()
        if trace_id:
            entry[TRACE_FIELD] = f"projects/{self.project}/traces/{trace_id}"
            if span_id:
                entry[SPAN_FIELD] = span_id
        http_request = getattr(record, "http_request", None)
        if http_request:
            entry["httpRequest"] = http_request
        return orjson.dumps(entry).decode()


class TerminalFormatter(logging.Formatter):
    """Readable lines for a person at a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s%(rid)s: %(message)s", datefmt="%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        request_id = context.request_id()
        record.rid = f" [{request_id[:12]}]" if request_id else ""
        return redact(super().format(record))


def level_of(name: str | None) -> int:
    return _LEVELS.get((name or "info").strip().lower(), logging.INFO)


def setup_logging(level: str | None = None, fmt: str | None = None, stream: Any = None) -> None:
    """Install the one handler (stderr) on the root logger; every library logs through it.

    Called first thing by every entry point, before the settings are read (so that their
    warnings come out formatted too): the level and the format are read from `WHISPR_LOG_LEVEL`
    and `WHISPR_LOG_FORMAT` (`auto`: text on a terminal, JSON otherwise) unless given; a bad value
    falls back to `info`/`auto` here and is refused by the settings right after."""
    stream = stream or sys.stderr
    fmt = (fmt or os.environ.get("WHISPR_LOG_FORMAT") or "auto").strip().lower()
    text = fmt == "text" or (fmt != "json" and hasattr(stream, "isatty") and stream.isatty())
    handler = logging.StreamHandler(stream)
    handler.setFormatter(TerminalFormatter() if text else CloudLoggingFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    set_level(level or os.environ.get("WHISPR_LOG_LEVEL"))
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):  # through the root handler, not their own
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True


# At DEBUG these write socket frames (message content) and upgrade headers (a subprotocol may
# carry the token, base64-encoded): never below INFO, whatever the level.
_NEVER_DEBUG = ("uvicorn.error", "websockets")


def set_level(name: str | None) -> None:
    level = level_of(name)
    logging.getLogger().setLevel(level)
    for chatty in _CHATTY:
        logging.getLogger(chatty).setLevel(level if level <= logging.DEBUG else max(level, logging.WARNING))
    for noisy in _NEVER_DEBUG:
        logging.getLogger(noisy).setLevel(max(level, logging.INFO))


access_log = logging.getLogger("whispr.access")


def log_access(
    method: str, path: str, status: int, seconds: float, *, remote_ip: str | None, user_agent: str | None, size: int
) -> None:
    """One line per HTTP request with Cloud Logging's `httpRequest`. The path only: a query
    may carry search terms (message content) or a token."""
    if not access_log.isEnabledFor(logging.INFO):
        return
    http_request: dict[str, Any] = {
        "requestMethod": method,
        "requestUrl": path,
        "status": status,
        "latency": f"{seconds:.6f}s",
        "responseSize": str(size),
    }
    if remote_ip:
        http_request["remoteIp"] = remote_ip
    if user_agent:
        http_request["userAgent"] = user_agent[:256]
    access_log.info("%s %s %d", method, path, status, extra={"http_request": http_request})
