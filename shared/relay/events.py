"""The socket contract: every event the relay sends to clients and every push it accepts, with
its payload's shape. The AsyncAPI document (`shared.relay.asyncapi`) is generated from this
registry, and a test fails when the relay sends an event that is not here (`undocumented`).

To add an event: record it in the core (`Event("my_event", payload, topics)`) and describe it
here with `ServerEvent`; `docs/realtime.md` explains the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel

from shared.app.commands import EditMessage, MarkRead, SendMessage
from shared.http.responses import (
    Attachment,
    Conversation,
    Draft,
    Member,
    Message,
    MessagePin,
    Reaction,
    Sanction,
    Settings,
    Timestamp,
    Uuid,
)
from shared.relay import calls, protocol

TopicKind = Literal["user", "conversation", "phoenix"]
USER: tuple[TopicKind, ...] = ("user",)
CONVERSATION: tuple[TopicKind, ...] = ("conversation",)
BOTH: tuple[TopicKind, ...] = ("conversation", "user")


class _Doc(BaseModel):
    model_config = ConfigDict(extra="allow")


# -- payloads of server -> client events ----------------------------------------------------


class MessageEnvelope(_Doc):
    message: Message


class MessageDeleted(_Doc):
    message_id: Uuid
    conversation_id: Uuid
    seq: int
    delete_for_everyone: bool = Field(description="false: deleted for the caller only (their other devices hear it)")


class DeliveryStatusEvent(_Doc):
    message_id: Uuid = Field(description="the latest of the sender's messages the watermark covers")
    conversation_id: Uuid
    user_id: Uuid = Field(description="the reader (or receiving device's user)")
    status: Literal["delivered", "read"]
    up_to_seq: int = Field(description="every message of the sender up to this seq has this status")


class ConversationRead(_Doc):
    conversation_id: Uuid
    user_id: Uuid
    up_to_seq: int
    device_id: str | None = Field(description="the device that moved the watermark")


class Typing(_Doc):
    user_id: Uuid
    typing: bool = Field(description="false when the user stopped, or after the typing expiry without news")


class ReactionAddedEvent(_Doc):
    message_id: Uuid
    conversation_id: Uuid
    seq: int
    user_id: Uuid
    reaction: Reaction


class ReactionRemovedEvent(_Doc):
    message_id: Uuid
    conversation_id: Uuid
    seq: int
    user_id: Uuid
    reaction: str = Field(description="the emoji removed")


class MessageUnread(_Doc):
    message_id: Uuid
    conversation_id: Uuid
    user_id: Uuid
    last_read_seq: int = Field(description="the watermark now (before this message)")
    device_id: str | None


class ConversationArchived(_Doc):
    conversation_id: Uuid
    archived: bool


class ConversationPinned(_Doc):
    conversation_id: Uuid
    pinned: bool


class ConversationEnvelope(_Doc):
    conversation: Conversation


class ConversationDeleted(_Doc):
    conversation_id: Uuid


class SettingsChanged(_Doc):
    conversation_id: Uuid
    settings: Settings


class MemberChanged(_Doc):
    conversation_id: Uuid
    user_id: Uuid
    member: Member


class MessageExpired(_Doc):
    message_id: Uuid
    conversation_id: Uuid


class MessagePinned(MessagePin):
    seq: int


class MessageUnpinned(_Doc):
    message_id: Uuid
    conversation_id: Uuid
    seq: int
    unpinned_by: Uuid
    unpinned_at: Timestamp


class AttachmentAdded(_Doc):
    message_id: Uuid
    conversation_id: Uuid
    seq: int
    attachment: Attachment


class DraftUpdated(_Doc):
    conversation_id: Uuid
    draft: Draft | None = Field(description="null: the draft was deleted")
    device_id: str | None


class SenderKeyChanged(_Doc):
    user_id: Uuid
    device_id: str | None
    conversation_id: Uuid


class SanctionEvent(_Doc):
    sanction: Sanction


class ReportResolution(_Doc):
    action: str | None = Field(description="what was decided: dismiss, warn, ban...")
    resolved_by: None = Field(description="who decided: moderators only, so always null here")
    resolved_at: Timestamp
    notes: None = Field(description="the moderator's notes: moderators only, so always null here")


class ReportResolved(_Doc):
    report_id: Uuid
    status: str
    resolution: ReportResolution = Field(description="as `resolution` in the reporter's GET /reports/:id")


class Summaries(_Doc):
    summaries: list[Conversation] = Field(description="all of the user's conversations, as GET /conversations")


class PresenceMeta(_Doc):
    phx_ref: str
    device_id: str | None
    online_at: Timestamp
    status: str = Field(default="online", description="the device's presence status")
    last_seen: str | None = Field(default=None, description="in leaves: when the device left")


class PresenceEntry(_Doc):
    metas: list[PresenceMeta]


class PresenceState(RootModel[dict[str, PresenceEntry]]):
    """`{user_id: {metas: [...]}}`: who is on the topic now (Phoenix Presence)."""


class PresenceDiff(_Doc):
    joins: dict[str, PresenceEntry]
    leaves: dict[str, PresenceEntry]


class Empty(_Doc):
    pass


# -- payloads of client -> server pushes and their replies ---------------------------------


class JoinConversationReply(_Doc):
    conversation: Conversation
    catch_up: Literal["use_rest"] | None = Field(
        default=None, description="more was missed than the relay replays: page through REST history"
    )
    last_seq: int | None = None


class JoinUserReply(_Doc):
    user_id: Uuid


class DeleteReply(MessageDeleted):
    pass


class WatermarkReply(_Doc):
    conversation_id: Uuid
    user_id: Uuid
    last_read_seq: int | None = Field(default=None, description="message_read / mark_read: the read watermark now")
    last_delivered_seq: int | None = Field(default=None, description="message_delivered: the delivery watermark now")


class AddReactionReply(_Doc):
    reaction: Reaction
    created: bool = Field(description="false: the caller already had this reaction")


class RemoveReactionReply(_Doc):
    message_id: Uuid
    reaction: str
    removed: bool


class ErrorReply(_Doc):
    reason: str = Field(description="the REST API's error code (e.g. not_authorized, not_found, validation_failed)")
    message: str
    details: dict[str, Any]
    retry_after: int | None = None


# -- the registry ------------------------------------------------------------------------


@dataclass(frozen=True)
class EventSpec:
    """An event on `topics` (kinds of topic), with its payload's shape."""

    name: str
    topics: tuple[TopicKind, ...]
    summary: str
    payload: type[BaseModel]


