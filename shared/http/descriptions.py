"""What each operation does, for the OpenAPI document, by handler (`<module>.<function>` under
`shared.http.handlers`). The route's `summary` is the one-line title; this is the paragraph a
client developer reads: behaviour, idempotency, what other clients hear on the socket.
A route whose handler is missing here fails `tests/api/test_openapi.py`."""

from __future__ import annotations

DESCRIPTIONS: dict[str, str] = {
    # health
    "health.live": "Answers 200 while the process runs, with the version and the server's time. No token.",
    "health.ready": "Checks that the store answers a query and that the event bus answers; 503 `not_ready` "
    "lists the failed checks in `details.failed`. Load balancers and Cloud Run probes use it. No token.",
    # conversations
    "conversations.list_conversations": "The caller's conversations, most recent activity first, each with "
    "its last message, unread count and the caller's own pin/mute/archive state. Without `limit` every "
    "conversation comes back (the Whispr client never pages); with `limit`, follow `meta.next_cursor`. "
    "Archived conversations are left out unless `include_archived=true`.",
    "conversations.create_conversation": 'Direct: `{type: "direct", other_user_id}` (or `user_ids: [me, other]`) '
    "answers 201 with a new conversation, or 200 with the one the pair already has. Group: "
    '`{type: "group", name, user_ids, metadata?}`; the creator becomes `owner`, and `metadata.name` follows '
    "`name`. Members hear `conversation_created` on their `user:` topic.",
    "conversations.list_archived": "The caller's archived conversations, by `limit`/`offset`; `meta.has_more` "
    "says whether another page exists.",
    "search.search_conversations": "Case-insensitive substring search over the caller's conversations: "
    "groups by name (and the caller's custom name), direct conversations by the other member's id.",
    "conversations.get_conversation": "The conversation with its active members (`members`, `member_count`). "
    "404 when it does not exist or the caller is not a member.",
    "conversations.update_conversation": "Rename (`name`) or change `metadata` (merged into the existing "
    "metadata; `metadata.e2ee.enabled` toggles end-to-end encryption). Answers the whole conversation; "
    "members hear `conversation_updated`.",
    "conversations.delete_conversation": "Deletes the conversation for everyone (groups: owners and admins "
    "only). Members hear `conversation_deleted`.",
    "conversations.get_settings": "The caller's own settings for this conversation: notifications, mute, "
    "read receipts, typing indicators, a custom name, pin and archive state.",
    "conversations.update_settings": "Changes only the fields given; `null` for a switch changes nothing, "
    "`null` for `custom_name` or `muted_until` clears it. The caller's other devices hear "
    "`conversation_settings_updated`.",
    "conversations.pin": "Pins the conversation for the caller (at most 5). Idempotent: repeating answers 200 "
    "with the current state. Other devices hear `conversation_pinned`.",
    "conversations.unpin": "Unpins for the caller. Idempotent. Other devices hear `conversation_pinned` "
    "with `pinned: false`.",
    "conversations.archive": "Archives for the caller (and unpins). No body needed. Idempotent. Other devices "
    "hear `conversation_archived`.",
    "conversations.unarchive": "Brings the conversation back to the main list. Idempotent.",
    # members
    "members.leave": "The caller leaves. The last owner of a group hands ownership on first. Members hear "
    "`member_removed`.",
    "members.list_members": "The active members with their roles and join times.",
    "members.add_members": "Adds `user_id` or `user_ids` to a group (owners, admins and moderators). Answers "
    "every active member now. The new members hear `member_added` and the conversation appears in their list.",
    "members.remove_member": "Removes a member (by role: owners remove anyone, admins members and moderators "
    "below them). The removed user hears `member_removed` on their `user:` topic.",
    "members.change_role": "Sets `role` to owner, admin, moderator or member, following the role rules "
    "(nobody raises anyone above their own role). Members hear `member_role_changed`.",
    # sanctions
    "sanctions.list_sanctions": "Sanctions in force in the conversation; moderators see every member's, a "
    "member sees their own. `include_inactive=true` adds expired and lifted ones.",
    "sanctions.create_sanction": "Mutes, restricts (shadow) or kicks a member for `duration_seconds` or until "
    "`expires_at`. A muted member's sends answer 403 `sanctioned`. The sanctioned user hears "
    "`moderation.sanction_applied`.",
    "sanctions.revoke_sanction": "Lifts a sanction now; idempotent (a lifted one answers as it is). The user "
    "hears `moderation.sanction_revoked`.",
    # messages
    "messages.history": "Messages newest first (deleted-for-me and expired ones left out). Page older with "
    "`before_seq=meta.next_before_seq` while `meta.has_more`; catch up newer with `after_seq`. Messages "
    "the caller sent carry `status` (sent, delivered, read).",
    "messages.send_message": "Stores the message with the next `seq` of the conversation and answers after "
    "commit (201). A retry with the same `client_random` (per sender and conversation, 24 h) answers 200 "
    "with the original and `meta.duplicate: true`: nothing is sent twice. Members hear `new_message`.",
    "messages.mark_read": "Moves the caller's read watermark to `up_to_seq` (or to `message_id`'s seq); it "
    "never moves back (see `POST /messages/{message_id}/unread`). Senders hear `delivery_status` "
    'with `status: "read"` unless the caller turned read receipts off.',
    "scheduled.schedule": "Schedules a message between 1 minute and 1 year ahead (at most 50 pending per user). "
    "It is sent at `scheduled_at` through the same path as any message, with `sender_id` the caller. "
    "Idempotent on `client_random`.",
    "scheduled.list_scheduled": "The caller's pending scheduled messages, soonest first, optionally for one "
    "`conversation_id`. **The body is a bare JSON array**, not `{data, meta}`: the Whispr client sorts the "
    "body directly.",
    "scheduled.update_scheduled": "Changes a pending scheduled message; 409 `not_pending` once it was sent, "
    "failed or was cancelled.",
    "scheduled.cancel_scheduled": "Cancels a pending scheduled message and answers it with status "
    "`cancelled`; 409 once it is no longer pending.",
    "search.search_messages": "Full-text search over the caller's plaintext conversations. End-to-end "
    "encrypted conversations are searched by blind tokens the client computed (`metadata.search_tokens`): "
    "the server never sees words. Cursor in `meta.next_cursor`.",
    "messages.get_message": "One message the caller can see (with `status` when the caller sent it).",
    "messages.edit_message": "Replaces `content` (and `signature`) of the caller's own message within the edit "
    "window. Members hear `message_updated` with the whole message.",
    "messages.delete_message": "`delete_for_everyone=true`: the sender (or admins in groups) within the window "
    "empties the message for everyone; otherwise it is hidden for the caller only. Members, or the caller's "
    "other devices, hear `message_deleted`.",
    "messages.message_status": "For the sender: each other member's delivered/read state of this message.",
    "message_actions.list_attachments": "The media-service objects linked to the message.",
    "message_actions.add_attachment": "Links a media-service object to the caller's own message; idempotent per "
    "`media_id` (201 new, 200 existing). Members hear `attachment_added`.",
    "message_actions.forward": "Copies the message into `conversation_ids` (the caller must be a member of "
    "each) and answers the new messages, with `forwarded_from_id`. Deleted, ephemeral and end-to-end "
    "encrypted messages cannot be forwarded.",
    "message_actions.mark_unread": "Moves the caller's read watermark back to just before this message. "
    "The caller's other devices and the senders concerned hear `message_unread`. No body needed.",
    "reactions.list_reactions": "Every individual reaction in `data`; per-emoji counts in `meta.counts`. "
    "Not throttled: a history screen reads one per message.",
    "reactions.add_reaction": "Adds one emoji from the caller (201; 200 if they already had it). Members hear "
    "`reaction_added`.",
    "reactions.remove_reaction": "Removes the caller's emoji (URL-encode it in the path); 204 whether or not "
    "it was there. Members hear `reaction_removed` when it was.",
    "pins.list_pins": "The conversation's pinned messages, newest pin first, each with its message.",
    "pins.pin_message": "Pins a message in its conversation (at most 10); idempotent. Members hear `message_pinned`.",
    "pins.unpin_message": "Unpins; idempotent. Members hear `message_unpinned` when it was pinned.",
    "drafts.get_draft": "The caller's draft in this conversation, the same on every device; `data` is null "
    "when there is none.",
    "drafts.save_draft": "Saves the caller's draft; an empty `content` deletes it. The caller's other devices "
    "hear `draft_updated`.",
    "drafts.delete_draft": "Deletes the caller's draft (idempotent). Other devices hear `draft_updated` with "
    "`draft: null`.",
    # moderation
    "reports.create_report": "Reports a user, or a message the caller can see, with a `category` and an "
    "optional description. One report per message per reporter and 24 h (409 otherwise).",
    "reports.list_reports": "The reports the caller filed, newest first, by `limit`/`offset`.",
    "reports.queue": "Moderators: pending reports, oldest first, optionally by `status` (pending, under_review, "
    "resolved_action, resolved_dismissed, or resolved for both) and `category`.",
    "reports.stats": "Moderators: the Whispr client's dashboard (`pending`, `under_review`, `resolved_today` "
    "since 00:00 UTC, `by_category` of the open reports), then counts by status, category and resolution.",
    "reports.get_report": "One report: the reporter sees their own (the resolution's action and time, not who "
    "resolved it or their notes), moderators any.",
    "reports.resolve": "Moderators: resolves an open report with an `action`: `dismiss` (status "
    "resolved_dismissed), or what is done (status resolved_action): none, delete the message, mute, "
    "shadow_restrict or kick the reported user in the report's conversation (for `duration_seconds` or until "
    "lifted), or `warn`/`ban`, recorded only (user-service sets those sanctions). The reporter hears "
    "`moderation.report_resolved`.",
    # sync
    "sync.sync": "Everything that changed for the caller since `since`, across every conversation and in "
    "order: messages, edits, deletes, reactions, watermarks, membership, settings. Call with "
    "`since=meta.next_cursor` until `meta.has_more` is false; a device offline for a week catches up in "
    "few requests. Without `since`: no changes, only the current cursor.",
    # task targets
    "tasks.fire_scheduled": "Called by Cloud Tasks at the scheduled time, with the shared secret in "
    "`X-Whispr-Tasks-Secret`. Sends the scheduled message if it is due and pending; idempotent. Not for "
    "clients: 403 `tasks_not_configured` while `WHISPR_TASKS_SECRET` is unset.",
    "tasks.expire": "Called by Cloud Tasks: expires the ephemeral messages whose time has come (members hear "
    "`message_expired`). Idempotent. Needs `X-Whispr-Tasks-Secret`.",
    "tasks.sweep": "Called by Cloud Scheduler every minute: republishes events a crash left in the outbox, "
    "sends due scheduled messages, expires due messages, and hands the scheduler what came within its "
    "horizon. Idempotent. Needs `X-Whispr-Tasks-Secret`.",
    # sibling events
    "events.receive": "The push endpoint of the sibling services' Pub/Sub subscriptions (docs/events.md): one "
    "CloudEvent (user.blocked, user.unblocked, user.deleted, group.updated) in a Pub/Sub push envelope or as "
    "a CloudEvent over HTTP, applied once per (source, id). Answers the outcome (applied, duplicate, ignored "
    "for a type not handled here); 400 `malformed_event` for what cannot be read, which Pub/Sub "
    "dead-letters after its retries. Needs the internal secret (`?token=` on the push endpoint).",
    # docs
    "docs.openapi_json": "This document, generated from the route table. No token.",
    "docs.asyncapi_json": "The AsyncAPI 3.0 document of the WebSocket relay (topics, pushes and their replies, "
    "server events and their payloads), generated from the relay's event registry. No token.",
    "docs.docs_page": "This API reference: Swagger UI, shipped with the service (no CDN). Press Authorize to "
    "paste a token, then try any operation.",
    "docs.docs_asset": "A file the reference page loads (Swagger UI's script and styles, the page's own).",
    "docs.realtime_page": "The AsyncAPI document rendered for people: topics, events and their payload fields.",
}

