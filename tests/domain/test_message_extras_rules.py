"""Pure rules for reactions, pins, drafts, attachments, forwarding and mark unread."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from shared.config import Limits
from shared.domain import rules
from shared.domain.emoji import is_single_emoji
from shared.domain.errors import DomainError, Forbidden, Invalid, TooLarge
from shared.domain.models import Conversation, Member, Message

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)
LIMITS = Limits()


@pytest.mark.parametrize(
    "text",
    ["👍", "👍🏽", "❤️", "❤", "👨‍👩‍👧‍👦", "🇫🇷", "1️⃣", "#⃣", "🏴󠁧󠁢󠁳󠁣󠁴󠁿", "🏳️‍🌈", "👁️‍🗨️", "🧑🏽‍💻", "❤️‍🔥", "🫠"],
)
def test_one_emoji_grapheme_is_a_reaction(text: str) -> None:
    assert is_single_emoji(text)
    assert rules.check_reaction(f" {text}\n") == text


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        "a",
        "1",
        "#",
        "*",
        "é",
        "ab",
        "👍👍",
        "👍a",
        "🇫",
        "🇫🇷🇩🇪",
        "❤︎",
        "\u200d",
        "\ufe0f",
        "\u20e3",
        "👍\u200d",
        "😀\u0301",
        "👍" * 40,
    ],
)
def test_anything_else_is_not(text: str) -> None:
    assert not is_single_emoji(text)
    with pytest.raises(Invalid) as error:
        rules.check_reaction(text)
    assert error.value.code == "invalid_reaction" and "reaction" in error.value.details


def test_reaction_limits_at_their_boundaries() -> None:
    four, five = ["a", "b", "c", "d"], ["a", "b", "c", "d", "e"]
    rules.check_reaction_limits("e", four, four, LIMITS)  # the 5th
    rules.check_reaction_limits("a", five, five, LIMITS)  # a repeat is always fine
    with pytest.raises(Invalid) as per_user:
        rules.check_reaction_limits("f", five, five, LIMITS)
    assert per_user.value.code == "too_many_reactions"
    fifty = [str(i) for i in range(50)]
    rules.check_reaction_limits("0", [], fifty, LIMITS)  # an emoji already on the message
    rules.check_reaction_limits("new", [], fifty[:49], LIMITS)  # the 50th distinct
    with pytest.raises(Invalid) as per_message:
        rules.check_reaction_limits("new", [], fifty, LIMITS)
    assert per_message.value.code == "too_many_distinct_reactions"


def _message(**changes: object) -> Message:
    fields: dict[str, object] = {
        "id": "m",
        "conversation_id": "c",
        "seq": 3,
        "sender_id": "author",
        "sender_device_id": None,
        "client_random": 1,
        "message_type": "text",
        "content": "x",
        "metadata": {},
        "reply_to_id": None,
        "forwarded_from_id": None,
        "signature": None,
        "sender_public_key": None,
        "sent_at": NOW,
    }
    fields.update(changes)
    return Message(**fields)  # type: ignore[arg-type]


def _member(user_id: str, role: str) -> Member:
    return Member(conversation_id="c", user_id=user_id, role=role, joined_at=NOW)  # type: ignore[arg-type]


def _conversation(e2ee: bool = False) -> Conversation:
    metadata = {"e2ee": {"enabled": True}} if e2ee else {}
    return Conversation("c", "group", "g", metadata, "author", NOW, NOW, True, 3)


def test_pin_rules() -> None:
    mine, theirs = _message(sender_id="me"), _message()
    rules.check_pinnable(mine, _member("me", "member"))
    for role in ("moderator", "admin", "owner"):
        rules.check_pinnable(theirs, _member("me", role))
    with pytest.raises(Forbidden):
        rules.check_pinnable(theirs, _member("me", "member"))
    for unpinnable in (_message(message_type="system", sender_id="me"), _message(is_deleted=True, sender_id="me")):
        with pytest.raises(Invalid):
            rules.check_pinnable(unpinnable, _member("me", "owner"))
    rules.check_pin_limit(9, LIMITS)
    with pytest.raises(Invalid):
        rules.check_pin_limit(10, LIMITS)
    rules.check_unpin(theirs, _member("me", "member"), pinned_by="me")
    rules.check_unpin(theirs, _member("me", "moderator"), pinned_by="author")
    with pytest.raises(Forbidden):
        rules.check_unpin(theirs, _member("me", "member"), pinned_by="author")


def test_draft_attachment_forward_and_unread_rules() -> None:
    rules.check_draft("x" * LIMITS.max_draft_bytes, {}, LIMITS)
    with pytest.raises(TooLarge):
        rules.check_draft("x" * (LIMITS.max_draft_bytes + 1), {}, LIMITS)
    assert rules.check_attachment(" media ", "document", {}, LIMITS) == "media"
    for media_id, media_type in (("", "image"), ("m" * 129, "image"), ("m", "gif")):
        with pytest.raises(Invalid):
            rules.check_attachment(media_id, media_type, {}, LIMITS)
    rules.check_attachment_count(19, LIMITS)
    with pytest.raises(Invalid):
        rules.check_attachment_count(20, LIMITS)
    rules.check_forwardable(_message(), _conversation())
    for message, conv in (
        (_message(is_deleted=True), _conversation()),
        (_message(message_type="system"), _conversation()),
        (_message(expires_at=NOW), _conversation()),
        (_message(), _conversation(e2ee=True)),
    ):
        with pytest.raises(Invalid) as error:
            rules.check_forwardable(message, conv)
        assert error.value.code == "not_forwardable"
    assert rules.check_forward_targets(["a", "b", "a"], LIMITS) == ["a", "b"]
    assert len(rules.check_forward_targets([str(i) for i in range(20)], LIMITS)) == 20
    for targets in ([], [str(i) for i in range(21)]):
        with pytest.raises(DomainError):
            rules.check_forward_targets(targets, LIMITS)
    assert rules.unread_watermark(1) == 0 and rules.unread_watermark(7) == 6
