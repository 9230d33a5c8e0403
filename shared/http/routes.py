"""The route table: the one source of truth for which function serves which path, the local
gateway, the OpenAPI document and the API Gateway config. Paths are relative to the base path
(`/messaging/api/v1`, also served under `/api/v1`). Literal paths come before parametrised
ones where both could match (`/conversations/archived` before `/conversations/{id}`)."""

from __future__ import annotations

from shared.app.commands import (
    AddAttachment,
    AddMembers,
    AddReaction,
    ChangeRole,
    CreateConversation,
    EditMessage,
    ForwardMessage,
    MarkRead,
    SaveDraft,
    ScheduleMessage,
    SendMessage,
    UpdateConversation,
    UpdateScheduled,
    UpdateSettings,
)
from shared.http.handlers import conversations as conv
from shared.http.handlers import docs as api_docs
from shared.http.handlers import drafts, events, health, pins, sync, tasks
from shared.http.handlers import members as mem
from shared.http.handlers import message_actions as act
from shared.http.handlers import messages as msg
from shared.http.handlers import reactions as rx
from shared.http.handlers import reports as rep
from shared.http.handlers import sanctions as sanc
from shared.http.handlers import scheduled as sch
from shared.http.handlers import search as srch
from shared.http.params import INT64_MAX
from shared.http.routing import QueryParam, Route

C = "/conversations/{conversation_id}"
M = "/messages/{message_id}"

# Query parameters: a route accepts the ones it lists and no other (400 unknown_parameter), and
# the OpenAPI document lists the same. Clients send a few the path already says: message routes
# take `conversation_id`, reaction routes `user_id` (api.md), accepted and ignored.
OFFSET = QueryParam("offset", type="integer", minimum=0, maximum=INT64_MAX, default=0, description="how many to skip")
ABOUT_MESSAGE = QueryParam(
    "conversation_id", format="uuid", description="ignored: the message's own conversation is used (older clients)"
)
ABOUT_REACTION = (ABOUT_MESSAGE, QueryParam("user_id", format="uuid", description="ignored: the token's user is used"))


def limit(description: str, default: int | None = None) -> QueryParam:
    return QueryParam("limit", type="integer", minimum=1, maximum=INT64_MAX, default=default, description=description)