# What a field means wherever it appears without a description of its own (the models' own
# `Field(description=...)` win). Obvious fields (ids, times named for what they are) are left out.
FIELDS: dict[str, str] = {
    "client_random": "the sender's idempotency key: a retry with the same value (same sender and conversation, "
    "24 h) answers the original message instead of sending a copy",
    "content": "the text, or the ciphertext in end-to-end encrypted conversations; stored and returned byte for byte",
    "message_type": "text, media or system (system messages are written by the service: member joined, ...)",
    "metadata": "free JSON for the clients (bounded in size and depth); the service reads only the keys it "
    "documents, e.g. `e2ee.enabled` on conversations and `search_tokens` on messages",
    "signature": "the sender device's signature of the content (E2E conversations), checked against "
    "`sender_public_key` or the device's current key",
    "sender_public_key": "the sending device's public key (base64): a changed key is announced as `sender_key_changed`",
    "sender_device_id": "the device that sent it (the token's `deviceId`)",
    "expires_in_seconds": "an ephemeral message: it expires (and disappears for everyone) this many seconds after "
    "being sent",
    "expires_at": "when the message or sanction expires; null: never",
    "reply_to_id": "the message this one answers (same conversation)",
    "forwarded_from_id": "the message this one is a copy of (`POST /messages/{message_id}/forward`)",
    "edited_at": "the last edit; null: never edited",
    "is_deleted": "deleted for everyone: `content` and `metadata` are emptied, the seq stays",
    "last_seq": "the seq of the conversation's latest message (0: none yet)",
    "unread_count": "messages from others after the caller's read watermark",
    "last_read_seq": "the caller's read watermark: every message up to this seq counts as read",
    "member_user_ids": "the active members' ids",
    "is_pinned": "pinned by the caller (conversations: at most 5) or in the conversation (messages: at most 10)",
    "is_muted": "the caller muted notifications (until `muted_until`, or for good)",
    "is_archived": "the caller archived it: left out of `GET /conversations` unless `include_archived=true`",
    "is_active": "false once deleted (conversations) or left/removed (members)",
    "muted_until": "notifications muted until then; null: not muted",
    "show_read_receipts": "false: the others get no read ticks from the caller (and the caller sees none)",
    "show_typing": "false: the caller's typing is not broadcast",
    "notifications_enabled": "push notifications for this conversation",
    "custom_name": "the caller's own name for the conversation; only they see it",
    "up_to_seq": "move the watermark up to this seq (it never moves back)",
    "other_user_id": "direct conversations: the other person",
    "user_ids": "the members to add (the caller may be among them)",
    "role": "owner, admin, moderator or member; nobody raises anyone above their own role",
    "media_id": "the media service's object id",
    "media_type": "image, video, audio or document",
    "conversation_ids": "where to forward: conversations the caller is an active member of",
    "scheduled_at": "when to send: RFC 3339, 1 minute to 1 year ahead (no offset: UTC)",
    "duration_seconds": "how long the sanction lasts (or give `expires_at`)",
    "kind": "mute (cannot send), restrict (cannot send, react, pin or attach) or kick (removed)",
    "category": "what the report is about",
    "resolution": "dismissed, or action_taken",
    "cursor": "where this change sits in the caller's change log: pass the last one as `since`",
    "has_more": "true exactly when another page exists in this direction",
    "count": "how many items `data` holds",
    "offset": "how many were skipped",
    "recipients": "each other member's state of this message",
    "evidence": "the reported message as it was when reported (moderators only)",
    "note": "the moderator's note; never shown to the reporter",
    "reason": "the reporter's or moderator's words",
}

