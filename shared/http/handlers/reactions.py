"""REST handlers for /messages/:id/reactions."""

from __future__ import annotations

from urllib.parse import unquote

from shared.app import reactions as uc
from shared.app.commands import AddReaction
from shared.http.routing import Call, Reply


def list_reactions(call: Call) -> Reply:
    listed = uc.list_reactions(call.services, call.actor, call.path["message_id"])
    return Reply(listed.reactions, meta={"count": len(listed.reactions), "counts": listed.counts})


def add_reaction(call: Call) -> Reply:
    body: AddReaction = call.body
    added = uc.add_reaction(call.services, call.actor, call.path["message_id"], body.reaction)
    return Reply(added.reaction, status=201 if added.created else 200, meta={"duplicate": not added.created})


def remove_reaction(call: Call) -> Reply:
    # The path reaches us percent-decoded, except `#` and `?` which Starlette re-encodes
    # (keycap #️⃣); emojis never contain `%`, so decoding once more is safe.
    uc.remove_reaction(call.services, call.actor, call.path["message_id"], unquote(call.path["emoji"]))
    return Reply.empty()
