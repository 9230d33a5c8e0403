"""gRPC clients of the sibling services (integration.md, "gRPC consumed"), behind the ports of
shared/ports/siblings.py.

Every call goes through one `SiblingClient` per service, which gives it:
- a deadline: the call's whole budget (`sibling_deadline_seconds`, default 5 s), retries
  included, so a sibling that never answers costs at most that;
- retries on UNAVAILABLE only (the request never reached a server), at most
  `sibling_max_retries`, after a jittered exponential backoff that fits in what is left;
- a circuit breaker: `sibling_breaker_failures` consecutive failures open it, and calls then fail
  at once (no request leaves) until `sibling_breaker_reset_seconds` have passed; then one call
  goes through as a probe (half-open) and its outcome closes or reopens the circuit;
- one channel for the life of the process (HTTP/2 connection reuse);
- the credentials `WHISPR_SIBLING_AUTH` chooses (shared/adapters/sibling_credentials.py) in
  every call's metadata; a call that cannot get them fails like an unreachable service.

A failure (the service unreachable, the deadline passed, an internal error, the circuit open)
raises `SiblingUnavailable`; an answer the service gives on purpose (NOT_FOUND,
PERMISSION_DENIED...) is an answer, counts as the service being up, and each adapter says what
it means.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TypeVar

import grpc
from google.protobuf.json_format import MessageToDict

from shared.adapters.sibling_credentials import (
    CallCredentials,
    CredentialsUnavailable,
    GoogleIdToken,
    NoCredentials,
    SharedSecret,
    audience_of,
)
from shared.config import Settings
from shared.ports.siblings import MediaCheck, MessageNotification, SiblingUnavailable
from shared.protogen.whispr.media.v1 import media_pb2, media_pb2_grpc
from shared.protogen.whispr.notification.v1 import notification_pb2, notification_pb2_grpc
from shared.protogen.whispr.user.v1 import user_pb2, user_pb2_grpc
from shared.telemetry.metrics import SIBLING_BREAKER_OPEN, SIBLING_CALL_SECONDS

log = logging.getLogger(__name__)

Req = TypeVar("Req")
Resp = TypeVar("Resp")

# What says the service failed (rather than answered): these count against its circuit.
FAILURES = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.UNAUTHENTICATED,  # our credentials: nothing will work until fixed
    }
)


# How grpc reports a plain HTTP answer with no gRPC status (e.g. 401 -> UNAUTHENTICATED, 403 ->
# PERMISSION_DENIED): a proxy in front of the service refused the call, such as Cloud Run's IAM
# when the caller's identity is not a roles/run.invoker of the service. Never the service's answer.
PROXY_REFUSAL = "Received http2 header with status"


class CircuitBreaker:
    """Closed -> (threshold consecutive failures) -> open -> (reset_after) -> half-open: one probe
    call; its success closes the circuit, its failure opens it again. Thread-safe."""

    CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"

    def __init__(self, threshold: int, reset_after: float, clock: Callable[[], float] = time.monotonic):
        self.threshold = max(1, threshold)
        self.reset_after = reset_after
        self.clock = clock
        self._lock = threading.Lock()
        self._state = self.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probing = False

    @property
    def state(self) -> str:
        with self._lock:
            return self._state

    def allow(self) -> bool:
        """May a call go out now? In half-open, only the one probe may."""
        with self._lock:
            if self._state == self.CLOSED:
                return True
            if self._state == self.OPEN and self.clock() - self._opened_at >= self.reset_after:
                self._state, self._probing = self.HALF_OPEN, False
            if self._state == self.HALF_OPEN and not self._probing:
                self._probing = True
                return True
            return False

    def succeeded(self) -> None:
        with self._lock:
            self._state, self._failures, self._probing = self.CLOSED, 0, False

    def failed(self) -> bool:
        """Count a failure; True if it opened the circuit."""
        with self._lock:
            self._failures += 1
            if self._state == self.HALF_OPEN or self._failures >= self.threshold:
                opened = self._state != self.OPEN
                self._state, self._opened_at, self._probing = self.OPEN, self.clock(), False
                return opened
            return False


def open_channel(endpoint: str) -> grpc.Channel:
    """`host:port`: plaintext (a private network); `grpcs://host:port`: TLS with the system roots."""
    options = [("grpc.keepalive_time_ms", 60_000), ("grpc.keepalive_permit_without_calls", 0)]
    if endpoint.startswith("grpcs://"):
        return grpc.secure_channel(endpoint.removeprefix("grpcs://"), grpc.ssl_channel_credentials(), options)
    return grpc.insecure_channel(endpoint.removeprefix("grpc://"), options)


class SiblingClient:
    """Calls to one sibling service: deadline, retries, circuit breaker, one reused channel."""

    def __init__(
        self,
        service: str,
        endpoint: str,
        *,
        deadline: float = 5.0,
        max_retries: int = 3,
        breaker: CircuitBreaker | None = None,
        backoff_base: float = 0.05,
        backoff_max: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
        credentials: CallCredentials | None = None,
    ):
        self.service = service
        self.endpoint = endpoint
        self.deadline = deadline
        self.max_retries = max_retries
        self.breaker = breaker or CircuitBreaker(5, 30.0)
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.sleep = sleep
        self.credentials = credentials or NoCredentials()
        self.channel = open_channel(endpoint)

    @classmethod
    def from_settings(cls, service: str, endpoint: str, settings: Settings, audience: str = "") -> SiblingClient:
        """The client `settings` describe; `audience`: that of the service's ID tokens (empty:
        the endpoint's https URL)."""
        return cls(
            service,
            endpoint,
            deadline=settings.sibling_deadline_seconds,
            max_retries=settings.sibling_max_retries,
            breaker=CircuitBreaker(settings.sibling_breaker_failures, settings.sibling_breaker_reset_seconds),
            credentials=credentials_for(service, endpoint, settings, audience),
        )

    def call(self, method: grpc.UnaryUnaryMultiCallable[Req, Resp], request: Req) -> Resp:
        """One call within the deadline; SiblingUnavailable if the service does not answer, and
        the service's own RpcError (NOT_FOUND...) when it answers with one."""
        if not self.breaker.allow():
            SIBLING_CALL_SECONDS.labels(self.service, "circuit_open").observe(0.0)
            message = f"the {self.service} is unavailable (circuit open); try again shortly"
            raise SiblingUnavailable(self.service, message)
        started = time.perf_counter()
        try:
            response = self._call(method, request)
        except SiblingUnavailable:
            SIBLING_CALL_SECONDS.labels(self.service, "unavailable").observe(time.perf_counter() - started)
            raise
        except grpc.RpcError:
            SIBLING_CALL_SECONDS.labels(self.service, "error").observe(time.perf_counter() - started)
            raise
        finally:
            SIBLING_BREAKER_OPEN.labels(self.service).set(1.0 if self.breaker.state == CircuitBreaker.OPEN else 0.0)
        SIBLING_CALL_SECONDS.labels(self.service, "ok").observe(time.perf_counter() - started)
        return response

    def _call(self, method: grpc.UnaryUnaryMultiCallable[Req, Resp], request: Req) -> Resp:
        ends = time.monotonic() + self.deadline
        try:
            metadata = self.credentials.metadata(timeout=max(0.001, ends - time.monotonic()))
        except CredentialsUnavailable as error:
            self._failed(f"no credentials: {error}", 0)
            raise SiblingUnavailable(self.service) from error
        attempt = 0
        while True:
            try:
                response = method(request, timeout=max(0.001, ends - time.monotonic()), metadata=metadata)
            except grpc.RpcError as error:
                code = error.code() if isinstance(error, grpc.Call) else grpc.StatusCode.UNKNOWN
                details = (error.details() if isinstance(error, grpc.Call) else None) or ""
                by_proxy = details.startswith(PROXY_REFUSAL)
                if code not in FAILURES and not by_proxy:
                    self.breaker.succeeded()  # it answered: it is up
                    raise
                if code == grpc.StatusCode.UNAUTHENTICATED:
                    self.credentials.rejected()
                if code == grpc.StatusCode.UNAVAILABLE and attempt < self.max_retries:
                    delay = min(self.backoff_max, self.backoff_base * 2**attempt) * random.uniform(0.5, 1.0)
                    if time.monotonic() + delay < ends:
                        attempt += 1
                        self.sleep(delay)
                        continue
                reason = f"{code.name}, {details} (in front of the service: may this identity invoke it?)"
                self._failed(reason if by_proxy else code.name, attempt)
                raise SiblingUnavailable(self.service) from error
            self.breaker.succeeded()
            return response

    def _failed(self, reason: str, attempt: int) -> None:
        if self.breaker.failed():
            log.warning("%s circuit opened after %s (%d retries)", self.service, reason, attempt)
        else:
            log.info("%s call failed: %s (%d retries)", self.service, reason, attempt)

    def close(self) -> None:
        self.channel.close()