# The same for request bodies, where a field's meaning depends on the body: (schema, field).
BODY_FIELDS: dict[tuple[str, str], str] = {
    ("AddMembers", "user_id"): "one member to add (or `user_ids`)",
    ("AddReaction", "reaction"): "one emoji",
    ("CreateConversation", "type"): "direct (two people, at most one per pair) or group",
    ("CreateConversation", "name"): "groups: the name (also kept in `metadata.name`, which the Whispr client shows)",
    ("UpdateConversation", "name"): "the new name (groups; `metadata.name` follows)",
    ("CreateReport", "message_id"): "the message reported (one the caller can see); absent for a user report",
    ("CreateReport", "reported_user_id"): "the user reported (a user report needs no message)",
    ("CreateReport", "description"): "the reporter's words, kept with the report",
    ("CreateReport", "conversation_id"): "where it happened",
    ("CreateSanction", "user_id"): "the member sanctioned",
    ("CreateSanction", "type"): "mute (cannot send), shadow_restrict (cannot send, react, pin or attach) or kick",
    ("MarkRead", "message_id"): "or: up to this message's seq",
    ("ResolveReport", "action"): "dismiss, or what is done: none, delete_message, or mute, shadow_restrict or kick "
    "the reported user",
    ("ResolveReport", "notes"): "the moderator's notes; never shown to the reporter",
    ("ScheduleMessage", "conversation_id"): "where it will be sent (the caller must be a member then too)",
}
