"""Each call of the shim as REST's requests are (shared/http/api.py): under a request id taken from
its metadata (`x-request-id`, `traceparent`, `x-cloud-trace-context`), which every line it logs
carries and which goes back in the response's initial metadata, and in a server span continuing
the caller's `traceparent` (tracing on): RPC -> use case -> store -> publish -> delivery, one
trace. Health and reflection calls are left out (probes every few seconds are nobody's trace)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from shared.rpc.auth import OPEN_PREFIXES, Continuation, Handler
from shared.telemetry import tracing
from shared.telemetry.context import REQUEST_ID_HEADER, context_from_headers, request_scope

UNOBSERVED = (*OPEN_PREFIXES, "/grpc.reflection.")


class CallTelemetry(grpc.aio.ServerInterceptor):
    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or handler.unary_unary is None or method.startswith(UNOBSERVED):
            return handler
        metadata = {k.lower(): v for k, v in handler_call_details.invocation_metadata or () if isinstance(v, str)}
        service, _, name = method.lstrip("/").rpartition("/")
        behavior: Callable[..., Awaitable[Any]] = handler.unary_unary  # an aio server's: a coroutine
        attributes = {"rpc.system": "grpc", "rpc.service": service, "rpc.method": name}

        async def observed(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            with (
                request_scope(context_from_headers(metadata.get)) as scope,
                tracing.span(
                    method.lstrip("/"), kind=tracing.SERVER, parent=tracing.extract(metadata), attributes=attributes
                ),
            ):
                await context.send_initial_metadata(((REQUEST_ID_HEADER, scope.request_id),))
                try:
                    return await behavior(request, context)
                finally:
                    code = context.code()
                    tracing.annotate(**{"rpc.grpc.status_code": code.value[0] if code is not None else 0})

        return grpc.unary_unary_rpc_method_handler(
            observed,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
