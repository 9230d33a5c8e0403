"""Request commands (pydantic): what REST bodies, socket pushes and gRPC calls ask of the use cases, validated
the same way wherever they come from. Extra fields are ignored: clients send some the token already says."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
)

from shared.domain.errors import Invalid
from shared.domain.ids import parse_uuid
from shared.domain.models import NewMessage

# A UUID in a body: validated by the model's own validators (a 422 naming the field); the schema
# says `format: uuid` for the OpenAPI document.
UuidText = Annotated[StrictStr, WithJsonSchema({"type": "string", "format": "uuid"})]


class Body(BaseModel):
    model_config = ConfigDict(extra="ignore")

    # Fields kept byte for byte (stored as bytes) may hold NUL; every other text goes into
    # PostgreSQL text columns, which cannot: a NUL there is a 422, not a 500 from the store.
    nul_allowed: ClassVar[frozenset[str]] = frozenset({"content"})

    @field_validator("*")
    @classmethod
    def _no_nul(cls, value: Any, info: ValidationInfo) -> Any:
        texts = [value] if isinstance(value, str) else value if isinstance(value, list) else []
        if info.field_name not in cls.nul_allowed and any(isinstance(t, str) and "\x00" in t for t in texts):
            raise ValueError("must not contain NUL characters")
        return value

    def aliased(self, name: str, older: str) -> Any:
        """The value of field `name`, or else of `older`, the name it had before clients settled
        on `name` (both are accepted); 422 when both are given and differ."""
        value, old_value = getattr(self, name), getattr(self, older)
        if value is not None and old_value is not None and value != old_value:
            raise Invalid.field(name, f"differs from {older}, its other name: give one of them")
        return value if value is not None else old_value


def _uuid_list(values: list[str]) -> list[str]:
    return [parse_uuid(v, "user_ids", invalid=ValueError) for v in values]


class CreateConversation(Body):
    type: Literal["direct", "group"] = "direct"
    other_user_id: UuidText | None = None
    user_ids: list[UuidText] = Field(default_factory=list, max_length=2048)
    name: StrictStr | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)

    _ids = field_validator("user_ids")(_uuid_list)

    @field_validator("other_user_id")
    @classmethod
    def _other(cls, value: str | None) -> str | None:
        return None if value is None else parse_uuid(value, "other_user_id", invalid=ValueError)


class UpdateConversation(Body):
    name: StrictStr | None = None
    metadata: dict[str, Any] | None = None


class UpdateSettings(Body):
    notifications_enabled: StrictBool | None = None
    muted_until: datetime | None = None
    show_read_receipts: StrictBool | None = None
    show_typing: StrictBool | None = None
    custom_name: StrictStr | None = None

    @field_validator("muted_until")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        try:
            return value.astimezone(timezone.utc)
        except OverflowError:
            raise ValueError("out of range") from None


class AddMembers(Body):
    user_id: UuidText | None = None
    user_ids: list[UuidText] = Field(default_factory=list, max_length=2048)

    _ids = field_validator("user_ids")(_uuid_list)

    @field_validator("user_id")
    @classmethod
    def _one(cls, value: str | None) -> str | None:
        return None if value is None else parse_uuid(value, "user_id", invalid=ValueError)


class ChangeRole(Body):
    role: Literal["owner", "admin", "moderator", "member"]


class SendMessage(Body):
    content: StrictStr
    message_type: Literal["text", "media"] = "text"
    client_random: Annotated[StrictInt, WithJsonSchema({"type": "integer", "minimum": 0, "maximum": 2**32 - 1})]
    metadata: dict[str, Any] = Field(default_factory=dict)
    reply_to_id: UuidText | None = None
    signature: StrictStr | None = None
    sender_public_key: StrictStr | None = None
    expires_in_seconds: StrictInt | None = None

    @field_validator("reply_to_id")
    @classmethod
    def _reply(cls, value: str | None) -> str | None:
        return None if value is None else parse_uuid(value, "reply_to_id", invalid=ValueError)

    def to_new_message(self) -> NewMessage:
        """The core's request object (REST and socket sends both build it here)."""
        return NewMessage(
            content=self.content,
            message_type=self.message_type,
            client_random=self.client_random,
            metadata=self.metadata,
            reply_to_id=self.reply_to_id,
            signature=self.signature,
            sender_public_key=self.sender_public_key,
            expires_in_seconds=self.expires_in_seconds,
        )


class EditMessage(Body):
    content: StrictStr
    signature: StrictStr | None = None


class MarkRead(Body):
    up_to_seq: StrictInt | None = Field(default=None, ge=0)
    message_id: UuidText | None = None

    @field_validator("message_id")
    @classmethod
    def _mid(cls, value: str | None) -> str | None:
        return None if value is None else parse_uuid(value, "message_id", invalid=ValueError)


class AddReaction(Body):
    reaction: StrictStr  # one emoji grapheme; checked by the rules (422 invalid_reaction)


class SaveDraft(Body):
    content: StrictStr = ""
    metadata: dict[str, Any] = Field(default_factory=dict)


class AddAttachment(Body):
    media_id: StrictStr
    media_type: Literal["image", "video", "audio", "document"]
    metadata: dict[str, Any] = Field(default_factory=dict)


class ForwardMessage(Body):
    conversation_ids: list[UuidText] = Field(min_length=1, max_length=1000)

    @field_validator("conversation_ids")
    @classmethod
    def _targets(cls, values: list[str]) -> list[str]:
        return [parse_uuid(v, "conversation_ids", invalid=ValueError) for v in values]


class ScheduleMessage(Body):
    conversation_id: StrictStr
    content: StrictStr
    message_type: Literal["text", "media"] = "text"
    scheduled_at: datetime  # RFC 3339; a time without offset is taken as UTC
    client_random: StrictInt | None = None  # idempotency of the POST and of the send; made up if absent
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("conversation_id")
    @classmethod
    def _conversation(cls, value: str) -> str:
        return parse_uuid(value, "conversation_id", invalid=ValueError)


class UpdateScheduled(Body):
    content: StrictStr | None = None
    message_type: Literal["text", "media"] | None = None
    scheduled_at: datetime | None = None
    metadata: dict[str, Any] | None = None