def credentials_for(service: str, endpoint: str, settings: Settings, audience: str = "") -> CallCredentials:
    """What `WHISPR_SIBLING_AUTH` says the calls to `service` carry (logged once, never the value)."""
    plaintext = "" if endpoint.startswith("grpcs://") else " (plaintext: a private network only)"
    if settings.sibling_auth == "id_token":
        audience = audience or audience_of(endpoint)
        log.info("%s calls carry a Google ID token for %s%s", service, audience, plaintext)
        return GoogleIdToken(audience)
    if settings.sibling_auth == "secret":
        log.info("%s calls carry the shared secret%s", service, plaintext)
        return SharedSecret(settings.sibling_shared_secret)
    log.info("%s calls carry no credentials (WHISPR_SIBLING_AUTH=none)", service)
    return NoCredentials()


class GrpcUserDirectory:
    """user-service `CheckUserBlocks`, answers cached for `cache_seconds` per pair (both
    directions in one entry); `forget_blocks` drops them when a block event arrives."""

    def __init__(
        self,
        client: SiblingClient,
        *,
        cache_seconds: float = 30.0,
        max_entries: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.client = client
        self.stub = user_pb2_grpc.UserServiceStub(client.channel)
        self.cache_seconds = cache_seconds
        self.max_entries = max_entries
        self.clock = clock
        self._lock = threading.Lock()
        self._cache: OrderedDict[tuple[str, str], tuple[bool, float]] = OrderedDict()

    @staticmethod
    def _pair(a: str, b: str) -> tuple[str, str]:
        return (a, b) if a <= b else (b, a)

    def is_blocked(self, user_id: str, other_user_id: str) -> bool:
        key = self._pair(user_id, other_user_id)
        now = self.clock()
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None and hit[1] > now:
                return hit[0]
        request = user_pb2.CheckUserBlocksRequest(user_id=user_id, other_user_ids=[other_user_id])
        try:
            response = self.client.call(self.stub.CheckUserBlocks, request)
        except grpc.RpcError as error:
            # Any other answer (NOT_FOUND, INVALID_ARGUMENT...) is no verdict on the pair: the
            # check fails closed, as when the service is down, instead of surfacing as a 500.
            code = error.code() if isinstance(error, grpc.Call) else grpc.StatusCode.UNKNOWN
            log.warning("%s answered CheckUserBlocks with %s: no block verdict", self.client.service, code.name)
            raise SiblingUnavailable(self.client.service) from error
        blocked = any(b.other_user_id == other_user_id and (b.blocks or b.blocked_by) for b in response.blocks)
        with self._lock:
            self._cache[key] = (blocked, now + self.cache_seconds)
            self._cache.move_to_end(key)
            while len(self._cache) > self.max_entries:
                self._cache.popitem(last=False)
        return blocked

    def forget_blocks(self, user_id: str, other_user_id: str | None = None) -> None:
        with self._lock:
            if other_user_id is not None:
                self._cache.pop(self._pair(user_id, other_user_id), None)
                return
            for key in [k for k in self._cache if user_id in k]:
                del self._cache[key]

    def close(self) -> None:
        self.client.close()


class GrpcMediaLibrary:
    """media-service `ValidateMediaAccess` (read access: the sender shares an object they can read)."""

    def __init__(self, client: SiblingClient):
        self.client = client
        self.stub = media_pb2_grpc.MediaServiceStub(client.channel)

    def validate_access(self, media_id: str, user_id: str, conversation_id: str) -> MediaCheck:
        request = media_pb2.ValidateMediaAccessRequest(
            media_id=media_id, user_id=user_id, conversation_id=conversation_id, access=media_pb2.MEDIA_ACCESS_READ
        )
        try:
            response = self.client.call(self.stub.ValidateMediaAccess, request)
        except grpc.RpcError as error:  # the service answered with a status: a refusal
            code = error.code() if isinstance(error, grpc.Call) else grpc.StatusCode.UNKNOWN
            if code == grpc.StatusCode.NOT_FOUND:
                return MediaCheck(allowed=False, reason="the media service does not know this media id")
            if code in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.INVALID_ARGUMENT):
                details = error.details() if isinstance(error, grpc.Call) else None
                return MediaCheck(allowed=False, reason=details or "refused by the media service")
            raise SiblingUnavailable(self.client.service) from error
        metadata = MessageToDict(response.metadata) if response.HasField("metadata") else {}
        return MediaCheck(allowed=response.allowed, reason=response.reason, metadata=metadata)

    def close(self) -> None:
        self.client.close()


