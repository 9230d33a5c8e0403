"""Domain events for sibling services, as CloudEvents 1.0 JSON (integration.md).

Siblings get ids, types and who is concerned, never message content: E2E content is opaque to
the server anyway, and a notification preview is the client's business.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

SOURCE = "//whispr/messaging"
TYPES = {
    "new_message": "whispr.messaging.message.created",
    "message_updated": "whispr.messaging.message.updated",
    "message_deleted": "whispr.messaging.message.deleted",
    "conversation_read": "whispr.messaging.message.read",
    "conversation_created": "whispr.messaging.conversation.created",
    "conversation_updated": "whispr.messaging.conversation.updated",
    "member_added": "whispr.messaging.member.added",
    "member_removed": "whispr.messaging.member.removed",
    "report_created": "whispr.messaging.moderation.report_created",
    "sanction_applied": "whispr.messaging.moderation.sanction_applied",
}
_PRIVATE_MESSAGE_FIELDS = ("content", "signature", "sender_public_key", "metadata")


def _without_content(message: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in message.items() if k not in _PRIVATE_MESSAGE_FIELDS}
    mentions = (message.get("metadata") or {}).get("mentions")
    if isinstance(mentions, list):
        out["mention_ids"] = [m for m in mentions if isinstance(m, str)]
    return out


def to_cloudevent(
    event_id: str,
    name: str,
    payload: dict[str, Any],
    conversation_id: str | None,
    time: datetime,
    recipients: list[str] | None = None,
) -> dict[str, Any] | None:
    """The CloudEvent for an internal event, or None if siblings do not hear of it."""
    kind = TYPES.get(name)
    if kind is None:
        return None
    if name == "message_deleted" and not payload.get("delete_for_everyone"):
        return None  # "delete for me" is nobody else's business
    data = dict(payload)
    if isinstance(data.get("message"), dict):
        data["message"] = _without_content(data["message"])
    if recipients is not None:
        data["recipient_ids"] = recipients
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
