"""The message search index: full text for plaintext conversations, blind tokens for E2E ones.

Both live in the message's own row, written by the INSERT that stores it (no row of their own:
issue 16, docs/performance.md). Plaintext messages get `messages.search_document`: on PostgreSQL
a `tsvector` under the 'simple' configuration, GIN-indexed; on SQLite the text, which triggers
(known only to the migrations) copy into `message_search` and its FTS5 index `message_search_fts`.
Messages of a conversation with `metadata.e2ee.enabled = true` never have their content indexed:
only the tokens the client computed (`metadata.search_tokens`, HMACs of the words under a key the
server never sees) go to `messages.search_tokens` (a GIN-indexed array on PostgreSQL, a JSON list
on SQLite), and a query matches them exactly. Whether a conversation is E2E is checked again at
query time, so turning E2E on stops content search there at once.

Queries match every word of the query as a prefix ("hel" finds "hello"), case-insensitively.
A text's words are found here, in Python, the same way for what is indexed and what is asked
(`words`); PostgreSQL is given the words themselves, never text for its parser to split.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    String,
    Text,
    and_,
    bindparam,
    cast,
    column,
    func,
    literal_column,
    or_,
    select,
    table,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, TSQUERY

from shared.domain.errors import Invalid
from shared.domain.models import Conversation, Message
from shared.storage.messages import MESSAGE_COLUMNS, _message, _visible_to, search_document
from shared.storage.schema import conversations, members, messages

# Blind tokens: each one is a column value, so its width is the schema's (256); the count per
# message bounds the rows one send writes (the 16 KiB metadata limit bounds it anyway).
MAX_TOKEN_CHARS = 256
MAX_TOKENS_PER_MESSAGE = 64
MAX_QUERY_WORDS = 16
MAX_QUERY_TOKENS = 16
# A longer word is indexed and asked by its beginning (still found by prefix); PostgreSQL's
# lexemes stop at 2,047 bytes, and a word this long is a blob, not something anyone types.
MAX_WORD_CHARS = 100

_WORD = re.compile(r"[^\W_]+")
_FTS = table("message_search_fts", column("rowid"))  # SQLite only, like the table it indexes:
_SQLITE_SEARCH = table("message_search", column("id"), column("message_id"))


def _postgres(conn: Connection) -> bool:
    return conn.dialect.name == "postgresql"


def words(text: str) -> list[str]:
    """The words of a text as the index holds them and a query looks them up: runs of letters
    and digits, in lower case, each cut to `MAX_WORD_CHARS`. Both sides are split by this one
    function: PostgreSQL's parser splits the same characters differently by context
    ("52e727bea5b4" is one word inside "secret-content-52e727bea5b4" and a number then a word
    alone), so a message it indexed could be missed by a query it parsed."""
    return [word[:MAX_WORD_CHARS] for word in _WORD.findall(text.lower())]


def document_words(content: str) -> str | None:
    """What gets indexed (`search_text`): the content's distinct words separated by spaces, or
    None if it has none. PostgreSQL makes the tsvector of exactly these words
    (`array_to_tsvector`); SQLite's FTS5 splits them again, on the spaces."""
    found = dict.fromkeys(words(content))
    return " ".join(found) if found else None


def search_tokens(message: Message) -> list[str]:
    """The message's blind tokens, each once, or 422 if `metadata.search_tokens` is malformed."""
    raw = message.metadata.get("search_tokens")
    if raw is None:
        return []
    detail = f"a list of at most {MAX_TOKENS_PER_MESSAGE} strings of 1 to {MAX_TOKEN_CHARS} characters"
    if not isinstance(raw, list) or len(raw) > MAX_TOKENS_PER_MESSAGE:
        raise Invalid.field("metadata.search_tokens", f"must be {detail}", code="invalid_search_tokens")
    tokens: list[str] = []
    for token in raw:
        if not isinstance(token, str) or not 1 <= len(token) <= MAX_TOKEN_CHARS or "\x00" in token:
            raise Invalid.field("metadata.search_tokens", f"must be {detail}", code="invalid_search_tokens")
        tokens.append(token)
    return list(dict.fromkeys(tokens))


def search_values(conv: Conversation, message: Message) -> dict[str, Any]:
    """The message's search parameters (`search_text`, `search_tokens`; None: nothing to find):
    system and deleted messages are not searchable; E2E conversations index the client's blind
    tokens only, never the content."""
    text: str | None = None
    tokens: list[str] | None = None
    if message.message_type != "system" and not message.is_deleted:
        if conv.e2ee_enabled:
            tokens = search_tokens(message) or None
        else:
            text = document_words(message.content)
    return {"search_text": text, "search_tokens": tokens}


def remove_messages(conn: Connection, message_ids: Sequence[str]) -> None:
    """Forget messages (deleted for everyone, expired): they can no longer be found."""
    if message_ids:
        conn.execute(
            update(messages).where(messages.c.id.in_(message_ids)).values(search_document=None, search_tokens=None)
        )


