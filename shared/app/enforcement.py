"""Sanctions in force, checked inside the use cases' transactions (rules.md: Abuse — "enforced
on send and join"). Kept apart from `shared.app.moderation` so that the send and membership
paths can import it without an import cycle."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime

from sqlalchemy import Connection

from shared.app.views import timestamp
from shared.domain.errors import Forbidden
from shared.domain.moderation import BLOCKS_INTERACTING, BLOCKS_JOINING, BLOCKS_SENDING, Sanction
from shared.storage import moderation as store

_WORDS = {"mute": "muted", "restrict": "restricted"}


def _until(sanction: Sanction) -> str:
    until = timestamp(sanction.expires_at)
    return f"until {until}" if until else "until a moderator lifts it"


def _refuse(sanction: Sanction, what: str) -> Forbidden:
    until, when = timestamp(sanction.expires_at), _until(sanction)
    return Forbidden(
        f"you are {_WORDS.get(sanction.kind, sanction.kind)} in this conversation {when}: you cannot {what}",
        code="sanctioned",
        details={"kind": sanction.kind, "expires_at": until, "sanction_id": sanction.id},
    )


def sending_sanctions(
    conn: Connection, pairs: Collection[tuple[str, str]], now: datetime
) -> dict[tuple[str, str], list[Sanction]]:
    """The sanctions in force that block sending, for many (conversation_id, user_id) at once."""
    return store.sanctions_in_force_among(conn, pairs, now, BLOCKS_SENDING)


def refuse_sending(found: Sequence[Sanction]) -> None:
    """403 `sanctioned` if a member has these sanctions blocking sending (longest-lasting first)."""
    if found:
        raise _refuse(found[0], "send messages")


def check_can_interact(conn: Connection, conversation_id: str, user_id: str, now: datetime) -> None:
    """A restricted member cannot react, pin or attach either (403 `sanctioned`)."""
    found = store.sanctions_in_force(conn, conversation_id, [user_id], now, BLOCKS_INTERACTING)
    if found:
        raise _refuse(found[0], "do this")


def check_can_join(conn: Connection, conversation_id: str, user_ids: Sequence[str], now: datetime) -> None:
    """A kicked member cannot be added back while the kick is in force (403 `sanctioned`)."""
    found = store.sanctions_in_force(conn, conversation_id, list(user_ids), now, BLOCKS_JOINING)
    if found:
        kicked = sorted({s.user_id for s in found})
        raise Forbidden(
            f"kicked from this conversation {_until(found[0])}: {', '.join(kicked)}",
            code="sanctioned",
            details={"user_ids": kicked, "kind": "kick", "expires_at": timestamp(found[0].expires_at)},
        )