class GrpcNotifier:
    """notification-service `SendMessageNotification` and `MarkNotificationsAsRead`. Raises
    SiblingUnavailable when it cannot hand them over: the caller (an event handler whose
    delivery is retried) decides to retry; nothing here blocks a send."""

    def __init__(self, client: SiblingClient):
        self.client = client
        self.stub = notification_pb2_grpc.NotificationServiceStub(client.channel)

    def notify_message(self, notification: MessageNotification) -> None:
        request = notification_pb2.SendMessageNotificationRequest(
            message_id=notification.message_id,
            conversation_id=notification.conversation_id,
            sender_id=notification.sender_id,
            recipient_ids=list(notification.recipient_ids),
            message_type=notification.message_type,
            mention_ids=list(notification.mention_ids),
            encrypted=notification.encrypted,
            preview="" if notification.encrypted else notification.preview,
            seq=notification.seq,
            event_id=notification.event_id,
        )
        request.sent_at.FromDatetime(notification.sent_at)
        self._call(self.stub.SendMessageNotification, request)

    def mark_read(self, user_id: str, conversation_id: str, up_to_seq: int) -> None:
        request = notification_pb2.MarkNotificationsAsReadRequest(
            user_id=user_id, conversation_id=conversation_id, up_to_seq=up_to_seq
        )
        self._call(self.stub.MarkNotificationsAsRead, request)

    def _call(self, method: grpc.UnaryUnaryMultiCallable[Req, Resp], request: Req) -> None:
        try:
            self.client.call(method, request)
        except grpc.RpcError as error:  # refused (INVALID_ARGUMENT...): retrying would not help
            log.warning("notification-service refused %s: %s", type(request).__name__, error)

    def close(self) -> None:
        self.client.close()