@dataclass(frozen=True)
class ServerEvent(EventSpec):
    """An event the relay sends to clients."""


@dataclass(frozen=True)
class ClientPush(EventSpec):
    """A push a client sends on `topics`; its `phx_reply` answers `reply` (ok) or `ErrorReply`."""

    reply: type[BaseModel] | None = None  # None: no reply is sent unless the push carries a ref


SERVER_EVENTS: tuple[ServerEvent, ...] = (
    ServerEvent("new_message", BOTH, "A message was sent (not echoed on the sender's own user topic)", MessageEnvelope),
    ServerEvent("message_updated", BOTH, "A message was edited", MessageEnvelope),
    ServerEvent("message_deleted", BOTH, "A message was deleted for everyone, or for this user", MessageDeleted),
    ServerEvent("message_expired", CONVERSATION, "An ephemeral message expired", MessageExpired),
    ServerEvent("delivery_status", USER, "To a sender: their messages were delivered or read", DeliveryStatusEvent),
    ServerEvent("conversation_read", BOTH, "A member moved their read watermark", ConversationRead),
    ServerEvent("message_unread", USER, "A message was marked unread (read ticks go back)", MessageUnread),
    ServerEvent("user_typing", CONVERSATION, "A member started or stopped typing (never stored)", Typing),
    ServerEvent("reaction_added", CONVERSATION, "A member reacted to a message", ReactionAddedEvent),
    ServerEvent("reaction_removed", CONVERSATION, "A member removed their reaction", ReactionRemovedEvent),
    ServerEvent("message_pinned", CONVERSATION, "A message was pinned", MessagePinned),
    ServerEvent("message_unpinned", CONVERSATION, "A message was unpinned", MessageUnpinned),
    ServerEvent("attachment_added", CONVERSATION, "Media was linked to a message", AttachmentAdded),
    ServerEvent("sender_key_changed", BOTH, "A member's device key changed (safety number)", SenderKeyChanged),
    ServerEvent("conversation_created", BOTH, "The user is in a new conversation", ConversationEnvelope),
    ServerEvent("conversation_updated", BOTH, "Name or metadata changed", ConversationEnvelope),
    ServerEvent("conversation_deleted", BOTH, "The conversation was deleted", ConversationDeleted),
    ServerEvent("conversation_settings_updated", USER, "The user's own settings changed", SettingsChanged),
    ServerEvent("conversation_archived", USER, "The user archived or unarchived", ConversationArchived),
    ServerEvent("conversation_pinned", USER, "The user pinned or unpinned", ConversationPinned),
    ServerEvent("member_added", BOTH, "A member joined", MemberChanged),
    ServerEvent("member_removed", BOTH, "A member left or was removed", MemberChanged),
    ServerEvent("member_role_changed", BOTH, "A member's role changed", MemberChanged),
    ServerEvent("draft_updated", USER, "The user's draft changed on one of their devices", DraftUpdated),
    ServerEvent("moderation.sanction_applied", USER, "The user was sanctioned", SanctionEvent),
    ServerEvent("moderation.sanction_revoked", USER, "A sanction on the user was lifted", SanctionEvent),
    ServerEvent("moderation.report_resolved", USER, "A report the user filed was resolved", ReportResolved),
    ServerEvent("conversation_summaries", USER, "Right after joining user:<id>: all conversations", Summaries),
    ServerEvent("presence_state", CONVERSATION, "Right after joining: who is online", PresenceState),
    ServerEvent("presence_diff", CONVERSATION, "Who came online or left since", PresenceDiff),
    ServerEvent(protocol.REPLY, ("user", "conversation", "phoenix"), "The reply to a push with a ref", Empty),
    ServerEvent(protocol.CLOSE, BOTH, "The server ended this join (e.g. replaced by a new join)", Empty),
    ServerEvent(protocol.ERROR, BOTH, "The channel failed; the client rejoins", Empty),
)


