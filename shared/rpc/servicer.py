"""`whispr.messaging.v1.MessagingService`: each RPC reads its request, calls a use case of
shared/app/sibling_calls.py (in a worker thread: the use cases are blocking) and writes the
answer. Nothing else happens here; a new RPC is one method and one use case."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any, TypeAlias, TypeVar

import grpc
from google.protobuf import json_format, struct_pb2, timestamp_pb2
from sqlalchemy.exc import OperationalError

from shared.app import sibling_calls as calls
from shared.app.services import Services
from shared.domain.errors import DomainError, Invalid, Unavailable
from shared.domain.models import Attachment, Member, Message, Role
from shared.protogen.whispr.messaging.v1 import messaging_pb2 as pb
from shared.protogen.whispr.messaging.v1 import messaging_pb2_grpc
from shared.rpc.errors import abort, domain_status
from shared.telemetry import tracing

log = logging.getLogger(__name__)

T = TypeVar("T")
Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"

ROLE_TO_PB = {
    "owner": pb.MEMBER_ROLE_OWNER,
    "admin": pb.MEMBER_ROLE_ADMIN,
    "moderator": pb.MEMBER_ROLE_MODERATOR,
    "member": pb.MEMBER_ROLE_MEMBER,
}
ROLE_FROM_PB: dict[int, Role] = {v: k for k, v in ROLE_TO_PB.items()}  # type: ignore[misc]
MESSAGE_TYPE_TO_PB = {"text": pb.MESSAGE_TYPE_TEXT, "media": pb.MESSAGE_TYPE_MEDIA, "system": pb.MESSAGE_TYPE_SYSTEM}
MEDIA_TYPE_TO_PB = {
    "image": pb.MEDIA_TYPE_IMAGE,
    "video": pb.MEDIA_TYPE_VIDEO,
    "audio": pb.MEDIA_TYPE_AUDIO,
    "document": pb.MEDIA_TYPE_DOCUMENT,
}
MEDIA_TYPE_FROM_PB = {v: k for k, v in MEDIA_TYPE_TO_PB.items()}


def _ts(value: datetime | None) -> timestamp_pb2.Timestamp | None:
    if value is None:
        return None
    out = timestamp_pb2.Timestamp()
    out.FromDatetime(value)
    return out


def _struct(value: dict[str, Any]) -> struct_pb2.Struct:
    out = struct_pb2.Struct()
    out.update(value)
    return out


def _dict(value: struct_pb2.Struct) -> dict[str, Any]:
    return json_format.MessageToDict(value)


def _role(value: int) -> Role:
    if value == pb.MEMBER_ROLE_UNSPECIFIED:
        return "member"
    if value not in ROLE_FROM_PB:
        raise Invalid.field("role", "unknown member role")
    return ROLE_FROM_PB[value]


def attachment_pb(a: Attachment) -> pb.MediaAttachment:
    return pb.MediaAttachment(
        id=a.id,
        message_id=a.message_id,
        media_id=a.media_id,
        media_type=MEDIA_TYPE_TO_PB.get(a.media_type, pb.MEDIA_TYPE_UNSPECIFIED),
        metadata=_struct(a.metadata),
        created_at=_ts(a.created_at),
    )


def message_pb(m: Message, attachments: list[Attachment] | None = None) -> pb.Message:
    return pb.Message(
        id=m.id,
        conversation_id=m.conversation_id,
        seq=m.seq,
        sender_id=m.sender_id,
        sender_device_id=m.sender_device_id or "",
        client_random=m.client_random,
        message_type=MESSAGE_TYPE_TO_PB.get(m.message_type, pb.MESSAGE_TYPE_UNSPECIFIED),
        content=m.content,
        metadata=_struct(m.metadata),
        reply_to_id=m.reply_to_id or "",
        forwarded_from_id=m.forwarded_from_id or "",
        signature=m.signature or "",
        sender_public_key=m.sender_public_key or "",
        sent_at=_ts(m.sent_at),
        edited_at=_ts(m.edited_at),
        is_deleted=m.is_deleted,
        expires_at=_ts(m.expires_at),
        attachments=[attachment_pb(a) for a in attachments or []],
    )


def participant_pb(m: Member) -> pb.Participant:
    return pb.Participant(user_id=m.user_id, role=ROLE_TO_PB[m.role], joined_at=_ts(m.joined_at), is_active=m.is_active)


class MessagingServicer(messaging_pb2_grpc.MessagingServiceServicer):
    def __init__(self, services: Services):
        self.services = services

    async def _run(self, context: Context, use_case: Callable[..., T], *args: Any) -> T:
        """Run a blocking use case off the event loop (in a span named after it, under the call's
        span: the thread gets the call's context); a DomainError becomes its status."""
        try:
            with tracing.span(getattr(use_case, "__name__", "use_case")):
                return await asyncio.to_thread(use_case, self.services, *args)
        except DomainError as error:
            await abort(context, domain_status(error))
        except OperationalError as error:  # the store does not answer: try again later
            log.warning("store unavailable during %s: %s", getattr(use_case, "__name__", "a call"), error.orig)
            await abort(context, domain_status(Unavailable("the store is unavailable; try again shortly")))

    async def _checked(self, context: Context, check: Callable[[], T]) -> T:
        """A check of the request itself (no I/O): a DomainError becomes its status."""
        try:
            return check()
        except DomainError as error:
            await abort(context, domain_status(error))

    async def NotifyConversationEvent(
        self, request: pb.NotifyConversationEventRequest, context: Context
    ) -> pb.NotifyConversationEventResponse:
        kind = request.event_type
        if kind == pb.CONVERSATION_EVENT_TYPE_MEMBER_ADDED:
            role = await self._checked(context, lambda: _role(request.role))
            changed = await self._run(
                context,
                calls.add_members_for,
                request.conversation_id,
                request.actor_id,
                list(request.user_ids),
                role,
                request.event_id,
            )
        elif kind == pb.CONVERSATION_EVENT_TYPE_MEMBER_REMOVED:
            changed = await self._run(
                context,
                calls.remove_members_for,
                request.conversation_id,
                request.actor_id,
                list(request.user_ids),
                request.event_id,
            )
        elif kind == pb.CONVERSATION_EVENT_TYPE_SETTINGS_CHANGED:
            changed = await self._run(
                context,
                calls.change_settings_for,
                request.conversation_id,
                request.actor_id,
                _dict(request.settings),
                request.event_id,
            )
        else:
            await abort(context, domain_status(Invalid.field("event_type", "unknown conversation event type")))
        last = await self._run(context, calls.last_seq, request.conversation_id)
        return pb.NotifyConversationEventResponse(applied=bool(changed), last_seq=last)

    async def LinkMediaToMessage(
        self, request: pb.LinkMediaToMessageRequest, context: Context
    ) -> pb.LinkMediaToMessageResponse:
        linked = await self._run(
            context,
            calls.link_media_for,
            request.message_id,
            request.media_id,
            MEDIA_TYPE_FROM_PB.get(request.media_type, ""),
            _dict(request.metadata),
            request.conversation_id,
            request.user_id,
        )
        return pb.LinkMediaToMessageResponse(attachment=attachment_pb(linked.attachment), created=linked.created)

    async def GetConversationStats(
        self, request: pb.GetConversationStatsRequest, context: Context
    ) -> pb.GetConversationStatsResponse:
        stats = await self._run(context, calls.conversation_stats, request.conversation_id, request.user_id)
        return pb.GetConversationStatsResponse(
            conversation_id=stats.conversation.id,
            message_count=stats.message_count,
            unread_count=stats.unread_count,
            last_activity=_ts(stats.last_activity),
            last_seq=stats.conversation.last_seq,
            member_count=stats.member_count,
        )

    async def NotifyGroupCreation(
        self, request: pb.NotifyGroupCreationRequest, context: Context
    ) -> pb.NotifyGroupCreationResponse:
        roles = await self._checked(context, lambda: {m.user_id: _role(m.role) for m in request.members})
        created = await self._run(
            context,
            calls.create_group_for,
            request.group_id,
            request.name,
            request.creator_id,
            roles,
            _dict(request.metadata),
        )
        return pb.NotifyGroupCreationResponse(conversation_id=created.conversation_id, created=created.created)

    async def SendScheduledMessage(
        self, request: pb.SendScheduledMessageRequest, context: Context
    ) -> pb.SendScheduledMessageResponse:
        fired = await self._run(context, calls.fire_scheduled_for, request.scheduled_message_id)
        return pb.SendScheduledMessageResponse(message=message_pb(fired.message), already_sent=fired.already_sent)

    async def CleanupExpiredMessages(
        self, request: pb.CleanupExpiredMessagesRequest, context: Context
    ) -> pb.CleanupExpiredMessagesResponse:
        before = request.before.ToDatetime(tzinfo=timezone.utc) if request.HasField("before") else None
        count, more = await self._run(
            context, calls.expire_messages_for, before, request.limit, request.conversation_id
        )
        return pb.CleanupExpiredMessagesResponse(expired_count=count, has_more=more)

    async def GetConversationParticipants(
        self, request: pb.GetConversationParticipantsRequest, context: Context
    ) -> pb.GetConversationParticipantsResponse:
        conv, members = await self._run(context, calls.participants, request.conversation_id, request.include_inactive)
        kind = pb.CONVERSATION_TYPE_GROUP if conv.type == "group" else pb.CONVERSATION_TYPE_DIRECT
        return pb.GetConversationParticipantsResponse(
            conversation_id=conv.id, conversation_type=kind, participants=[participant_pb(m) for m in members]
        )

    async def GetMessage(self, request: pb.GetMessageRequest, context: Context) -> pb.GetMessageResponse:
        message, attachments = await self._run(context, calls.get_message_for, request.message_id, request.requester_id)
        return pb.GetMessageResponse(message=message_pb(message, attachments))

    async def SendSystemMessage(
        self, request: pb.SendSystemMessageRequest, context: Context
    ) -> pb.SendSystemMessageResponse:
        notice = await self._run(
            context,
            calls.send_system_notice,
            request.conversation_id,
            request.action,
            request.actor_id,
            _dict(request.details),
            request.client_random,
        )
        return pb.SendSystemMessageResponse(message=message_pb(notice.message), duplicate=notice.duplicate)
