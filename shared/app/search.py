"""Search use cases: messages (full text, or blind tokens in E2E conversations) and the
caller's conversations (groups by name, direct conversations by the other member's id)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select

from shared.app.access import require_member
from shared.app.conversations import render_many
from shared.app.services import Services
from shared.app.views import message_view
from shared.domain import rules
from shared.domain.errors import Invalid, RateLimited
from shared.domain.models import Actor, Conversation, Member
from shared.storage import conversations as conv_store
from shared.storage import search as store
from shared.storage.schema import conversations


def check_rate(svc: Services, actor: Actor) -> None:
    """500 searches per hour per user (rules.md: Abuse), messages and conversations together."""
    per_hour = svc.settings.limits.searches_per_hour
    wait = svc.limiter.acquire(f"search:{actor.user_id}", per_second=per_hour / 3600, burst=per_hour)
    if wait:
        raise RateLimited(f"at most {per_hour} searches per hour; try again later", retry_after=wait)


def clean_query(raw: str | None, field: str, svc: Services) -> str:
    """The query, trimmed; empty when there is none (a search box being cleared: no results,
    not an error, and not counted as a search)."""
    query = (raw or "").strip()
    limit = svc.settings.limits.max_search_query_chars
    if len(query) > limit:
        raise Invalid.field(field, f"at most {limit} characters")
    return query


@dataclass(frozen=True)
class MessageResults:
    messages: list[dict[str, Any]]
    has_more: bool
    next_cursor: store.Cursor | None


def _e2ee_conversations(conn: Connection, user_id: str, conversation_id: str | None) -> list[str]:
    """The E2E conversations of the search's scope (E2E is read now, not at send time)."""
    query = select(conversations)
    if conversation_id is not None:
        query = query.where(conversations.c.id == conversation_id)
    else:
        query = query.where(conversations.c.id.in_(store.member_conversations(user_id)))
    return [conv.id for conv in map(conv_store._conversation, conn.execute(query)) if conv.e2ee_enabled]


def search_messages(
    svc: Services,
    actor: Actor,
    raw_query: str | None,
    *,
    conversation_id: str | None = None,
    limit: int,
    after: store.Cursor | None = None,
    offset: int = 0,
) -> MessageResults:
    """Matching messages of the caller's conversations (active member, conversation active),
    newest first; in E2E conversations only blind tokens match, never content."""
    query = clean_query(raw_query, "query", svc)
    if not query:
        return MessageResults([], False, None)
    check_rate(svc, actor)
    parsed = store.Query.parse(query)
    with svc.db.transaction() as conn:
        now = svc.clock()
        if conversation_id is not None:
            require_member(conn, conversation_id, actor.user_id)
        e2ee = _e2ee_conversations(conn, actor.user_id, conversation_id)
        page = store.search_messages(
            conn,
            actor.user_id,
            now,
            parsed,
            e2ee_ids=e2ee,
            conversation_id=conversation_id,
            limit=limit,
            after=after,
            offset=offset,
        )
        members = conv_store.members_of(conn, list(dict.fromkeys(m.conversation_id for m in page.messages)))
    views = []
    for message in page.messages:
        status = None
        if message.sender_id == actor.user_id:
            others = [m for m in members.get(message.conversation_id, []) if m.user_id != actor.user_id]
            status = rules.message_status(message.seq, others)
        views.append(message_view(message, status))
    last = page.messages[-1] if page.messages else None
    cursor = store.Cursor(last.sent_at, last.id) if last is not None and page.has_more else None
    return MessageResults(views, page.has_more, cursor)


def _matches(conv: Conversation, me: Member, others: list[str], needle: str) -> bool:
    if me.custom_name and needle in me.custom_name.lower():
        return True
    if conv.type == "group":
        return needle in (conv.name or "").lower()
    return any(needle in other.lower() for other in others)


@dataclass(frozen=True)
class ConversationResults:
    conversations: list[dict[str, Any]]
    has_more: bool


def search_conversations(
    svc: Services, actor: Actor, raw_query: str | None, *, limit: int | None = None
) -> ConversationResults:
    """The caller's conversations (archived included) whose group name, or whose other
    member's id for a direct conversation, contains the query (case-insensitive); the caller's
    own custom name for a conversation matches too. Most recent activity first, at most `limit`."""
    needle = clean_query(raw_query, "q", svc).lower()
    if not needle:
        return ConversationResults([], False)
    check_rate(svc, actor)
    with svc.db.transaction() as conn:
        now = svc.clock()
        items = conv_store.conversations_of_user(conn, actor.user_id, archived=None)
        members = conv_store.members_of(conn, [conv.id for conv, _ in items])
        found = [
            (conv, me)
            for conv, me in items
            if _matches(conv, me, [m.user_id for m in members[conv.id] if m.user_id != actor.user_id], needle)
        ]
        shown = found if limit is None else found[:limit]
        return ConversationResults(render_many(conn, shown, actor.user_id, now), len(shown) < len(found))
