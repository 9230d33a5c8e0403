"""Domain errors as gRPC statuses: the conventional code for the REST status, and the REST
error's `code` string (and details) in the status details, so a sibling reads the same
machine code a client of the REST API would (`google.rpc.ErrorInfo`: reason = the code)."""

from __future__ import annotations

from typing import Any, NoReturn

import grpc
import orjson
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from shared.domain.errors import DomainError

DOMAIN = "messaging.whispr"

# REST status -> gRPC code (api.md's statuses; the conventions of integration.md)
CODES: dict[int, grpc.StatusCode] = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    405: grpc.StatusCode.UNIMPLEMENTED,
    409: grpc.StatusCode.ALREADY_EXISTS,
    413: grpc.StatusCode.INVALID_ARGUMENT,
    422: grpc.StatusCode.INVALID_ARGUMENT,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    503: grpc.StatusCode.UNAVAILABLE,
}


def status_for(code: grpc.StatusCode, message: str, reason: str, details: dict[str, Any] | None = None) -> grpc.Status:
    """A status whose details carry `ErrorInfo(reason=<REST code>)`; the REST details are in its
    metadata as JSON under `details`."""
    info = error_details_pb2.ErrorInfo(
        reason=reason,
        domain=DOMAIN,
        metadata={"code": reason, "details": orjson.dumps(details or {}).decode()},
    )
    packed = status_pb2.Status(code=code.value[0], message=message)
    packed.details.add().Pack(info)
    return rpc_status.to_status(packed)


def domain_status(error: DomainError) -> grpc.Status:
    return status_for(CODES.get(error.status, grpc.StatusCode.UNKNOWN), error.message, error.code, error.details)


async def abort(context: grpc.aio.ServicerContext[Any, Any], status: grpc.Status) -> NoReturn:
    await context.abort_with_status(status)
    raise AssertionError("abort_with_status returned")  # it raises; this tells the type checker
