"""REST handlers for /conversations/:id/draft."""

from __future__ import annotations

from shared.app import drafts as uc
from shared.app.commands import SaveDraft
from shared.http.routing import Call, Reply


def get_draft(call: Call) -> Reply:
    return Reply(uc.get_draft(call.services, call.actor, call.path["conversation_id"]))


def save_draft(call: Call) -> Reply:
    body: SaveDraft = call.body
    return Reply(uc.save_draft(call.services, call.actor, call.path["conversation_id"], body.content, body.metadata))


def delete_draft(call: Call) -> Reply:
    uc.delete_draft(call.services, call.actor, call.path["conversation_id"])
    return Reply.empty()
