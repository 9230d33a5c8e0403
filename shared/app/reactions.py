"""Use cases on reactions: list (with per-emoji counts), add, remove. REST and the socket relay
both call `add_reaction` / `remove_reaction`."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from shared.app.access import topic_conversation
from shared.app.enforcement import check_can_interact
from shared.app.services import Services
from shared.app.views import reaction_view
from shared.app.visibility import require_visible_message
from shared.domain import rules
from shared.domain.models import Actor, Event, Reaction
from shared.storage import messages as msg_store
from shared.storage import reactions as store


@dataclass(frozen=True)
class ReactionAdded:
    reaction: dict[str, Any]  # the reaction object {id, message_id, user_id, reaction, created_at}
    created: bool  # False when the user already had this reaction (idempotent repeat)


@dataclass(frozen=True)
class ReactionList:
    reactions: list[dict[str, Any]]  # oldest first
    counts: dict[str, int]  # emoji -> count, most used first


def count_by_emoji(reactions: list[Reaction]) -> dict[str, int]:
    """Per-emoji counts, most used first, ties in order of first use."""
    counts: dict[str, int] = {}
    for reaction in reactions:
        counts[reaction.reaction] = counts.get(reaction.reaction, 0) + 1
    return dict(sorted(counts.items(), key=lambda item: -item[1]))


def list_reactions(svc: Services, actor: Actor, message_id: str) -> ReactionList:
    with svc.db.transaction() as conn:
        message, _, _ = require_visible_message(conn, message_id, actor.user_id, svc.clock())
        reactions = store.list_for_message(conn, message.id)
    return ReactionList([reaction_view(r) for r in reactions], count_by_emoji(reactions))


def add_reaction(svc: Services, actor: Actor, message_id: str, reaction: str) -> ReactionAdded:
    """Add the caller's emoji to a message they can see. Repeating it is a no-op; a new emoji
    counts against the per-user and per-message limits. Records `reaction_added`."""
    emoji = rules.check_reaction(reaction)
    with svc.unit() as unit:
        message, conv, _ = require_visible_message(unit.conn, message_id, actor.user_id, unit.now)
        check_can_interact(unit.conn, conv.id, actor.user_id, unit.now)
        rules.check_reactable(message)
        msg_store.lock_message(unit.conn, message.id)  # the limits are checked then written atomically
        existing = store.find(unit.conn, message.id, actor.user_id, emoji)
        if existing is not None:
            return ReactionAdded(reaction_view(existing), created=False)
        rules.check_reaction_limits(
            emoji,
            store.emojis_of_user(unit.conn, message.id, actor.user_id),
            store.distinct_emojis(unit.conn, message.id),
            svc.settings.limits,
        )
        row = Reaction(
            id=str(uuid.uuid4()),
            message_id=message.id,
            conversation_id=conv.id,
            user_id=actor.user_id,
            reaction=emoji,
            created_at=unit.now,
        )
        store.insert_reaction(unit.conn, row)
        view = reaction_view(row)
        payload = {
            "message_id": message.id,
            "conversation_id": conv.id,
            "seq": message.seq,
            "user_id": actor.user_id,
            "reaction": view,
        }
        unit.record(
            Event("reaction_added", payload, (topic_conversation(conv.id),), conversation_id=conv.id, seq=message.seq)
        )
        return ReactionAdded(view, created=True)


def remove_reaction(svc: Services, actor: Actor, message_id: str, reaction: str) -> bool:
    """Remove the caller's emoji from a message; True if it was there (then `reaction_removed`
    is recorded). Removing one that is not there is not an error."""
    emoji = rules.check_reaction(reaction)
    with svc.unit() as unit:
        message, conv, _ = require_visible_message(unit.conn, message_id, actor.user_id, unit.now)
        if not store.delete_reaction(unit.conn, message.id, actor.user_id, emoji):
            return False
        payload = {
            "message_id": message.id,
            "conversation_id": conv.id,
            "seq": message.seq,
            "user_id": actor.user_id,
            "reaction": emoji,
        }
        unit.record(
            Event("reaction_removed", payload, (topic_conversation(conv.id),), conversation_id=conv.id, seq=message.seq)
        )
        return True
