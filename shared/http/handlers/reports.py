"""REST handlers for /reports: user reports, the moderators' queue, stats and resolution."""

from __future__ import annotations

from pydantic import Field, StrictInt, StrictStr, ValidationInfo, field_validator

from shared.app import moderation as uc
from shared.app.commands import Body
from shared.domain.ids import parse_uuid
from shared.domain.moderation import ReportCategory, Resolution, ResolveAction
from shared.http.params import parse_int
from shared.http.routing import Call, QueryParam, Reply

DEFAULT_LIMIT, MAX_LIMIT = 50, 100
PAGE_QUERY = (
    QueryParam(
        "limit",
        type="integer",
        minimum=1,
        maximum=MAX_LIMIT,
        default=DEFAULT_LIMIT,
        description="page size (larger values are capped)",
    ),
    QueryParam("offset", type="integer", minimum=0, default=0),
)


class CreateReport(Body):
    """A report on a message (`message_id`) or on a user (`reported_user_id`, optionally in
    `conversation_id`). `category`: harassment, violence, spam, misinformation, adult,
    ip_violation, illegal, other, or the client's offensive and nudity; `description`: the
    reporter's words, kept either way.
    `user_id` and `reason` are older names of `reported_user_id` and `description`."""

    message_id: StrictStr | None = None
    reported_user_id: StrictStr | None = None
    conversation_id: StrictStr | None = None
    category: ReportCategory
    description: StrictStr | None = Field(default=None, max_length=10_000)
    user_id: StrictStr | None = Field(default=None, description="older name of reported_user_id")
    reason: StrictStr | None = Field(default=None, max_length=10_000, description="older name of description")

    @field_validator("message_id", "reported_user_id", "user_id", "conversation_id")
    @classmethod
    def _uuid(cls, value: str | None, info: ValidationInfo) -> str | None:
        return None if value is None else parse_uuid(value, info.field_name or "id", invalid=ValueError)


class ResolveReport(Body):
    """`action`: `dismiss`, or what the moderator does: none, delete_message, or mute,
    shadow_restrict (restrict) or kick the reported user in the report's conversation, for
    `duration_seconds` or until lifted; `warn` and `ban` are recorded (user-service sets those
    sanctions). `notes`: the moderator's, never shown to the reporter.
    The older shape gives `resolution` (action_taken or dismissed) and `note`."""

    action: ResolveAction | None = None
    notes: StrictStr | None = Field(default=None, max_length=10_000)
    duration_seconds: StrictInt | None = None
    resolution: Resolution | None = None
    note: StrictStr | None = Field(default=None, max_length=10_000, description="older name of notes")


def _page(call: Call) -> tuple[int, int]:
    limit = parse_int(call.query.get("limit"), "limit", minimum=1) or DEFAULT_LIMIT
    offset = parse_int(call.query.get("offset"), "offset", minimum=0) or 0
    return min(limit, MAX_LIMIT), offset


def create_report(call: Call) -> Reply:
    body: CreateReport = call.body
    view = uc.create_report(
        call.services,
        call.actor,
        category=body.category,
        message_id=body.message_id,
        user_id=body.aliased("reported_user_id", "user_id"),
        conversation_id=body.conversation_id,
        reason=body.aliased("description", "reason"),
    )
    return Reply(view, status=201)


def list_reports(call: Call) -> Reply:
    limit, offset = _page(call)
    page = uc.list_my_reports(call.services, call.actor, limit=limit, offset=offset)
    return Reply(page.reports, meta={"count": len(page.reports), "has_more": page.has_more, "offset": offset})


def get_report(call: Call) -> Reply:
    return Reply(uc.get_report(call.services, call.actor, call.path["report_id"]))


def queue(call: Call) -> Reply:
    limit, offset = _page(call)
    page = uc.report_queue(
        call.services,
        call.actor,
        limit=limit,
        offset=offset,
        status=call.query.get("status") or "pending",
        category=call.query.get("category") or None,
    )
    return Reply(page.reports, meta={"count": len(page.reports), "has_more": page.has_more, "offset": offset})


def stats(call: Call) -> Reply:
    return Reply(uc.report_stats(call.services, call.actor))


def resolve(call: Call) -> Reply:
    body: ResolveReport = call.body
    view = uc.resolve_report(
        call.services,
        call.actor,
        call.path["report_id"],
        resolution=body.resolution,
        action=body.action,
        duration_seconds=body.duration_seconds,
        note=body.aliased("notes", "note"),
    )
    return Reply(view)
