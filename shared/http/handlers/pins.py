"""REST handlers for message pins: /messages/:id/pin and /conversations/:id/pins."""

from __future__ import annotations

from shared.app import pins as uc
from shared.http.routing import Call, Reply


def pin_message(call: Call) -> Reply:
    return Reply(uc.pin_message(call.services, call.actor, call.path["message_id"]))


def unpin_message(call: Call) -> Reply:
    return Reply(uc.unpin_message(call.services, call.actor, call.path["message_id"]))


def list_pins(call: Call) -> Reply:
    views = uc.list_pins(call.services, call.actor, call.path["conversation_id"])
    return Reply(views, meta={"count": len(views), "max": call.services.settings.limits.max_pinned_messages})
