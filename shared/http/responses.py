"""What the API answers, as pydantic models: the documentation of `shared.app.views` (and of the
small dicts some use cases return), used to build the OpenAPI document's response schemas.

The models are never used to build answers (the views are plain dicts, rendered by orjson);
they describe them, key for key. `extra="forbid"` makes each one's schema closed
(`additionalProperties: false`), so a key added to a view and not here is caught by the
schema tests (tests/api/test_openapi.py) instead of going undocumented.

`ResponseDoc` says which model a route answers and how: in the `{data, meta}` envelope or bare,
one object or a list, with which `meta`. A route gives one with `Route(response=...)`, or
`shared.http.openapi` finds one for its handler."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from shared.domain.moderation import ReportCategory, ReportStatus

# --- value types ------------------------------------------------------------------------------

TIMESTAMP_PATTERN = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$"

UUID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"

Uuid = Annotated[str, WithJsonSchema({"type": "string", "format": "uuid", "pattern": UUID_PATTERN})]
Timestamp = Annotated[
    str,
    WithJsonSchema(
        {
            "type": "string",
            "format": "date-time",
            "pattern": TIMESTAMP_PATTERN,
            "description": "RFC 3339, UTC, with microseconds and Z",
        }
    ),
]
Json = dict[str, Any]
Role = Literal["owner", "admin", "moderator", "member"]
DeliveryStatus = Literal["sent", "delivered", "read"]


def _not_nullable(schema: dict[str, Any]) -> None:
    """For optional keys that are left out rather than null: drop pydantic's `default: null`."""
    schema.pop("default", None)


