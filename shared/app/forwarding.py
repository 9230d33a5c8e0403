"""Forward a message to other conversations: each copy goes through the normal send path."""

from __future__ import annotations

import secrets

from shared.app import messages
from shared.app.access import require_member
from shared.app.attachments import link, require_media_access
from shared.app.services import Services
from shared.app.visibility import require_visible_message
from shared.domain import rules
from shared.domain.models import Actor, Message, NewMessage
from shared.storage import attachments as att_store
from shared.storage import messages as msg_store


def forward_message(svc: Services, actor: Actor, message_id: str, conversation_ids: list[str]) -> list[Message]:
    """Send a copy of a message the caller can see to each target conversation (the caller must
    be a member of every one; all are checked before anything is sent). Each copy is a new
    message from the caller with `forwarded_from_id` set, a fresh `client_random`, the same
    content, type and metadata, and the same attachments; signatures are not copied (they
    cover the original conversation). Deleted, system and ephemeral messages are refused, and so
    is a forward of media the media service does not let the caller share in a target."""
    limits = svc.settings.limits
    targets = rules.check_forward_targets(conversation_ids, limits)
    with svc.db.transaction() as conn:
        source, conv, _ = require_visible_message(conn, message_id, actor.user_id, svc.clock())
        rules.check_forwardable(source, conv)
        for target in targets:
            target_conv, _ = require_member(conn, target, actor.user_id)
            rules.check_forward_target(target_conv)
        attachments = att_store.list_for_message(conn, source.id)
    for target in targets:  # media-service must let the caller share each object there too
        for a in attachments:
            require_media_access(svc, a.media_id, actor.user_id, target)
    forwarded: list[Message] = []
    for target in targets:
        copy = NewMessage(
            content=source.content,
            message_type=source.message_type,
            client_random=secrets.randbits(32),
            metadata=source.metadata,
            forwarded_from_id=source.id,
        )
        sent = messages.send_message(svc, actor, target, copy).message
        if attachments:
            with svc.unit() as unit:
                target_message = msg_store.get_message(unit.conn, sent.id)
                assert target_message is not None
                for a in attachments:
                    link(unit, target_message, a.media_id, a.media_type, a.metadata, limits)
        forwarded.append(sent)
    return forwarded