class TypingPush(_Doc):
    typing: bool = Field(default=True, description="typing_start/typing_stop need no payload")


class JoinConversation(_Doc):
    last_seq: int | None = Field(
        default=None, ge=0, description="the last seq the client has: the relay sends every message after it first"
    )


class EditPush(EditMessage):
    message_id: Uuid


CLIENT_PUSHES: tuple[ClientPush, ...] = (
    ClientPush(
        protocol.JOIN, CONVERSATION, "Join conversation:<id> (active members)", JoinConversation, JoinConversationReply
    ),
    ClientPush(protocol.JOIN, USER, "Join user:<own id>", Empty, JoinUserReply),
    ClientPush(protocol.LEAVE, BOTH, "Leave the topic", Empty, Empty),
    ClientPush(
        protocol.HEARTBEAT, ("phoenix",), "Keep the socket alive (every 30 s; silent 60 s: closed)", Empty, Empty
    ),
    ClientPush("new_message", CONVERSATION, "Send a message", SendMessage, MessageEnvelope),
    ClientPush("edit_message", CONVERSATION, "Edit one's message", EditPush, MessageEnvelope),
    ClientPush("delete_message", CONVERSATION, "Delete a message", calls.DeletePush, DeleteReply),
    ClientPush("message_delivered", CONVERSATION, "Acknowledge delivery", MarkRead, WatermarkReply),
    ClientPush("message_read", CONVERSATION, "Move the read watermark", MarkRead, WatermarkReply),
    ClientPush("mark_read", CONVERSATION, "Same as message_read", MarkRead, WatermarkReply),
    ClientPush("add_reaction", CONVERSATION, "React to a message", calls.ReactionPush, AddReactionReply),
    ClientPush("remove_reaction", CONVERSATION, "Remove one's reaction", calls.ReactionPush, RemoveReactionReply),
    ClientPush("user_typing", CONVERSATION, "Typing or not", TypingPush, Empty),
    ClientPush("typing_start", CONVERSATION, "Started typing", Empty, Empty),
    ClientPush("typing_stop", CONVERSATION, "Stopped typing", Empty, Empty),
)

SERVER_EVENT_NAMES = frozenset(event.name for event in SERVER_EVENTS)


def check_pushes_documented() -> list[str]:
    """The pushes the relay accepts (`shared.relay.calls`) that the registry lacks."""
    accepted = {*calls.PUSHES, *calls.TYPING_EVENTS}
    return sorted(accepted - {push.name for push in CLIENT_PUSHES})