class View(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- objects ----------------------------------------------------------------------------------


class Message(View):
    """A message. `status` is there only for its sender (and for messages just sent)."""

    id: Uuid
    conversation_id: Uuid
    seq: int = Field(ge=0, description="position in the conversation, gap-free, from 1")
    sender_id: Uuid
    sender_device_id: str | None
    client_random: int = Field(description="the sender's idempotency key (a retry returns the original)")
    message_type: Literal["text", "media", "system"]
    content: str = Field(description="stored and returned byte for byte (ciphertext in E2E conversations)")
    metadata: Json
    reply_to_id: Uuid | None
    forwarded_from_id: Uuid | None
    signature: str | None
    sender_public_key: str | None
    sent_at: Timestamp
    edited_at: Timestamp | None
    is_edited: bool
    is_deleted: bool
    expires_at: Timestamp | None
    status: DeliveryStatus = Field(
        default=None,  # type: ignore[arg-type]
        description="for the sender only: the least advanced of the recipients",
        json_schema_extra=_not_nullable,
    )


class Member(View):
    user_id: Uuid
    role: Role
    joined_at: Timestamp
    is_active: bool


class Conversation(View):
    """A conversation as listed. `is_pinned`, `is_muted`, `is_archived` are the caller's own."""

    id: Uuid
    type: Literal["direct", "group"]
    name: str | None
    metadata: Json
    created_at: Timestamp
    updated_at: Timestamp
    is_active: bool
    last_seq: int = Field(ge=0)
    last_message: Message | None
    unread_count: int = Field(ge=0)
    last_read_seq: int = Field(ge=0, description="the caller's read watermark")
    member_user_ids: list[Uuid]
    is_pinned: bool
    is_muted: bool
    is_archived: bool


class ConversationDetail(Conversation):
    """A conversation with its active members."""

    members: list[Member]
    member_count: int = Field(ge=0)


class Settings(View):
    """The caller's settings for one conversation."""

    conversation_id: Uuid
    notifications_enabled: bool
    muted_until: Timestamp | None
    show_read_receipts: bool
    show_typing: bool
    custom_name: str | None
    is_pinned: bool
    is_archived: bool
    is_muted: bool


class ConversationState(View):
    """The caller's pin and archive state after a pin/unpin/archive/unarchive (idempotent)."""

    conversation_id: Uuid
    is_pinned: bool
    is_archived: bool


class ReadWatermark(View):
    conversation_id: Uuid
    user_id: Uuid
    last_read_seq: int = Field(ge=0)


class UnreadMark(View):
    """After marking unread: the caller's read watermark is now the message's seq - 1."""

    conversation_id: Uuid
    user_id: Uuid
    message_id: Uuid
    last_read_seq: int = Field(ge=0)
    unread_count: int = Field(ge=0)


class MessageDeletion(View):
    message_id: Uuid
    conversation_id: Uuid
    seq: int = Field(ge=0)
    delete_for_everyone: bool


class RecipientStatus(View):
    user_id: Uuid
    status: DeliveryStatus


class MessageStatusReport(View):
    """Per-member delivery of one message, for its sender."""

    message_id: Uuid
    conversation_id: Uuid
    seq: int = Field(ge=0)
    status: DeliveryStatus
    recipients: list[RecipientStatus]


class Reaction(View):
    id: Uuid
    message_id: Uuid
    user_id: Uuid
    reaction: str = Field(description="one emoji")
    created_at: Timestamp


class MessagePin(View):
    """A pinned message, with the message itself."""

    message_id: Uuid
    conversation_id: Uuid
    pinned_by: Uuid
    pinned_at: Timestamp
    message: Message


class PinnedMessage(MessagePin):
    """The answer to pinning: the pin, and `is_pinned: true`."""

    is_pinned: Literal[True]


class MessagePinState(View):
    """The answer to unpinning (idempotent)."""

    message_id: Uuid
    conversation_id: Uuid
    is_pinned: bool


class Draft(View):
    conversation_id: Uuid
    content: str
    metadata: Json
    updated_at: Timestamp


class Attachment(View):
    id: Uuid
    message_id: Uuid
    conversation_id: Uuid
    media_id: str = Field(description="the media service's object id")
    media_type: Literal["image", "video", "audio", "document"]
    metadata: Json
    created_at: Timestamp


class SyncChange(View):
    """One change for the caller; `event` and `payload` are as on the WebSocket (realtime.md)."""

    cursor: str
    event: str
    conversation_id: Uuid | None
    seq: int | None
    payload: Json
    created_at: Timestamp


class Sanction(View):
    """A moderation sanction on a member: mute (cannot send), restrict (cannot send, react, pin or
    attach) or kick (removed, and cannot be added back while it is in force). `expires_at` null:
    in force until lifted. `type`, `issued_by` and `active` are the Whispr client's names of
    `kind`, `created_by` and `is_active`."""

    id: Uuid
    conversation_id: Uuid
    user_id: Uuid
    type: Literal["mute", "shadow_restrict", "kick"] = Field(description="the client's name of kind")
    kind: Literal["mute", "restrict", "kick"]
    reason: str | None
    created_by: Uuid
    issued_by: Uuid = Field(description="the client's name of created_by")
    created_at: Timestamp
    expires_at: Timestamp | None
    revoked_at: Timestamp | None
    is_active: bool = Field(description="in force now: not revoked and not expired")
    active: bool = Field(description="the client's name of is_active")


ReportAction = Literal["none", "delete_message", "mute", "restrict", "kick", "warn", "ban"]


class ReportResolution(View):
    """What a moderator decided. `resolved_by` and `notes` are null for the reporter."""

    action: Literal["dismiss", "none", "delete_message", "mute", "restrict", "kick", "warn", "ban"] = Field(
        description="`dismiss`, or the action taken"
    )
    resolved_by: Uuid | None = Field(description="the moderator (moderators only)")
    resolved_at: Timestamp
    notes: str | None = Field(description="the moderator's notes (moderators only)")


class Report(View):
    """A user's report of a message or a user, in the Whispr client's shape (`status`,
    `resolution`, `auto_escalated`, `updated_at`). The last five keys are there for moderators
    only."""

    id: Uuid
    reporter_id: Uuid
    message_id: Uuid | None
    reported_user_id: Uuid | None
    conversation_id: Uuid | None
    category: ReportCategory
    description: str | None = Field(description="the reporter's words")
    reason: str | None = Field(description="older name of description")
    status: ReportStatus = Field(description="resolved_action: action was taken; resolved_dismissed: dismissed")
    resolution: ReportResolution | None = Field(description="null until resolved")
    auto_escalated: bool = Field(description="always false: nothing escalates reports by itself here")
    created_at: Timestamp
    updated_at: Timestamp = Field(description="when it last changed: resolved_at, else created_at")
    resolved_at: Timestamp | None
    action: ReportAction | None = None
    note: str | None = None
    sanction_id: Uuid | None = None
    resolved_by: Uuid | None = None
    evidence: Json | None = None


class ReportStats(View):
    """The Whispr client's dashboard first (`pending`, `under_review`, `resolved_today`,
    `by_category`), then the fuller counts."""

    pending: int = Field(ge=0)
    under_review: int = Field(ge=0)
    resolved_today: int = Field(ge=0, description="reports resolved since 00:00 UTC")
    by_category: dict[str, int] = Field(description="open reports (pending or under review) per category that has some")
    total: int = Field(ge=0)
    by_status: dict[str, int]
    total_by_category: dict[str, int] = Field(description="all reports per category")
    by_resolution: dict[str, int]
    pending_by_category: dict[str, int]


class Health(View):
    status: Literal["ok"]
    service: str
    version: str = Field(description="the service's version")
    time: str = Field(description="the server's clock, RFC 3339 UTC")
    checks: dict[str, str] = Field(
        default=None,  # type: ignore[arg-type]
        description='readiness only: each dependency checked (store, bus) and "ok"',
        json_schema_extra=_not_nullable,
    )


# --- meta -------------------------------------------------------------------------------------


class NoMeta(View):
    """`meta` is an empty object."""


class CountMeta(View):
    count: int = Field(ge=0)


class DuplicateMeta(View):
    duplicate: bool = Field(description="true when this answer is the original of an earlier identical request")


class ConversationListMeta(View):
    count: int = Field(ge=0)
    has_more: bool
    next_cursor: str | None = Field(
        default=None, description="with `limit` only: the `cursor` of the next page (null on the last one)"
    )


class OffsetPageMeta(View):
    count: int = Field(ge=0)
    has_more: bool
    offset: int = Field(ge=0)


class SearchMeta(View):
    count: int = Field(ge=0)
    has_more: bool
    next_cursor: str | None = Field(description="`cursor` for the next page; null on the last one")


class HistoryMeta(View):
    count: int = Field(ge=0)
    has_more: bool = Field(description="true exactly when more messages exist in that direction")
    next_before_seq: int | None = Field(description="`before_seq` for the next, older page")
    next_after_seq: int | None = Field(description="`after_seq` for the next, newer page")


class ReactionListMeta(View):
    count: int = Field(ge=0)
    counts: dict[str, int] = Field(description="emoji -> number of reactions, most used first")


class MatchesMeta(View):
    count: int = Field(ge=0)
    has_more: bool = Field(description="true when `limit` left matches out")


class PinListMeta(View):
    count: int = Field(ge=0)
    has_more: bool = Field(description="true when pins exist past this page")
    offset: int = Field(ge=0)
    max: int = Field(ge=0, description="the most messages a conversation may have pinned")


class SyncMeta(View):
    count: int = Field(ge=0)
    has_more: bool
    next_cursor: str = Field(description="`since` for the next request")


# --- errors -----------------------------------------------------------------------------------


class Error(View):
    """Every error answer (api.md, "Conventions")."""

    error: str = Field(description="a sentence for humans")
    code: str = Field(description="machine code, e.g. invalid_id, not_member, rate_limited")
    details: Json = Field(description="for 422: field -> list of messages; for 429: retry_after")


# --- how a route answers ------------------------------------------------------------------------


@dataclass(frozen=True)
class ResponseDoc:
    """A route's success answer, for the OpenAPI document.

    `data`: the model of `data` (None: any JSON); `many`: `data` is a list of it; `nullable`:
    `data` may be null; `meta`: the model of `meta`; `bare`: the body is `data` itself with no
    envelope; `statuses`: other success statuses with the same body (a route's own `status` is
    always documented); `description`: what the answer means; `media_type` (and `also`): a body
    that is not JSON. Error answers are read from the code (`shared.http.error_codes`)."""

    data: type[BaseModel] | None = None
    many: bool = False
    nullable: bool = False
    meta: type[BaseModel] = NoMeta
    bare: bool = False
    statuses: tuple[int, ...] = ()
    description: str = ""
    media_type: str = "application/json"
    also: tuple[str, ...] = ()  # other media types of a non-JSON answer
