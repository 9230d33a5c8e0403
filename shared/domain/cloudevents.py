"""Domain events for sibling services, as CloudEvents 1.0 JSON (integration.md).

`RECORDED` is the one list of event names the service records in its outbox, each with the
CloudEvent type siblings hear it as, or None for what only members' sockets and /sync hear
(typing, drafts, reactions...). `Event` refuses a name missing here, so nothing can be recorded
that this mapping does not know; a test walks every name the code records.

Siblings get ids, types and who is concerned, never message content: E2E content is opaque to
the server anyway, and a notification preview is the client's business. `new_message` itself
is not published to siblings: once the push dispatcher knows who is not online it records
`message_recipients`, which is `whispr.messaging.message.created` with `recipient_ids`
(shared/app/notifications.py). One `message_recipients` row holds a whole planner pass
(`{"messages": [...]}`, one entry per message): it is published as one `message.created` per
entry, each with the id of the message's own `new_message` event (unique, and the same on every
republication, so siblings' dedupe by id holds) and its conversation as ordering key.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

SOURCE = "//whispr/messaging"
PREFIX = "whispr.messaging."

RECORDED: dict[str, str | None] = {
    # messages
    "new_message": None,  # siblings get message_recipients (message.created) once recipients are known
    "message_recipients": PREFIX + "message.created",
    "message_updated": PREFIX + "message.updated",
    "message_deleted": PREFIX + "message.deleted",  # only "delete for everyone"
    "message_expired": None,
    "conversation_read": PREFIX + "message.read",
    "delivery_status": None,
    "message_unread": None,
    "reaction_added": None,
    "reaction_removed": None,
    "message_pinned": None,
    "message_unpinned": None,
    "attachment_added": None,
    "sender_key_changed": None,
    # conversations and members
    "conversation_created": PREFIX + "conversation.created",
    "conversation_updated": PREFIX + "conversation.updated",
    "conversation_deleted": None,
    "conversation_settings_updated": None,
    "conversation_pinned": None,
    "conversation_archived": None,
    "draft_updated": None,
    "member_added": PREFIX + "member.added",
    "member_removed": PREFIX + "member.removed",
    "member_role_changed": None,
    # moderation
    "moderation.report_created": PREFIX + "moderation.report_created",
    "moderation.report_resolved": None,
    "moderation.sanction_applied": PREFIX + "moderation.sanction_applied",
    "moderation.sanction_revoked": None,
    # sibling integration: relays forget cached blocks (shared/app/sibling_events.py)
    "blocks_changed": None,
}
TYPES = sorted({kind for kind in RECORDED.values() if kind is not None})

_PRIVATE_MESSAGE_FIELDS = frozenset(("content", "signature", "sender_public_key", "metadata"))


def check_recorded(name: str) -> None:
    if name not in RECORDED:
        raise ValueError(
            f"event {name!r} is not in shared.domain.cloudevents.RECORDED: add it there, with its "
            "CloudEvent type or None"
        )


def without_content(message: dict[str, Any]) -> dict[str, Any]:
    """A message view fit for siblings: ids, type, sender, seq, times; mention ids if the
    client gave them (`metadata.mentions`); no content, signature or metadata."""
    out = {k: v for k, v in message.items() if k not in _PRIVATE_MESSAGE_FIELDS}
    mentions = (message.get("metadata") or {}).get("mentions")
    if isinstance(mentions, list):
        out["mention_ids"] = [m for m in mentions if isinstance(m, str)]
    return out


def planned_message(
    event_id: str, conversation_id: str, message: dict[str, Any], recipient_ids: list[str], encrypted: bool
) -> dict[str, Any]:
    """One entry of a `message_recipients` pass: the message's `new_message` event id (the id of
    its `message.created`), its conversation, the message without content, who is not online."""
    return {
        "event_id": event_id,
        "conversation_id": conversation_id,
        "message": without_content(message),
        "recipient_ids": recipient_ids,
        "encrypted": encrypted,
    }


def _data(name: str, payload: dict[str, Any]) -> dict[str, Any]:
    data = dict(payload)
    if isinstance(data.get("message"), dict):
        data["message"] = without_content(data["message"])
    report = data.get("report")
    if isinstance(report, dict) and isinstance(report.get("evidence"), dict):
        data["report"] = {**report, "evidence": without_content(report["evidence"])}
    return data


def to_cloudevent(
    event_id: str, name: str, payload: dict[str, Any], conversation_id: str | None, time: datetime
) -> dict[str, Any] | None:
    """The CloudEvent for a recorded event, or None if siblings do not hear of it (a planner
    pass's `message_recipients` is several: `to_cloudevents`)."""
    kind = RECORDED.get(name)
    if kind is None:
        return None
    if name == "message_deleted" and not payload.get("delete_for_everyone"):
        return None  # "delete for me" is nobody else's business
    return _cloud_event(event_id, kind, _data(name, payload), conversation_id, time)


def to_cloudevents(
    event_id: str, name: str, payload: dict[str, Any], conversation_id: str | None, time: datetime
) -> list[tuple[str | None, dict[str, Any]]]:
    """The CloudEvents siblings hear of a recorded event, each with the conversation it concerns
    (its ordering key): none, one, or for a planner pass's `message_recipients` one
    `message.created` per message it planned. A `message_recipients` of one message (its
    payload `{"message": ...}`, as recorded before passes were one row) is one."""
    entries = payload.get("messages") if name == "message_recipients" else None
    if isinstance(entries, list):
        kind = PREFIX + "message.created"
        return [
            (
                entry["conversation_id"],
                _cloud_event(
                    entry["event_id"],
                    kind,
                    _data(name, {k: entry[k] for k in ("message", "recipient_ids", "encrypted")}),
                    entry["conversation_id"],
                    time,
                ),
            )
            for entry in entries
        ]
    single = to_cloudevent(event_id, name, payload, conversation_id, time)
    return [] if single is None else [(conversation_id, single)]


def _cloud_event(
    event_id: str, kind: str, data: dict[str, Any], conversation_id: str | None, time: datetime
) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": event_id,
        "source": SOURCE,
        "type": kind,
        "subject": f"conversations/{conversation_id}" if conversation_id else None,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "datacontenttype": "application/json",
        "data": data,
    }
