"""Moderation rules (rules.md: Abuse) as pure functions and plain objects: report categories,
who is a global moderator, who may sanction whom. No I/O, no clock."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, get_args

from shared.config import Limits
from shared.domain.errors import Forbidden, Invalid
from shared.domain.models import Conversation, Member
from shared.domain.rules import ROLE_RANK

# rules.md's categories, then the two more the Whispr client offers (`offensive`, `nudity`),
# kept as the client names them (docs/decisions.md, Moderation).
ReportCategory = Literal[
    "harassment",
    "violence",
    "spam",
    "misinformation",
    "adult",
    "ip_violation",
    "illegal",
    "other",
    "offensive",
    "nudity",
]
CATEGORIES: tuple[str, ...] = get_args(ReportCategory)
# The Whispr client's statuses. Nothing here puts a report under review (no route does), but
# the client filters on it and a resolution accepts it. `resolved` is the older name of both
# resolved statuses (a queue filter).
ReportStatus = Literal["pending", "under_review", "resolved_action", "resolved_dismissed"]
STATUSES: tuple[str, ...] = get_args(ReportStatus)
OPEN_STATUSES: tuple[str, ...] = ("pending", "under_review")
RESOLVED_STATUSES: tuple[str, ...] = ("resolved_action", "resolved_dismissed")
Resolution = Literal["action_taken", "dismissed"]
RESOLUTIONS: tuple[str, ...] = ("action_taken", "dismissed")
SanctionKind = Literal["mute", "restrict", "kick"]
SANCTION_KINDS: tuple[str, ...] = ("mute", "restrict", "kick")
# The Whispr client names the kinds `type`: mute, kick, and shadow_restrict for restrict.
SanctionType = Literal["mute", "kick", "shadow_restrict", "restrict"]
SANCTION_TYPES: dict[str, str] = {"mute": "mute", "kick": "kick", "shadow_restrict": "restrict", "restrict": "restrict"}
# `warn` and `ban` are the platform's sanctions, user-service's: the client sets them there right
# after resolving; here they are recorded as the decision and do nothing else.
ReportAction = Literal["none", "delete_message", "mute", "restrict", "kick", "warn", "ban"]
ACTIONS: tuple[str, ...] = ("none", "delete_message", "mute", "restrict", "kick", "warn", "ban")
# What a moderator may ask for when resolving: an action, `dismiss`, or the client's shadow_restrict.
ResolveAction = Literal[
    "dismiss", "none", "delete_message", "mute", "restrict", "shadow_restrict", "kick", "warn", "ban"
]

# What each sanction forbids while in force: `mute` and `restrict` forbid sending messages;
# `restrict` also forbids the other writes in the conversation (reactions, pins, attachments);
# `kick` removes the member, who cannot be added back until it expires.
BLOCKS_SENDING: tuple[str, ...] = ("mute", "restrict")
BLOCKS_INTERACTING: tuple[str, ...] = ("restrict",)
BLOCKS_JOINING: tuple[str, ...] = ("kick",)

MODERATOR_ROLES = frozenset({"moderator", "admin"})


@dataclass
class Report:
    id: str
    reporter_id: str
    message_id: str | None
    reported_user_id: str | None
    conversation_id: str | None
    category: str
    reason: str | None
    status: str
    resolution: str | None
    action: str | None
    note: str | None
    sanction_id: str | None
    evidence: dict[str, Any] | None
    resolved_by: str | None
    resolved_at: datetime | None
    created_at: datetime


@dataclass
class Sanction:
    id: str
    conversation_id: str
    user_id: str
    kind: str
    reason: str | None
    created_by: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None = None

    def in_force(self, now: datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


def is_global_moderator(user_id: str, claims: dict[str, Any], configured: Collection[str]) -> bool:
    """A service-wide moderator: the token says so (`roles`/`role` containing "moderator" or
    "admin", or `moderator: true`), or the user is in WHISPR_MODERATOR_IDS."""
    if user_id.lower() in configured:
        return True
    if claims.get("moderator") is True or claims.get("is_moderator") is True:
        return True
    for key in ("roles", "role"):
        value = claims.get(key)
        names = value.replace(",", " ").split() if isinstance(value, str) else value
        if isinstance(names, list) and any(isinstance(n, str) and n.lower() in MODERATOR_ROLES for n in names):
            return True
    return False


def check_category(category: str) -> str:
    if category not in CATEGORIES:
        raise Invalid.field("category", f"must be one of {', '.join(CATEGORIES)}")
    return category


def queue_statuses(status: str) -> tuple[str, ...]:
    """The statuses a queue filter names: one of STATUSES, or `resolved` (both resolved ones)."""
    if status == "resolved":
        return RESOLVED_STATUSES
    if status not in STATUSES:
        raise Invalid.field("status", f"must be one of {', '.join(STATUSES)} (or resolved)")
    return (status,)


def resolved_status(resolution: str) -> str:
    return "resolved_dismissed" if resolution == "dismissed" else "resolved_action"


def clean_text(value: str | None, field: str, max_chars: int) -> str | None:
    cleaned = (value or "").strip()
    if len(cleaned) > max_chars:
        raise Invalid.field(field, f"at most {max_chars} characters")
    return cleaned or None


def sanction_kind(value: str, field: str = "type") -> str:
    """The kind a client's `type` (or the older `kind`) names: 422 for anything else."""
    if value not in SANCTION_TYPES:
        raise Invalid.field(field, "must be one of mute, kick, shadow_restrict (or restrict)")
    return SANCTION_TYPES[value]


