"""Use cases on attachments: link media-service objects to a message (the sender only), list."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from shared.app.access import topic_conversation
from shared.app.enforcement import check_can_interact
from shared.app.services import Services, Unit
from shared.app.views import attachment_view
from shared.app.visibility import require_visible_message
from shared.config import Limits
from shared.domain import rules
from shared.domain.errors import Forbidden
from shared.domain.models import Actor, Attachment, Event, Message
from shared.storage import attachments as store
from shared.storage import messages as msg_store


@dataclass(frozen=True)
class Linked:
    attachment: dict[str, Any]
    created: bool  # False when this media was already linked to the message


def link(
    unit: Unit, message: Message, media_id: str, media_type: str, metadata: dict[str, Any], limits: Limits
) -> Linked:
    """Link one media object to a message inside the caller's transaction, idempotent per
    media_id, and record `attachment_added`. The fields are already checked."""
    msg_store.lock_message(unit.conn, message.id)  # count and insert as one step
    existing = store.find(unit.conn, message.id, media_id)
    if existing is not None:
        return Linked(attachment_view(existing), created=False)
    rules.check_attachment_count(store.count_for_message(unit.conn, message.id), limits)
    row = Attachment(
        id=str(uuid.uuid4()),
        message_id=message.id,
        conversation_id=message.conversation_id,
        media_id=media_id,
        media_type=media_type,
        metadata=metadata,
        created_at=unit.now,
    )
    store.insert_attachment(unit.conn, row)
    view = attachment_view(row)
    payload = {
        "message_id": message.id,
        "conversation_id": message.conversation_id,
        "seq": message.seq,
        "attachment": view,
    }
    topics = (topic_conversation(message.conversation_id),)
    unit.record(Event("attachment_added", payload, topics, conversation_id=message.conversation_id, seq=message.seq))
    return Linked(view, created=True)


def add_attachment(
    svc: Services, actor: Actor, message_id: str, media_id: str, media_type: str, metadata: dict[str, Any]
) -> Linked:
    limits = svc.settings.limits
    clean_id = rules.check_attachment(media_id, media_type, metadata, limits)
    with svc.unit() as unit:
        message, _, _ = require_visible_message(unit.conn, message_id, actor.user_id, unit.now)
        check_can_interact(unit.conn, message.conversation_id, actor.user_id, unit.now)
        rules.check_attachable(message, actor.user_id)
        require_media_access(svc, clean_id, actor.user_id, message.conversation_id)
        return link(unit, message, clean_id, media_type, metadata, limits)


def require_media_access(svc: Services, media_id: str, user_id: str, conversation_id: str) -> None:
    """media-service must let `user_id` attach `media_id` in this conversation: 403
    `media_access_denied` with its reason when it refuses, 503 `sibling_unavailable` when it
    cannot answer (the attachment fails, nothing is linked; the client retries)."""
    if svc.media is None:
        return
    check = svc.media.validate_access(media_id, user_id, conversation_id)
    if not check.allowed:
        reason = check.reason or "the media service does not allow it"
        raise Forbidden(f"media_id: {reason}", code="media_access_denied", details={"media_id": [reason]})


def list_attachments(svc: Services, actor: Actor, message_id: str) -> list[dict[str, Any]]:
    with svc.db.transaction() as conn:
        message, _, _ = require_visible_message(conn, message_id, actor.user_id, svc.clock())
        rows = store.list_for_message(conn, message.id)
    return [attachment_view(r) for r in rows]
