"""The relational schema (SQLAlchemy Core). Alembic migrations are generated from it.

Ids are lowercase UUID strings. Receipts are watermarks on `seq` per member and per device,
never one row per message per recipient. `events` is the transactional outbox.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, TSVECTOR

from shared.storage.types import JSONText, UTCDateTime, UTF8Bytes

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
    }
)

UUID = String(36)
AutoId = BigInteger().with_variant(Integer, "sqlite")

conversations = Table(
    "conversations",
    metadata,
    Column("id", UUID, primary_key=True),
    Column("type", String(10), nullable=False),
    Column("name", String(200)),
    Column("metadata", JSONText, nullable=False),
    Column("created_by", UUID, nullable=False),
    Column("direct_key", String(80), unique=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("last_message_at", UTCDateTime),
    Column("is_active", Boolean, nullable=False, default=True),
    Column("last_seq", BigInteger, nullable=False, default=0),
)

members = Table(
    "conversation_members",
    metadata,
    Column("conversation_id", UUID, ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", UUID, primary_key=True),
    Column("role", String(12), nullable=False),
    Column("joined_at", UTCDateTime, nullable=False),
    Column("left_at", UTCDateTime),
    Column("is_active", Boolean, nullable=False, default=True),
    Column("last_read_seq", BigInteger, nullable=False, default=0),
    Column("last_delivered_seq", BigInteger, nullable=False, default=0),
    Column("notifications_enabled", Boolean, nullable=False, default=True),
    Column("muted_until", UTCDateTime),
    Column("show_read_receipts", Boolean, nullable=False, default=True),
    Column("show_typing", Boolean, nullable=False, default=True),
    Column("custom_name", String(200)),
    Column("is_pinned", Boolean, nullable=False, default=False),
    Column("pinned_at", UTCDateTime),
    Column("is_archived", Boolean, nullable=False, default=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Index(None, "user_id", "is_active"),
)

messages = Table(
    "messages",
    metadata,
    Column("id", UUID, primary_key=True),
    Column("conversation_id", UUID, ForeignKey("conversations.id", ondelete="CASCADE"), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("sender_id", UUID, nullable=False),
    Column("sender_device_id", String(128)),
    Column("client_random", BigInteger, nullable=False),
    Column("message_type", String(10), nullable=False),
    Column("content", UTF8Bytes, nullable=False),
    Column("metadata", JSONText, nullable=False),
    Column("reply_to_id", UUID),
    Column("forwarded_from_id", UUID),
    Column("signature", Text),
    Column("sender_public_key", Text),
    Column("sent_at", UTCDateTime, nullable=False),
    Column("edited_at", UTCDateTime),
    Column("is_deleted", Boolean, nullable=False, default=False),
    Column("deleted_at", UTCDateTime),
    Column("expires_at", UTCDateTime),
    Column("is_expired", Boolean, nullable=False, default=False),
    # Search (0007; shared/storage/search.py), written with the message, no row of its own.
    # Plaintext messages: the full-text document (PostgreSQL: a tsvector, GIN-indexed; SQLite:
    # the text, which triggers only the migration knows copy into the FTS5 index). E2E messages:
    # never their content, only the client's blind tokens (PostgreSQL: an array, GIN-indexed;
    # SQLite: a JSON list). NULL: nothing to find (system, deleted, expired, empty).
    Column("search_document", TSVECTOR().with_variant(Text(), "sqlite")),
    Column("search_tokens", ARRAY(String(256)).with_variant(JSONText(), "sqlite")),
    UniqueConstraint("conversation_id", "seq"),
    Index(None, "conversation_id", "sender_id", "client_random"),
    Index(
        "ix_messages_pending_expiry",
        "expires_at",
        postgresql_where=text("expires_at IS NOT NULL AND NOT is_expired"),
        sqlite_where=text("expires_at IS NOT NULL AND NOT is_expired"),
    ),
    *(
        Index(
            f"ix_messages_{name}",
            name,
            postgresql_using="gin",
            postgresql_where=text(f"{name} IS NOT NULL"),
            postgresql_with={"gin_pending_list_limit": 512},  # migration 0012
        ).ddl_if(dialect="postgresql")
        for name in ("search_document", "search_tokens")
    ),
)

hidden_messages = Table(
    "hidden_messages",
    metadata,
    Column("user_id", UUID, primary_key=True),
    Column("message_id", UUID, ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True),
    Column("conversation_id", UUID, nullable=False),
    Column("hidden_at", UTCDateTime, nullable=False),
    Index(None, "user_id", "conversation_id"),
)

reactions = Table(
    "reactions",
    metadata,
    Column("id", UUID, primary_key=True),
    Column("message_id", UUID, ForeignKey("messages.id", ondelete="CASCADE"), nullable=False),
    Column("conversation_id", UUID, nullable=False),
    Column("user_id", UUID, nullable=False),
    Column("reaction", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("message_id", "user_id", "reaction"),
)

message_pins = Table(
    "message_pins",
    metadata,
    Column("message_id", UUID, ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True),
    Column("conversation_id", UUID, nullable=False),
    Column("pinned_by", UUID, nullable=False),
    Column("pinned_at", UTCDateTime, nullable=False),
    Index(None, "conversation_id", "pinned_at"),
)

drafts = Table(
    "drafts",
    metadata,
    Column("conversation_id", UUID, ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", UUID, primary_key=True),
    Column("content", UTF8Bytes, nullable=False),
    Column("metadata", JSONText, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

scheduled_messages = Table(
    "scheduled_messages",
    metadata,
    Column("id", UUID, primary_key=True),
    Column("conversation_id", UUID, ForeignKey("conversations.id", ondelete="CASCADE"), nullable=False),
    Column("sender_id", UUID, nullable=False),
    Column("sender_device_id", String(128)),
    Column("content", UTF8Bytes, nullable=False),
    Column("message_type", String(10), nullable=False),
    Column("metadata", JSONText, nullable=False),
    Column("client_random", BigInteger, nullable=False),
    Column("scheduled_at", UTCDateTime, nullable=False),
    Column("status", String(10), nullable=False),
    Column("message_id", UUID),
    Column("failure_reason", Text),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Index(None, "status", "scheduled_at"),
    Index(None, "sender_id", "status"),
)

attachments = Table(
    "attachments",
    metadata,
    Column("id", UUID, primary_key=True),
    Column("message_id", UUID, ForeignKey("messages.id", ondelete="CASCADE"), nullable=False),
    Column("conversation_id", UUID, nullable=False),
    Column("media_id", String(128), nullable=False),
    Column("media_type", String(20), nullable=False),
    Column("metadata", JSONText, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("message_id", "media_id"),
)

device_receipts = Table(
    "device_receipts",
    metadata,
    Column("conversation_id", UUID, ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", UUID, primary_key=True),
    Column("device_id", String(128), primary_key=True),
    Column("delivered_seq", BigInteger, nullable=False, default=0),
    Column("read_seq", BigInteger, nullable=False, default=0),
    Column("updated_at", UTCDateTime, nullable=False),
)

sender_keys = Table(
    "sender_keys",
    metadata,
    Column("id", AutoId, primary_key=True, autoincrement=True),
    Column("user_id", UUID, nullable=False),
    Column("device_id", String(128), nullable=False),
    Column("public_key", Text, nullable=False),
    Column("first_seen_at", UTCDateTime, nullable=False),
    Column("replaced_at", UTCDateTime),
    Index(None, "user_id", "device_id", "replaced_at"),
)

reports = Table(
    "reports",
    metadata,
    Column("id", UUID, primary_key=True),
    Column("reporter_id", UUID, nullable=False),
    Column("message_id", UUID),
    Column("reported_user_id", UUID),
    Column("conversation_id", UUID),
    Column("category", String(20), nullable=False),
    Column("reason", Text),
    # pending, under_review, resolved_action, resolved_dismissed (the client's; 0006 widened it)
    Column("status", String(20), nullable=False),
    Column("resolution", Text),
    Column("resolved_by", UUID),
    Column("resolved_at", UTCDateTime),
    Column("created_at", UTCDateTime, nullable=False),
    # added by 0002: the reported message as it was when reported; what the moderator did,
    # their note, and the sanction the action applied
    Column("evidence", JSONText),
    Column("action", String(20)),
    Column("note", Text),
    Column("sanction_id", UUID),
    Index(None, "reporter_id", "message_id", "created_at"),
    Index(None, "status", "created_at"),
)

sanctions = Table(
    "sanctions",
    metadata,
    Column("id", UUID, primary_key=True),
    Column("conversation_id", UUID, ForeignKey("conversations.id", ondelete="CASCADE"), nullable=False),
    Column("user_id", UUID, nullable=False),
    Column("kind", String(10), nullable=False),
    Column("reason", Text),
    Column("created_by", UUID, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime),
    Column("revoked_at", UTCDateTime),
    Index(None, "conversation_id", "user_id"),
)

events = Table(
    "events",
    metadata,
    Column("id", AutoId, primary_key=True, autoincrement=True),
    Column("event_id", UUID, nullable=False, unique=True),
    Column("name", String(64), nullable=False),
    Column("conversation_id", UUID),
    Column("seq", BigInteger),
    Column("topics", JSONText, nullable=False),
    # PostgreSQL compresses it with lz4 (migration 0009): a planner pass's payload lists hundreds
    Column("payload", JSONText, nullable=False),
    # 'conversation': every member of conversation_id hears it; 'user': only event_targets do.
    Column("scope", String(12), nullable=False),
    # PostgreSQL transaction id of the writer (0 on SQLite): the sync cursor orders by
    # (txid, id) and stops below the oldest running transaction, so no change is ever skipped.
    Column("txid", BigInteger, nullable=False, default=0),
    Column("created_at", UTCDateTime, nullable=False),
    # /sync's range scan of a conversation's events (shared/storage/sync.py, which writes the
    # predicate as a literal so generic plans can use it): user-scoped events are not read there
    Index(
        None,
        "conversation_id",
        "txid",
        "id",
        postgresql_where=text("scope = 'conversation'"),
        sqlite_where=text("scope = 'conversation'"),
    ),
    # the scrub of a deleted or expired message's copies (outbox.scrub_message): events with a seq
    Index(
        None,
        "conversation_id",
        "seq",
        postgresql_where=text("seq IS NOT NULL"),
        sqlite_where=text("seq IS NOT NULL"),
    ),
    # the notification dispatcher's pass (shared/app/notifications.py): only these events
    Index(
        "ix_events_notifiable",
        "txid",
        "id",
        postgresql_where=text("name IN ('new_message', 'conversation_read')"),
        sqlite_where=text("name IN ('new_message', 'conversation_read')"),
    ),
)

# Events waiting for the bus (written by an instance whose bus is not in its process): a row
# each until it is published; the outbox sweeper republishes what stays (migration 0011 says
# why this is not a column of `events`).
unpublished_events = Table(
    "unpublished_events",
    metadata,
    Column("event_id", AutoId, primary_key=True),
    Column("created_at", UTCDateTime, nullable=False),
)

event_targets = Table(
    "event_targets",
    metadata,
    Column("user_id", UUID, primary_key=True),
    Column("event_id", AutoId, ForeignKey("events.id", ondelete="CASCADE"), primary_key=True),
    Column("txid", BigInteger, nullable=False, default=0),
    Index(None, "user_id", "txid", "event_id"),
)


# Token buckets shared by every instance (shared/adapters/sql_limiter.py): `tokens` left at
# `stamp` (the database's clock, epoch seconds), and whether the last take was granted.
rate_limits = Table(
    "rate_limits",
    metadata,
    Column("key", String(200), primary_key=True),
    Column("tokens", Float, nullable=False),
    Column("stamp", Float, nullable=False),
    Column("granted", Boolean, nullable=False),
)


# Sibling integration (0005). Events consumed from sibling services (functions/events), by
# a digest of their CloudEvents (source, id): a redelivery finds its row and changes nothing.
inbound_events = Table(
    "inbound_events",
    metadata,
    Column("key", String(64), primary_key=True),  # sha256 hex of "source id"
    Column("type", String(128), nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
    Index(None, "received_at"),
)

# Where a pass over the outbox stands, per consumer ("notifications"): the sync cursor's
# (txid, events.id) order, so a pass never skips an event that commits later.
outbox_cursors = Table(
    "outbox_cursors",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("txid", BigInteger, nullable=False),
    Column("event_id", BigInteger, nullable=False),
)

# Calls owed to the notification service (pushes to offline members, mark-read), delivered
# at least once in id order and deleted once it took them; `dedupe_key` (the domain event id)
# makes enqueuing twice harmless. On disk, so an outage of any length costs no memory.
notification_queue = Table(
    "notification_queue",
    metadata,
    Column("id", AutoId, primary_key=True, autoincrement=True),
    Column("dedupe_key", String(80), nullable=False, unique=True),
    Column("kind", String(16), nullable=False),  # "message" | "read"
    Column("payload", JSONText, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
)
