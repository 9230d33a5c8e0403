"""Errors callers can see. Each carries its HTTP status and machine code (api.md's contract);
the socket and gRPC entry points map the same codes to their own shapes."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details or {}


class BadRequest(DomainError):
    status = 400
    code = "bad_request"


class Unauthorized(DomainError):
    status = 401
    code = "unauthorized"


class Forbidden(DomainError):
    status = 403
    code = "forbidden"


class NotFound(DomainError):
    status = 404
    code = "not_found"


class Conflict(DomainError):
    status = 409
    code = "conflict"


class TooLarge(DomainError):
    status = 413
    code = "payload_too_large"


class Invalid(DomainError):
    """422: the request is well-formed but breaks a rule; `details` maps field -> messages."""

    status = 422
    code = "validation_failed"

    @classmethod
    def field(cls, name: str, message: str, *, code: str | None = None) -> Invalid:
        return cls(f"{name}: {message}", code=code, details={name: [message]})


class RateLimited(DomainError):
    status = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: float, code: str | None = None):
        super().__init__(message, code=code, details={"retry_after": max(1, round(retry_after))})
        self.retry_after = max(1, round(retry_after))


class Unavailable(DomainError):
    status = 503
    code = "unavailable"


STORE_RETRY_AFTER_SECONDS = 2


class StoreUnavailable(Unavailable):
    """The system of record cannot be reached (down, restarting, out of connections): nothing was
    done, and the same request is worth repeating shortly (503 with Retry-After; on a socket an
    error reply with `retry_after`, the channel kept)."""

    code = "store_unavailable"

    def __init__(self, message: str = "the message store cannot be reached; try again shortly"):
        super().__init__(message, details={"retry_after": STORE_RETRY_AFTER_SECONDS})
        self.retry_after = STORE_RETRY_AFTER_SECONDS


class MethodNotAllowed(DomainError):
    status = 405
    code = "method_not_allowed"