def remove_message(conn: Connection, message_id: str) -> None:
    remove_messages(conn, [message_id])


def reindex_message(conn: Connection, conv: Conversation, message: Message) -> None:
    """After an edit: the index holds the new content (or, in E2E conversations, the tokens)."""
    values = search_values(conv, message)
    conn.execute(
        update(messages)
        .where(messages.c.id == message.id)
        .values(search_document=search_document(_postgres(conn)), search_tokens=values["search_tokens"]),
        {"search_text": values["search_text"]},
    )


@dataclass(frozen=True)
class Query:
    """A parsed search: `words` for full text (prefix match, all of them), `tokens` for blind
    tokens (exact match, all of them: the query split on whitespace)."""

    words: tuple[str, ...]
    tokens: tuple[str, ...]

    @classmethod
    def parse(cls, raw: str) -> Query:
        asked = tuple(dict.fromkeys(words(raw)))[:MAX_QUERY_WORDS]
        tokens = tuple(dict.fromkeys(raw.split()))[:MAX_QUERY_TOKENS]
        return cls(asked, tokens)


@dataclass(frozen=True)
class Cursor:
    """The last result of the previous page: results continue strictly after it."""

    sent_at: datetime
    message_id: str


@dataclass(frozen=True)
class SearchPage:
    messages: list[Message]  # newest first
    has_more: bool


def _full_text_match(conn: Connection, asked: Sequence[str]) -> ColumnElement[bool]:
    """Every word `asked` (split by `words`) as a prefix of a word of the message."""
    if _postgres(conn):  # the words as lexemes (a cast: no parser), each a prefix
        tsquery = " & ".join(f"'{w}':*" for w in asked)  # letters and digits only: nothing to quote
        return messages.c.search_document.op("@@")(cast(bindparam("words", tsquery, type_=Text), TSQUERY))
    fts_query = " AND ".join(f'"{w}"*' for w in asked)
    matching = select(_FTS.c.rowid).where(literal_column("message_search_fts").op("MATCH")(fts_query))
    return messages.c.id.in_(select(_SQLITE_SEARCH.c.message_id).where(_SQLITE_SEARCH.c.id.in_(matching)))


def _tokens_match(conn: Connection, tokens: Sequence[str]) -> ColumnElement[bool]:
    """Every token among the message's blind tokens."""
    if _postgres(conn):
        return messages.c.search_tokens.op("@>")(bindparam("tokens", list(tokens), type_=ARRAY(String(256))))
    listed = func.json_each(messages.c.search_tokens).table_valued("value")
    found = select(func.count(listed.c.value.distinct())).where(listed.c.value.in_(list(tokens)))
    return and_(messages.c.search_tokens.is_not(None), found.scalar_subquery() == len(tokens))


def member_conversations(user_id: str) -> Any:
    """Ids of the active conversations the user is an active member of (a subquery)."""
    return (
        select(members.c.conversation_id)
        .join(conversations, conversations.c.id == members.c.conversation_id)
        .where(members.c.user_id == user_id, members.c.is_active.is_(True), conversations.c.is_active.is_(True))
    )


def search_messages(
    conn: Connection,
    user_id: str,
    now: datetime,
    query: Query,
    *,
    e2ee_ids: Iterable[str],
    conversation_id: str | None = None,
    limit: int,
    after: Cursor | None = None,
    offset: int = 0,
) -> SearchPage:
    """Messages the user may see that match, newest first. Scope: the user's active
    conversations (or the one given, whose membership the caller checked); `e2ee_ids` are the
    E2E conversations of that scope: there only blind tokens match, elsewhere only full text.
    Hidden, deleted and expired messages never match."""
    e2ee = list(dict.fromkeys(e2ee_ids))
    scope: Any = [conversation_id] if conversation_id is not None else member_conversations(user_id)
    matches: list[ColumnElement[bool]] = []
    if query.words:
        full_text = and_(messages.c.search_document.is_not(None), _full_text_match(conn, query.words))
        matches.append(and_(full_text, messages.c.conversation_id.not_in(e2ee)) if e2ee else full_text)
    if query.tokens and e2ee:
        matches.append(
            and_(
                messages.c.search_tokens.is_not(None),
                messages.c.conversation_id.in_(e2ee),
                _tokens_match(conn, query.tokens),
            )
        )
    if not matches:
        return SearchPage([], False)
    statement = select(*MESSAGE_COLUMNS).where(
        or_(*matches),
        messages.c.conversation_id.in_(scope),
        messages.c.is_deleted.is_(False),
        _visible_to(user_id, now),
    )
    if after is not None:
        statement = statement.where(
            or_(
                messages.c.sent_at < after.sent_at,
                and_(messages.c.sent_at == after.sent_at, messages.c.id < after.message_id),
            )
        )
    ordered = statement.order_by(messages.c.sent_at.desc(), messages.c.id.desc())
    rows = conn.execute(ordered.limit(limit + 1).offset(offset))  # offset: clients that page by count
    found = [_message(r) for r in rows]
    return SearchPage(found[:limit], len(found) > limit)
