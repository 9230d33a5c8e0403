"""Stand-ins for the sibling services. user-service, media-service and notification-service do not
exist on this machine: each stand-in is a real gRPC server on a real port, generated from the
same protos/ contracts, whose answers a test sets (blocked pairs, refused media, failing with a
status, never answering) and which records every request that reached it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import grpc

from shared.devtools.postgres import free_port
from shared.protogen.whispr.media.v1 import media_pb2, media_pb2_grpc
from shared.protogen.whispr.notification.v1 import notification_pb2, notification_pb2_grpc
from shared.protogen.whispr.user.v1 import user_pb2, user_pb2_grpc


@dataclass
class Behaviour:
    """What the stand-in does with the next calls: fail with `fail_with`, hang until released, or answer."""

    fail_with: grpc.StatusCode | None = None
    fail_times: int | None = None  # fail only this many calls (None: until told otherwise)
    hang: bool = False
    released: threading.Event = field(default_factory=threading.Event)
    requests: list[Any] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def enter(self, request: Any, context: grpc.ServicerContext) -> None:
        with self.lock:
            self.requests.append(request)
            failing = self.fail_with
            if failing is not None and self.fail_times is not None:
                if self.fail_times <= 0:
                    failing = None
                else:
                    self.fail_times -= 1
        if self.hang:
            self.released.wait(60)
        if failing is not None:
            context.abort(failing, f"stand-in failing with {failing.name}")

    @property
    def calls(self) -> int:
        with self.lock:
            return len(self.requests)


class UserServiceStandIn(user_pb2_grpc.UserServiceServicer):
    def __init__(self) -> None:
        self.behaviour = Behaviour()
        self.blocks: set[tuple[str, str]] = set()  # (blocker, blocked)

    def CheckUserBlocks(
        self, request: user_pb2.CheckUserBlocksRequest, context: Any
    ) -> user_pb2.CheckUserBlocksResponse:
        self.behaviour.enter(request, context)
        out = []
        for other in request.other_user_ids:
            blocks, blocked_by = (request.user_id, other) in self.blocks, (other, request.user_id) in self.blocks
            if blocks or blocked_by:
                out.append(user_pb2.UserBlock(other_user_id=other, blocks=blocks, blocked_by=blocked_by))
        return user_pb2.CheckUserBlocksResponse(blocks=out)


class MediaServiceStandIn(media_pb2_grpc.MediaServiceServicer):
    def __init__(self) -> None:
        self.behaviour = Behaviour()
        self.refused: dict[str, str] = {}  # media id -> reason
        self.refused_in: dict[tuple[str, str], str] = {}  # (media id, conversation id) -> reason
        self.unknown: set[str] = set()

    def ValidateMediaAccess(
        self, request: media_pb2.ValidateMediaAccessRequest, context: Any
    ) -> media_pb2.ValidateMediaAccessResponse:
        self.behaviour.enter(request, context)
        if request.media_id in self.unknown:
            context.abort(grpc.StatusCode.NOT_FOUND, "no such media")
        reason = self.refused.get(request.media_id) or self.refused_in.get((request.media_id, request.conversation_id))
        metadata = media_pb2.MediaMetadata(media_id=request.media_id, owner_id=request.user_id, mime_type="image/png")
        return media_pb2.ValidateMediaAccessResponse(
            allowed=reason is None, reason=reason or "", metadata=metadata, permissions=["read"]
        )


class NotificationServiceStandIn(notification_pb2_grpc.NotificationServiceServicer):
    def __init__(self) -> None:
        self.behaviour = Behaviour()

    def SendMessageNotification(
        self, request: notification_pb2.SendMessageNotificationRequest, context: Any
    ) -> notification_pb2.SendMessageNotificationResponse:
        self.behaviour.enter(request, context)
        return notification_pb2.SendMessageNotificationResponse(queued_count=len(request.recipient_ids))

    def MarkNotificationsAsRead(
        self, request: notification_pb2.MarkNotificationsAsReadRequest, context: Any
    ) -> notification_pb2.MarkNotificationsAsReadResponse:
        self.behaviour.enter(request, context)
        return notification_pb2.MarkNotificationsAsReadResponse(updated_count=1)


@dataclass
class Siblings:
    users: UserServiceStandIn
    media: MediaServiceStandIn
    notifications: NotificationServiceStandIn
    endpoint: str  # all three services on one server

    def release(self) -> None:
        for b in (self.users.behaviour, self.media.behaviour, self.notifications.behaviour):
            b.hang = False
            b.released.set()


@contextmanager
def sibling_servers() -> Iterator[Siblings]:
    """One real gRPC server on a free port serving the three stand-ins."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    siblings = Siblings(UserServiceStandIn(), MediaServiceStandIn(), NotificationServiceStandIn(), "")
    user_pb2_grpc.add_UserServiceServicer_to_server(siblings.users, server)
    media_pb2_grpc.add_MediaServiceServicer_to_server(siblings.media, server)
    notification_pb2_grpc.add_NotificationServiceServicer_to_server(siblings.notifications, server)
    port = free_port()
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    siblings.endpoint = f"127.0.0.1:{port}"
    try:
        yield siblings
    finally:
        siblings.release()
        server.stop(0)
