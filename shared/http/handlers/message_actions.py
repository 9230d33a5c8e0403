"""REST handlers for what callers do with one message besides reading and editing it:
attachments, forward, mark unread (served by the `messages` function)."""

from __future__ import annotations

from shared.app import attachments, forwarding, unread
from shared.app.commands import AddAttachment, ForwardMessage
from shared.app.views import message_view
from shared.http.routing import Call, Reply


def list_attachments(call: Call) -> Reply:
    views = attachments.list_attachments(call.services, call.actor, call.path["message_id"])
    return Reply(views, meta={"count": len(views)})


def add_attachment(call: Call) -> Reply:
    body: AddAttachment = call.body
    linked = attachments.add_attachment(
        call.services, call.actor, call.path["message_id"], body.media_id, body.media_type, body.metadata
    )
    return Reply(linked.attachment, status=201 if linked.created else 200, meta={"duplicate": not linked.created})


def forward(call: Call) -> Reply:
    body: ForwardMessage = call.body
    sent = forwarding.forward_message(call.services, call.actor, call.path["message_id"], body.conversation_ids)
    return Reply([message_view(m, "sent") for m in sent], status=201, meta={"count": len(sent)})


def mark_unread(call: Call) -> Reply:
    return Reply(unread.mark_unread(call.services, call.actor, call.path["message_id"]))