def sanction_type(kind: str) -> str:
    """The client's name for a kind (`type` in views)."""
    return "shadow_restrict" if kind == "restrict" else kind


def sanction_expiry(
    now: datetime, duration_seconds: int | None, expires_at: datetime | None, limits: Limits
) -> datetime | None:
    """When a sanction ends: `duration_seconds` from now, or `expires_at` (not both), in the
    future and at most `max_sanction_seconds` away; neither: None, in force until lifted."""
    if duration_seconds is not None and expires_at is not None:
        raise Invalid.field("duration_seconds", "give duration_seconds or expires_at, not both")
    longest = limits.max_sanction_seconds
    if duration_seconds is not None:
        if not 1 <= duration_seconds <= longest:
            raise Invalid.field("duration_seconds", f"must be 1 to {longest} seconds")
        return now + timedelta(seconds=duration_seconds)
    if expires_at is None:
        return None
    if expires_at <= now:
        raise Invalid.field("expires_at", "must be in the future")
    if expires_at - now > timedelta(seconds=longest):
        raise Invalid.field("expires_at", f"at most {longest} seconds from now")
    return expires_at


def check_can_sanction(
    actor_id: str,
    actor_member: Member | None,
    target: Member | None,
    target_id: str,
    *,
    global_moderator: bool,
) -> Member:
    """Conversation owners/admins/moderators sanction members ranked below them; global
    moderators anyone but themselves. Returns the target's membership."""
    if not global_moderator:
        if actor_member is None or not actor_member.is_active:
            raise Forbidden("you are not a member of this conversation", code="not_a_member")
        if ROLE_RANK[actor_member.role] < ROLE_RANK["moderator"]:
            raise Forbidden("only moderators, admins and owners can sanction members", code="insufficient_role")
    if target_id == actor_id:
        raise Invalid.field("user_id", "you cannot sanction yourself", code="cannot_sanction_self")
    if target is None:
        raise Invalid.field("user_id", "is not a member of this conversation", code="member_not_found")
    if not global_moderator:
        assert actor_member is not None
        if ROLE_RANK[target.role] >= ROLE_RANK[actor_member.role]:
            raise Forbidden("you can sanction only members ranked below you", code="insufficient_role")
    return target


def check_kick(conv: Conversation, target: Member, active_owners: int) -> None:
    if conv.type != "group":
        raise Invalid("only group members can be kicked", code="not_a_group", details={"kind": ["groups only"]})
    if target.role == "owner" and active_owners <= 1:
        raise Forbidden("the last owner cannot be kicked", code="last_owner")


def resolution_of(resolution: str | None, action: str | None) -> tuple[str, str]:
    """(resolution, action) of a resolve request. The client sends only `action` (`dismiss`,
    or what was done); the older shape gives `resolution` (action_taken or dismissed) with an
    optional `action`. `shadow_restrict` is restrict."""
    if action == "shadow_restrict":
        action = "restrict"
    if action == "dismiss":
        if resolution not in (None, "dismissed"):
            raise Invalid.field("action", "dismiss goes with the resolution dismissed")
        return "dismissed", "none"
    if resolution is None:
        if action is None:
            raise Invalid.field("action", f"give the action: dismiss, {', '.join(ACTIONS)}")
        resolution = "action_taken"
    action = action or "none"
    if resolution not in RESOLUTIONS:
        raise Invalid.field("resolution", f"must be one of {', '.join(RESOLUTIONS)}")
    if action not in ACTIONS:
        raise Invalid.field("action", f"must be one of dismiss, {', '.join(ACTIONS)}")
    if resolution == "dismissed" and action != "none":
        raise Invalid.field("action", "a dismissed report takes no action")
    return resolution, action
