"""What a socket asks of the core: joins and client pushes as plain synchronous calls on the same
use cases REST uses. The relay runs them in worker threads (`anyio.to_thread.run_sync`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, ValidationError, field_validator

from shared.app import conversations, messages, reactions, receipts
from shared.app.access import require_member
from shared.app.batch_send import Outcome, SendRequest
from shared.app.commands import EditMessage, MarkRead, SendMessage
from shared.app.services import Services
from shared.app.views import message_view
from shared.domain.errors import DomainError, Invalid, NotFound
from shared.domain.ids import parse_uuid
from shared.domain.models import Actor, NewMessage
from shared.storage import history as reads
from shared.storage import messages as msg_store

M = TypeVar("M", bound=BaseModel)


class UnknownEvent(DomainError):
    status = 400
    code = "unknown_event"


def _uuid(value: str | None, name: str) -> str | None:
    return None if value is None else parse_uuid(value, name, invalid=ValueError)


class _Payload(BaseModel):
    model_config = ConfigDict(extra="ignore")


class MessageRef(_Payload):
    message_id: StrictStr

    @field_validator("message_id")
    @classmethod
    def _id(cls, value: str) -> str:
        return parse_uuid(value, "message_id", invalid=ValueError)


class EditPush(EditMessage, MessageRef):
    pass


class DeletePush(MessageRef):
    delete_for_everyone: StrictBool = False


class ReactionPush(MessageRef):
    reaction: StrictStr


class JoinPayload(_Payload):
    last_seq: StrictInt | None = Field(default=None, ge=0, le=2**63 - 1)


class TypingPush(_Payload):
    typing: StrictBool = True


def parse(model: type[M], payload: dict[str, Any]) -> M:
    """The payload as `model`, or the REST API's 422 `validation_failed` with per-field details."""
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        details: dict[str, list[str]] = {}
        for err in exc.errors():
            name = ".".join(str(p) for p in err["loc"]) or "payload"
            details.setdefault(name, []).append(err["msg"])
        raise Invalid("the push has invalid fields", details=details) from exc


# -- joins ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConversationJoin:
    conversation: dict[str, Any]
    show_typing: bool
    last_seq: int  # the conversation's last seq when the join was authorised
    replay: list[dict[str, Any]]  # message objects after the client's last_seq, oldest first
    use_rest: bool  # more to catch up than the relay replays: the client pages through REST


def join_conversation(
    svc: Services, actor: Actor, conversation_id: str, after_seq: int | None, bound: int
) -> ConversationJoin:
    """Authorise a join (active members only) and read what a reconnecting client missed, in the
    same transaction. Messages up to the returned `last_seq` come from here; later ones live."""
    with svc.db.transaction() as conn:
        now = svc.clock()
        conv, me = require_member(conn, conversation_id, actor.user_id)
        view = conversations.render_one(conn, conv, me, now)
        high = conv.last_seq
        replay: list[dict[str, Any]] = []
        use_rest = False
        if after_seq is not None and after_seq < high:
            page = reads.history(conn, conv.id, actor.user_id, now, limit=max(1, bound), after_seq=after_seq)
            found = sorted(page.messages, key=lambda m: m.seq)
            kept = [m for m in found if m.seq <= high]
            if page.has_more and len(kept) == len(found) and (not kept or kept[-1].seq < high):
                use_rest = True
            else:
                replay = [message_view(m) for m in kept]
    return ConversationJoin(view, me.show_typing, high, replay, use_rest)


def conversation_summaries(svc: Services, actor: Actor) -> list[dict[str, Any]]:
    return conversations.list_conversations(svc, actor, archived=None)


# -- client pushes on conversation:<id> -----------------------------------------------------


def _in_conversation(svc: Services, message_id: str, conversation_id: str) -> None:
    """A push on conversation:A acts on A's messages only."""
    with svc.db.transaction() as conn:
        message = msg_store.get_message(conn, message_id)
    if message is None or message.conversation_id != conversation_id:
        raise NotFound("message not found in this conversation", code="message_not_found")


def parse_new_message(payload: dict[str, Any]) -> NewMessage:
    return parse(SendMessage, payload).to_new_message()


def sent_response(sent: messages.Sent) -> dict[str, Any]:
    return {"message": message_view(sent.message, "sent")}


NEW_MESSAGE = "new_message"


def send_request(actor: Actor, conversation_id: str, payload: dict[str, Any]) -> SendRequest:
    """A `new_message` push for group commit (`shared.relay.batching`), or 422 for a bad payload."""
    return SendRequest(actor, conversation_id, parse_new_message(payload))


def send_result(outcome: Outcome) -> dict[str, Any] | Exception:
    """A batch outcome as the push's ok response, or the error to answer with."""
    return outcome if isinstance(outcome, Exception) else sent_response(outcome)


def new_message(svc: Services, actor: Actor, conversation_id: str, payload: dict[str, Any]) -> dict[str, Any]:
    """One send on its own (the channels batch theirs: `shared.relay.batching`)."""
    sent = messages.send_message(svc, actor, conversation_id, parse_new_message(payload))
    return sent_response(sent)


def edit_message(svc: Services, actor: Actor, conversation_id: str, payload: dict[str, Any]) -> dict[str, Any]:
    body = parse(EditPush, payload)
    _in_conversation(svc, body.message_id, conversation_id)
    return {"message": messages.edit_message(svc, actor, body.message_id, body.content, body.signature)}


def delete_message(svc: Services, actor: Actor, conversation_id: str, payload: dict[str, Any]) -> dict[str, Any]:
    body = parse(DeletePush, payload)
    _in_conversation(svc, body.message_id, conversation_id)
    return messages.delete_message(svc, actor, body.message_id, for_everyone=body.delete_for_everyone)


def _watermark(kind: receipts.Kind) -> Callable[[Services, Actor, str, dict[str, Any]], dict[str, Any]]:
    def move(svc: Services, actor: Actor, conversation_id: str, payload: dict[str, Any]) -> dict[str, Any]:
        body = parse(MarkRead, payload)
        if body.up_to_seq is not None and body.message_id is not None:
            raise Invalid.field("up_to_seq", "give up_to_seq or message_id, not both")
        return receipts.move_watermark(
            svc, actor, conversation_id, kind, up_to_seq=body.up_to_seq, message_id=body.message_id
        )

    return move


def add_reaction(svc: Services, actor: Actor, conversation_id: str, payload: dict[str, Any]) -> dict[str, Any]:
    body = parse(ReactionPush, payload)
    _in_conversation(svc, body.message_id, conversation_id)
    added = reactions.add_reaction(svc, actor, body.message_id, body.reaction)
    return {"reaction": added.reaction, "created": added.created}


def remove_reaction(svc: Services, actor: Actor, conversation_id: str, payload: dict[str, Any]) -> dict[str, Any]:
    body = parse(ReactionPush, payload)
    _in_conversation(svc, body.message_id, conversation_id)
    removed = reactions.remove_reaction(svc, actor, body.message_id, body.reaction)
    return {"message_id": body.message_id, "reaction": body.reaction, "removed": bool(removed)}


Push = Callable[[Services, Actor, str, dict[str, Any]], dict[str, Any]]

PUSHES: dict[str, Push] = {
    "new_message": new_message,
    "edit_message": edit_message,
    "delete_message": delete_message,
    "message_delivered": _watermark("delivered"),
    "message_read": _watermark("read"),
    "mark_read": _watermark("read"),
    "add_reaction": add_reaction,
    "remove_reaction": remove_reaction,
}

TYPING_EVENTS = ("user_typing", "typing_start", "typing_stop")
