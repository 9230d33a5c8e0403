"""The route table: the one source of truth for which function serves which path, the local
gateway, the OpenAPI document and the API Gateway config. Paths are relative to the base path
(`/messaging/api/v1`, also served under `/api/v1`). Literal paths come before parametrised
ones where both could match (`/conversations/archived` before `/conversations/{id}`)."""

from __future__ import annotations

from shared.http.handlers import conversations as conv
from shared.http.handlers import health
from shared.http.handlers import members as mem
from shared.http.handlers import messages as msg
from shared.http.routing import Route
from shared.http.schemas import (
    AddMembers,
    ChangeRole,
    CreateConversation,
    EditMessage,
    MarkRead,
    SendMessage,
    UpdateConversation,
    UpdateSettings,
)

C = "/conversations/{conversation_id}"
M = "/messages/{message_id}"

ROUTES: list[Route] = [
    # health
    Route("GET", "/health", "health", health.live, "Liveness", authenticated=False),
    Route("GET", "/health/live", "health", health.live, "Liveness", authenticated=False),
    Route("GET", "/live", "health", health.live, "Liveness", authenticated=False),
    Route("GET", "/health/ready", "health", health.ready, "Readiness: store reachable", authenticated=False),
    Route("GET", "/ready", "health", health.ready, "Readiness: store reachable", authenticated=False),
    # conversations
    Route("GET", "/conversations", "conversations", conv.list_conversations, "The caller's conversations"),
    Route("POST", "/conversations", "conversations", conv.create_conversation, "Create a direct or group conversation",
          body=CreateConversation, body_key="conversation", status=201),
    Route("GET", "/conversations/archived", "conversations", conv.list_archived, "The caller's archived conversations"),
    Route("GET", C, "conversations", conv.get_conversation, "Conversation detail"),
    Route("PUT", C, "conversations", conv.update_conversation, "Rename or change metadata",
          body=UpdateConversation, body_key="conversation"),
    Route("DELETE", C, "conversations", conv.delete_conversation, "Delete a conversation", status=204),
    Route("GET", C + "/settings", "conversations", conv.get_settings, "The caller's settings"),
    Route("PUT", C + "/settings", "conversations", conv.update_settings, "Change the caller's settings",
          body=UpdateSettings, body_key="settings"),
    Route("POST", C + "/pin", "conversations", conv.pin, "Pin for the caller"),
    Route("DELETE", C + "/pin", "conversations", conv.unpin, "Unpin for the caller"),
    Route("POST", C + "/archive", "conversations", conv.archive, "Archive for the caller"),
    Route("DELETE", C + "/archive", "conversations", conv.unarchive, "Unarchive for the caller"),
    # members
    Route("POST", C + "/leave", "members", mem.leave, "Leave the conversation", status=204),
    Route("GET", C + "/members", "members", mem.list_members, "Active members"),
    Route("POST", C + "/members", "members", mem.add_members, "Add members", body=AddMembers, body_key="member",
          status=201),
    Route("DELETE", C + "/members/{user_id}", "members", mem.remove_member, "Remove a member", status=204),
    Route("PATCH", C + "/members/{user_id}/role", "members", mem.change_role, "Change a member's role",
          body=ChangeRole, body_key="member"),
    # messages
    Route("GET", C + "/messages", "messages", msg.history, "History, newest first, seq cursors"),
    Route("POST", C + "/messages", "messages", msg.send_message, "Send a message (idempotent on client_random)",
          body=SendMessage, body_key="message", status=201),
    Route("POST", C + "/read", "messages", msg.mark_read, "Move the caller's read watermark",
          body=MarkRead, body_key="read"),
    Route("GET", M, "messages", msg.get_message, "One message"),
    Route("PUT", M, "messages", msg.edit_message, "Edit within the window", body=EditMessage, body_key="message"),
    Route("DELETE", M, "messages", msg.delete_message, "Delete for me, or for everyone"),
    Route("GET", M + "/status", "messages", msg.message_status, "Per-member delivered/read, for the sender"),
]


def functions() -> list[str]:
    """The deployable functions, in table order."""
    return list(dict.fromkeys(route.function for route in ROUTES))


def routes_of(function: str) -> list[Route]:
    return [route for route in ROUTES if route.function == function]
