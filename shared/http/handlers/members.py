"""REST handlers for /conversations/:id/members and leave."""

from __future__ import annotations

from shared.app import members as uc
from shared.app.commands import AddMembers, ChangeRole
from shared.http.routing import Call, Reply


def list_members(call: Call) -> Reply:
    views = uc.list_members(call.services, call.actor, call.path["conversation_id"])
    return Reply(views, meta={"count": len(views)})


def add_members(call: Call) -> Reply:
    body: AddMembers = call.body
    user_ids = [*([body.user_id] if body.user_id else []), *body.user_ids]
    views = uc.add_members(call.services, call.actor, call.path["conversation_id"], user_ids)
    return Reply(views, status=201, meta={"count": len(views)})


def remove_member(call: Call) -> Reply:
    uc.remove_member(call.services, call.actor, call.path["conversation_id"], call.path["user_id"])
    return Reply.empty()


def change_role(call: Call) -> Reply:
    body: ChangeRole = call.body
    view = uc.change_role(call.services, call.actor, call.path["conversation_id"], call.path["user_id"], body.role)
    return Reply(view)


def leave(call: Call) -> Reply:
    uc.leave(call.services, call.actor, call.path["conversation_id"])
    return Reply.empty()
