"""REST handlers for messages: send, history, read one, edit, delete, read marks, status."""

from __future__ import annotations

from shared.app import messages as uc
from shared.app import receipts
from shared.app.commands import EditMessage, MarkRead, SendMessage
from shared.app.messages import Sent
from shared.app.views import message_view
from shared.domain.errors import Invalid
from shared.http.params import parse_bool, parse_int, parse_time
from shared.http.routing import Call, Reply


def send_message(call: Call) -> Reply:
    body: SendMessage = call.body
    return _sent_reply(call.sends.send_message(call.actor, call.path["conversation_id"], body.to_new_message()))


async def send_message_on_loop(call: Call) -> Reply:
    """`send_message` on the event loop: the group commit's batcher is awaited there, with no
    hop to a worker thread and back (a functions' send still runs in one, `DirectSends`)."""
    body: SendMessage = call.body
    return _sent_reply(
        await call.sends.send_message_async(call.actor, call.path["conversation_id"], body.to_new_message())
    )


def _sent_reply(sent: Sent) -> Reply:
    return Reply(
        message_view(sent.message, "sent"), status=201 if sent.created else 200, meta={"duplicate": not sent.created}
    )


def history(call: Call) -> Reply:
    limits = call.services.settings.limits
    q = call.query
    limit = parse_int(q.get("limit"), "limit", minimum=1) or limits.history_default_limit
    page = uc.history(
        call.services,
        call.actor,
        call.path["conversation_id"],
        limit=min(limit, limits.history_max_limit),
        before_seq=parse_int(q.get("before_seq"), "before_seq", minimum=0),
        after_seq=parse_int(q.get("after_seq"), "after_seq", minimum=0),
        before=parse_time(q.get("before"), "before"),
        after=parse_time(q.get("after"), "after"),
    )
    meta = {
        "count": len(page.messages),
        "has_more": page.has_more,
        "next_before_seq": page.next_before_seq,
        "next_after_seq": page.next_after_seq,
    }
    return Reply(page.messages, meta=meta)


def get_message(call: Call) -> Reply:
    return Reply(uc.get_message(call.services, call.actor, call.path["message_id"]))


def edit_message(call: Call) -> Reply:
    body: EditMessage = call.body
    return Reply(uc.edit_message(call.services, call.actor, call.path["message_id"], body.content, body.signature))


def delete_message(call: Call) -> Reply:
    everyone = parse_bool(call.query.get("delete_for_everyone"), "delete_for_everyone") or False
    return Reply(uc.delete_message(call.services, call.actor, call.path["message_id"], for_everyone=everyone))


def mark_read(call: Call) -> Reply:
    body: MarkRead = call.body
    if body.up_to_seq is not None and body.message_id is not None:
        raise Invalid.field("up_to_seq", "give up_to_seq or message_id, not both")
    view = receipts.move_watermark(
        call.services,
        call.actor,
        call.path["conversation_id"],
        "read",
        up_to_seq=body.up_to_seq,
        message_id=body.message_id,
    )
    return Reply(view)


def message_status(call: Call) -> Reply:
    return Reply(receipts.message_status(call.services, call.actor, call.path["message_id"]))
