"""REST handlers for scheduled messages: schedule, list (a bare array), edit, cancel."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from shared.app import scheduled as uc
from shared.app.commands import ScheduleMessage, UpdateScheduled
from shared.domain.ids import parse_uuid
from shared.http.responses import DuplicateMeta, Json, ResponseDoc, Timestamp, Uuid, View
from shared.http.routing import Call, QueryParam, Reply


class ScheduledMessageDoc(View):
    """A scheduled message. `message_id` is the sent message's id once `status` is `sent`."""

    id: Uuid
    conversation_id: Uuid
    content: str
    message_type: Literal["text", "media"]
    metadata: Json
    client_random: int = Field(description="the send's idempotency key (made up by the server if not given)")
    scheduled_at: Timestamp
    status: Literal["pending", "sent", "failed", "cancelled"]
    message_id: Uuid | None
    failure_reason: str | None = Field(
        description="why it was not sent: e.g. not_a_member (cancelled), or cancelled_by_sender"
    )
    created_at: Timestamp
    updated_at: Timestamp


LIST_DOC = ResponseDoc(
    ScheduledMessageDoc,
    many=True,
    bare=True,
    description="A bare JSON array (no {data, meta} envelope: the Whispr client sorts the body directly) "
    "of the caller's scheduled messages, soonest first",
)
CREATE_DOC = ResponseDoc(
    ScheduledMessageDoc,
    meta=DuplicateMeta,
    statuses=(200,),
    description="201: scheduled; 200: the scheduled message an earlier request with this `client_random` made",
)
ONE_DOC = ResponseDoc(ScheduledMessageDoc)
LIST_QUERY = (
    QueryParam("conversation_id", description="only this conversation's", format="uuid"),
    QueryParam("status", description="pending (default), sent, failed, cancelled, or all", default="pending"),
)


def schedule(call: Call) -> Reply:
    body: ScheduleMessage = call.body
    new = uc.NewScheduled(
        conversation_id=body.conversation_id,
        content=body.content,
        scheduled_at=body.scheduled_at,
        message_type=body.message_type,
        client_random=body.client_random,
        metadata=body.metadata,
    )
    view, created = uc.create_scheduled(call.services, call.actor, new)
    return Reply(view, status=201 if created else 200, meta={"duplicate": not created})


def list_scheduled(call: Call) -> Reply:
    raw = call.query.get("conversation_id")
    conversation_id = parse_uuid(raw, "conversation_id") if raw else None
    status = call.query.get("status") or "pending"
    items = uc.list_scheduled(call.services, call.actor, conversation_id=conversation_id, status=status)
    return Reply(items, bare=True)


def update_scheduled(call: Call) -> Reply:
    body: UpdateScheduled = call.body
    changes = uc.ScheduledChanges(
        content=body.content, message_type=body.message_type, scheduled_at=body.scheduled_at, metadata=body.metadata
    )
    return Reply(uc.update_scheduled(call.services, call.actor, call.path["scheduled_id"], changes))


def cancel_scheduled(call: Call) -> Reply:
    return Reply(uc.cancel_scheduled(call.services, call.actor, call.path["scheduled_id"]))