ROUTES: list[Route] = [
    # health
    Route("GET", "/health", "health", health.live, "Liveness", authenticated=False),
    Route("GET", "/health/live", "health", health.live, "Liveness", authenticated=False),
    Route("GET", "/live", "health", health.live, "Liveness", authenticated=False),
    Route(
        "GET",
        "/health/ready",
        "health",
        health.ready,
        "Readiness: the store and the bus answer (503 names the failed check)",
        authenticated=False,
    ),
    Route(
        "GET",
        "/ready",
        "health",
        health.ready,
        "Readiness: the store and the bus answer (503 names the failed check)",
        authenticated=False,
    ),
    # conversations
    Route(
        "GET",
        "/conversations",
        "conversations",
        conv.list_conversations,
        "The caller's conversations, most recent activity first",
        query=(
            limit("page size; without it, every conversation (no paging)"),
            QueryParam("cursor", description="`meta.next_cursor` of the previous page (with `limit`)"),
            QueryParam(
                "offset", type="integer", minimum=0, maximum=INT64_MAX, description="how many to skip (without cursor)"
            ),
            QueryParam("include_archived", type="boolean", default=False, description="include archived conversations"),
            QueryParam("type", description="only `direct` or only `group` conversations"),
        ),
    ),
    Route(
        "POST",
        "/conversations",
        "conversations",
        conv.create_conversation,
        "Create a direct or group conversation",
        body=CreateConversation,
        body_key="conversation",
        status=201,
    ),
    Route(
        "GET",
        "/conversations/archived",
        "conversations",
        conv.list_archived,
        "The caller's archived conversations",
        query=(limit("page size", 50), OFFSET),
    ),
    # search (literal: before /conversations/{conversation_id})
    Route(
        "GET",
        "/conversations/search",
        "search",
        srch.search_conversations,
        "The caller's conversations matching q: groups by name, direct conversations by the other member's id "
        "(case-insensitive substring; the caller's custom name matches too); 500 searches/hour",
        query=(
            QueryParam("q", description="what to look for; blank: no results"),
            QueryParam("query", description="another name of q"),
            limit("at most this many; without it, every match"),
        ),
    ),
    Route("GET", C, "conversations", conv.get_conversation, "Conversation detail"),
    Route(
        "PUT",
        C,
        "conversations",
        conv.update_conversation,
        "Rename or change metadata",
        body=UpdateConversation,
        body_key="conversation",
    ),
    Route("DELETE", C, "conversations", conv.delete_conversation, "Delete a conversation", status=204),
    Route("GET", C + "/settings", "conversations", conv.get_settings, "The caller's settings"),
    Route(
        "PUT",
        C + "/settings",
        "conversations",
        conv.update_settings,
        "Change the caller's settings",
        body=UpdateSettings,
        body_key="settings",
    ),
    Route("POST", C + "/pin", "conversations", conv.pin, "Pin for the caller"),
    Route("DELETE", C + "/pin", "conversations", conv.unpin, "Unpin for the caller"),
    Route("POST", C + "/archive", "conversations", conv.archive, "Archive for the caller"),
    Route("DELETE", C + "/archive", "conversations", conv.unarchive, "Unarchive for the caller"),
    # members
    Route("POST", C + "/leave", "members", mem.leave, "Leave the conversation", status=204),
    Route("GET", C + "/members", "members", mem.list_members, "Active members"),
    Route(
        "POST",
        C + "/members",
        "members",
        mem.add_members,
        "Add members",
        body=AddMembers,
        body_key="member",
        status=201,
    ),
    Route("DELETE", C + "/members/{user_id}", "members", mem.remove_member, "Remove a member", status=204),
    Route(
        "PATCH",
        C + "/members/{user_id}/role",
        "members",
        mem.change_role,
        "Change a member's role",
        body=ChangeRole,
        body_key="member",
    ),
    # sanctions
    Route(
        "GET",
        C + "/sanctions",
        "sanctions",
        sanc.list_sanctions,
        "Sanctions in force (moderators see all, members their own)",
        query=(
            QueryParam("include_inactive", type="boolean", default=False, description="also expired and lifted ones"),
        ),
    ),
    Route(
        "POST",
        C + "/sanctions",
        "sanctions",
        sanc.create_sanction,
        "Mute, restrict (shadow_restrict) or kick a member, for a time or until lifted (conversation "
        "owners/admins/moderators on members below them, or global moderators); enforced on send (403 "
        "sanctioned) and on being added back",
        body=sanc.CreateSanction,
        body_key="sanction",
        status=201,
    ),
    Route(
        "DELETE",
        C + "/sanctions/{sanction_id}",
        "sanctions",
        sanc.revoke_sanction,
        "Lift a sanction (idempotent): the sanction, with revoked_at",
    ),
    # messages
    Route(
        "GET",
        C + "/messages",
        "messages",
        msg.history,
        "History, newest first, seq cursors",
        query=(
            limit("page size; values over 100 count as 100", 50),
            QueryParam(
                "before_seq",
                type="integer",
                minimum=0,
                maximum=INT64_MAX,
                description="only messages with a smaller seq (older)",
            ),
            QueryParam(
                "after_seq", type="integer", minimum=0, maximum=INT64_MAX, description="only messages with a larger seq"
            ),
            QueryParam("before", format="date-time", description="only messages sent before this time (older clients)"),
            QueryParam("after", format="date-time", description="only messages sent after this time (older clients)"),
        ),
    ),
    Route(
        "POST",
        C + "/messages",
        "messages",
        msg.send_message,
        "Send a message (idempotent on client_random)",
        body=SendMessage,
        body_key="message",
        status=201,
        on_loop=msg.send_message_on_loop,
    ),
    Route(
        "POST",
        C + "/read",
        "messages",
        msg.mark_read,
        "Move the caller's read watermark",
        body=MarkRead,
        body_key="read",
    ),
    # scheduled messages: these literal paths must come before /messages/{message_id}
    Route(
        "POST",
        "/messages/scheduled",
        "scheduled",
        sch.schedule,
        "Schedule a message 1 minute to 1 year ahead (50 pending per user, 10 per hour; idempotent on client_random)",
        body=ScheduleMessage,
        body_key="scheduled_message",
        status=201,
        response=sch.CREATE_DOC,
    ),
    Route(
        "GET",
        "/messages/scheduled",
        "scheduled",
        sch.list_scheduled,
        "The caller's scheduled messages, soonest first, as a bare JSON array (not the {data, meta} envelope)",
        query=sch.LIST_QUERY,
        response=sch.LIST_DOC,
    ),
    Route(
        "PATCH",
        "/messages/scheduled/{scheduled_id}",
        "scheduled",
        sch.update_scheduled,
        "Edit a pending scheduled message (content, message_type, metadata, scheduled_at); 409 once it is not pending",
        body=UpdateScheduled,
        body_key="scheduled_message",
        response=sch.ONE_DOC,
    ),
    Route(
        "DELETE",
        "/messages/scheduled/{scheduled_id}",
        "scheduled",
        sch.cancel_scheduled,
        "Cancel a pending scheduled message: 200 with status cancelled; 409 once it is not pending",
        response=sch.ONE_DOC,
    ),
    # search (literal: before /messages/{message_id})
    Route(
        "GET",
        "/messages/search",
        "search",
        srch.search_messages,
        "Messages of the caller's conversations, newest first: plaintext ones by full text (every word, as a "
        "prefix); E2E ones only by the client's blind tokens (metadata.search_tokens, matched exactly), never by "
        "content; 500 searches/hour",
        query=(
            QueryParam("query", description="the words, or blind tokens separated by spaces; blank: no results"),
            QueryParam("q", description="another name of query"),
            QueryParam("conversation_id", description="only this conversation", format="uuid"),
            QueryParam(
                "limit",
                type="integer",
                minimum=1,
                maximum=100,
                default=20,
                description="page size (larger values are capped at 100)",
            ),
            QueryParam("cursor", description="meta.next_cursor of the previous page"),
            QueryParam(
                "offset",
                type="integer",
                minimum=0,
                maximum=INT64_MAX,
                default=0,
                description="how many matches to skip (after cursor, if given)",
            ),
        ),
    ),
    Route("GET", M, "messages", msg.get_message, "One message", query=(ABOUT_MESSAGE,)),
    Route(
        "PUT",
        M,
        "messages",
        msg.edit_message,
        "Edit within the window",
        body=EditMessage,
        body_key="message",
        query=(ABOUT_MESSAGE,),
    ),
    Route(
        "DELETE",
        M,
        "messages",
        msg.delete_message,
        "Delete for me, or for everyone",
        query=(
            QueryParam(
                "delete_for_everyone",
                type="boolean",
                default=False,
                description="true: for every member (the sender, or admins in groups, within the window); "
                "false: for the caller only",
            ),
            ABOUT_MESSAGE,
        ),
    ),
    Route(
        "GET",
        M + "/status",
        "messages",
        msg.message_status,
        "Per-member delivered/read, for the sender",
        query=(ABOUT_MESSAGE,),
    ),
    # message actions (served by `messages`): attachments, forward, mark unread
    Route(
        "GET",
        M + "/attachments",
        "messages",
        act.list_attachments,
        "Media linked to the message",
        query=(ABOUT_MESSAGE,),
    ),
    Route(
        "POST",
        M + "/attachments",
        "messages",
        act.add_attachment,
        "Link a media-service object (sender only; idempotent per media_id: 201 new, 200 existing)",
        body=AddAttachment,
        body_key="attachment",
        status=201,
        query=(ABOUT_MESSAGE,),
    ),
    Route(
        "POST",
        M + "/forward",
        "messages",
        act.forward,
        "Forward to conversations the caller is in: the new messages (not deleted/ephemeral/E2E messages)",
        body=ForwardMessage,
        body_key="forward",
        status=201,
        query=(ABOUT_MESSAGE,),
    ),
    Route(
        "POST",
        M + "/unread",
        "messages",
        act.mark_unread,
        "Mark unread from this message: the read watermark goes back to its seq - 1 (no body needed)",
        query=(ABOUT_MESSAGE,),
    ),
    # reactions
    Route(
        "GET",
        M + "/reactions",
        "reactions",
        rx.list_reactions,
        "Individual reactions in data, per-emoji counts in meta.counts",
        query=ABOUT_REACTION,
    ),
    Route(
        "POST",
        M + "/reactions",
        "reactions",
        rx.add_reaction,
        "Add one emoji (idempotent: 201 new, 200 existing; 5 emojis per user, 50 per message)",
        body=AddReaction,
        body_key="reaction",
        status=201,
        query=ABOUT_REACTION,
    ),
    Route(
        "DELETE",
        M + "/reactions/{emoji}",
        "reactions",
        rx.remove_reaction,
        "Remove the caller's emoji (URL-encoded); 204 whether or not it was there",
        status=204,
        query=ABOUT_REACTION,
    ),
    # message pins
    Route(
        "GET",
        C + "/pins",
        "pins",
        pins.list_pins,
        "Pinned messages, newest pin first, each with its message",
        query=(limit("at most this many; without it, every pin"), OFFSET),
    ),
    Route(
        "POST",
        M + "/pin",
        "pins",
        pins.pin_message,
        "Pin in its conversation (max 10; members pin their own messages; idempotent)",
        query=(ABOUT_MESSAGE,),
    ),
    Route(
        "DELETE",
        M + "/pin",
        "pins",
        pins.unpin_message,
        "Unpin (idempotent): 200 with is_pinned false",
        query=(ABOUT_MESSAGE,),
    ),
    # drafts
    Route("GET", C + "/draft", "drafts", drafts.get_draft, "The caller's draft; 200 with data null when there is none"),
    Route(
        "PUT",
        C + "/draft",
        "drafts",
        drafts.save_draft,
        "Save the caller's draft (content at most 64 KiB); an empty one deletes it and answers data null",
        body=SaveDraft,
        body_key="draft",
    ),
    Route("DELETE", C + "/draft", "drafts", drafts.delete_draft, "Delete the caller's draft (idempotent)", status=204),
    # reports (literal /reports/queue and /reports/stats before /reports/{report_id})
    Route(
        "POST",
        "/reports",
        "reports",
        rep.create_report,
        "Report a message (one the caller can see) or a user; one report per message per 24 h (409 "
        "already_reported), 20 reports per day (429)",
        body=rep.CreateReport,
        body_key="report",
        status=201,
    ),
    Route(
        "GET", "/reports", "reports", rep.list_reports, "The caller's own reports, newest first", query=rep.PAGE_QUERY
    ),
    Route(
        "GET",
        "/reports/queue",
        "reports",
        rep.queue,
        "Moderators: the reports of a status (pending by default), oldest first",
        query=(
            *rep.PAGE_QUERY,
            QueryParam(
                "status",
                default="pending",
                description="pending, under_review, resolved_action or resolved_dismissed (resolved: both of these)",
            ),
            QueryParam("category", description="only this category"),
        ),
    ),
    Route(
        "GET",
        "/reports/stats",
        "reports",
        rep.stats,
        "Moderators: open and resolved-today counts, and report counts per status, category and resolution",
    ),
    Route(
        "GET",
        "/reports/{report_id}",
        "reports",
        rep.get_report,
        "One report: the reporter's own, or any for moderators",
    ),
    Route(
        "PUT",
        "/reports/{report_id}/resolve",
        "reports",
        rep.resolve,
        "Moderators: resolve an open report (action: dismiss, or none, delete_message, mute, "
        "shadow_restrict, kick, warn, ban); 409 if already resolved",
        body=rep.ResolveReport,
        body_key="report",
    ),
    # multi-device sync
    Route(
        "GET",
        "/sync",
        "sync",
        sync.sync,
        "Changes for the caller since a cursor, in order; without since: the current cursor only",
        query=(
            QueryParam("since", description="the cursor of the last sync; without it, only the current cursor"),
            limit("at most this many changes; values over 1000 count as 1000", 500),
        ),
    ),
    # task targets (Cloud Tasks / Cloud Scheduler; not for clients): no user token, the shared
    # secret WHISPR_TASKS_SECRET is checked by the handlers
    Route(
        "POST",
        "/tasks/scheduled/{scheduled_id}",
        "tasks",
        tasks.fire_scheduled,
        "Task target: send this scheduled message if due (idempotent)",
        authenticated=False,
        response=tasks.FIRE_DOC,
    ),
    Route(
        "POST",
        "/tasks/expire",
        "tasks",
        tasks.expire,
        "Task target: expire the ephemeral messages whose time has come (idempotent)",
        authenticated=False,
        response=tasks.EXPIRE_DOC,
    ),
    Route(
        "POST",
        "/tasks/sweep",
        "tasks",
        tasks.sweep,
        "Task target (periodic sweep): republish the outbox, send every due scheduled message, expire "
        "due messages, enqueue what came within the scheduler's horizon",
        authenticated=False,
        response=tasks.SWEEP_DOC,
    ),
    # sibling services' events, pushed by Pub/Sub (not for clients; the internal secret, as above)
    Route(
        "POST",
        "/events",
        "events",
        events.receive,
        "Pub/Sub push target: one sibling event (user.blocked, user.unblocked, user.deleted, group.updated; "
        "docs/events.md), applied once per event id; 400 malformed_event is dead-lettered after retries",
        body=events.InboundBody,
        authenticated=False,
        query=(
            QueryParam("token", description="the internal secret (WHISPR_TASKS_SECRET), as a push endpoint carries it"),
        ),
        response=events.OUTCOME_DOC,
    ),
    # the API's documentation, beside the versioned base: /messaging/api/openapi.json, /api/openapi.json
    Route(
        "GET",
        "/api/openapi.json",
        "docs",
        api_docs.openapi_json,
        "This API's OpenAPI 3.1 document",
        authenticated=False,
    ),
    Route(
        "GET",
        "/api/asyncapi.json",
        "docs",
        api_docs.asyncapi_json,
        "The socket contract: the relay's AsyncAPI 3 document",
        authenticated=False,
    ),
    Route("GET", "/api/docs", "docs", api_docs.docs_page, "The API reference (works offline)", authenticated=False),
    Route(
        "GET",
        "/api/docs/{asset}",
        "docs",
        api_docs.docs_asset,
        "A file of the API reference page (its script, styles, Swagger UI)",
        authenticated=False,
    ),
    Route(
        "GET",
        "/api/realtime",
        "docs",
        api_docs.realtime_page,
        "The socket contract as a page",
        authenticated=False,
    ),
]


def functions() -> list[str]:
    """The deployable functions, in table order."""
    return list(dict.fromkeys(route.function for route in ROUTES))


def routes_of(function: str) -> list[Route]:
    return [route for route in ROUTES if route.function == function]
