"""The OpenAPI 3.1 document, generated from the route table (`shared.http.routes.ROUTES`).

Every route is an operation under the server base path `/messaging/api/v1` (also `/api/v1`).
Its request body schema comes from the route's pydantic model, its success answer from a
`ResponseDoc` (the route's own `response=`, else `RESPONSES` below, by handler), its query
parameters from `Route.query`, the only ones the route accepts (any other is a 400). A route
with no `ResponseDoc` still appears, with `data` documented as any JSON:
`undocumented(routes)` lists those, and a test asks for them.

    python -m shared.devtools.export_openapi build/openapi.json   # the same document, to a file

The error codes of each operation are read from the code that raises them, at build time: the
analysis (`shared.http.error_codes`) parses all of `shared/`, about a second of CPU, too much for
a cold start of the docs function, so its result per route is committed in `error_codes.json`
(`python -m shared.devtools.export_error_codes`; a test fails when it is stale).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from shared.auth.tokens import TokenVerifier
from shared.domain.ids import parse_uuid
from shared.http import error_codes
from shared.http.api import Api, bearer_token, route_query
from shared.http.descriptions import BODY_FIELDS, DESCRIPTIONS, FIELDS
from shared.http.examples import example_of
from shared.http.responses import (
    Attachment,
    Conversation,
    ConversationDetail,
    ConversationListMeta,
    ConversationState,
    CountMeta,
    Draft,
    DuplicateMeta,
    Error,
    Health,
    HistoryMeta,
    MatchesMeta,
    Member,
    Message,
    MessageDeletion,
    MessagePin,
    MessagePinState,
    MessageStatusReport,
    OffsetPageMeta,
    PinListMeta,
    PinnedMessage,
    Reaction,
    ReactionListMeta,
    ReadWatermark,
    Report,
    ReportStats,
    ResponseDoc,
    Sanction,
    SearchMeta,
    Settings,
    SyncChange,
    SyncMeta,
    UnreadMark,
)
from shared.http.routing import Handler, QueryParam, Route

OPENAPI_VERSION = "3.1.0"
BASE_PATH = "/messaging/api/v1"
ALTERNATE_BASE_PATH = "/api/v1"
TITLE = "Whispr messaging API"
SECURITY_SCHEME = "bearerAuth"
TASKS_SCHEME = "tasksSecret"
TASKS_FUNCTION = "tasks"
CONTACT = {"name": "Whispr messaging team (issues and CONTRIBUTING.md in the service's repository)"}
LICENSE = {"name": "Apache-2.0", "identifier": "Apache-2.0"}

DESCRIPTION = """\
The REST API of the Whispr messaging service (conversations, members, messages, receipts,
reactions, pins, drafts, sync). Generated from the service's route table.

- **Base path** `/messaging/api/v1`; every route also answers under `/api/v1` (a gateway may
  strip `/messaging`). Health also at `/health`, `/live`, `/ready`.
- **Auth**: `Authorization: Bearer <JWT>` (ES256); `sub` is the user id, `deviceId` the device.
- **Success bodies** are `{"data": ..., "meta": {...}}` unless an operation says the answer is
  bare. Keys are snake_case; times are RFC 3339 UTC with microseconds and `Z`; ids are lowercase
  UUID strings. An answer is either 204 with no body or JSON.
- **Errors** are `{"error": "<sentence>", "code": "<machine_code>", "details": {...}}`: 400
  malformed (bad JSON, id, number, boolean, time, cursor), 401 no or invalid token, 403 not
  allowed, 404 not found or not visible to the caller, 409 conflict, 413 too large, 422
  validation (`details`: field -> messages), 429 rate limited (`Retry-After` header, seconds).
- **Request bodies** accept their fields flat (`{"content": ...}`) or nested under the resource
  name (`{"message": {...}}`); unknown fields are ignored.
- **History** is newest first: `limit` (default 50, at most 100), `before_seq`/`after_seq` (or
  `before`/`after` as times); `meta.has_more` and `meta.next_before_seq`/`meta.next_after_seq`
  give the next page.
"""

NO_BODY_NOTE = "The body may be absent or empty: it is then taken as `{}`."

# --- what each existing handler answers and reads (a route's own `response=`/`query=` win) ---

RESPONSES: dict[str, ResponseDoc] = {
    "health.live": ResponseDoc(Health, description="The process is up"),
    "health.ready": ResponseDoc(
        Health, description="The store and the bus answer; 503 `not_ready` names the failed checks in `details.failed`"
    ),
    "docs.openapi_json": ResponseDoc(bare=True, description="This OpenAPI document"),
    "docs.docs_page": ResponseDoc(media_type="text/html", description="Swagger UI on this document, served locally"),
    "docs.asyncapi_json": ResponseDoc(bare=True, description="The AsyncAPI 3.0 document of the WebSocket relay"),
    "docs.docs_asset": ResponseDoc(media_type="text/javascript", also=("text/css",), description="The file"),
    "docs.realtime_page": ResponseDoc(media_type="text/html", description="The AsyncAPI document, rendered"),
    # conversations
    "conversations.list_conversations": ResponseDoc(
        Conversation,
        many=True,
        meta=ConversationListMeta,
        description="Most recent activity first; without `limit`, all of them",
    ),
    "conversations.list_archived": ResponseDoc(Conversation, many=True, meta=OffsetPageMeta),
    "conversations.create_conversation": ResponseDoc(
        ConversationDetail,
        statuses=(200,),
        description="201: created; 200: the direct conversation the pair already has",
    ),
    "conversations.get_conversation": ResponseDoc(ConversationDetail),
    "conversations.update_conversation": ResponseDoc(ConversationDetail, description="The whole conversation"),
    "conversations.get_settings": ResponseDoc(Settings),
    "conversations.update_settings": ResponseDoc(Settings),
    "conversations.pin": ResponseDoc(ConversationState, description="Idempotent: the current state"),
    "conversations.unpin": ResponseDoc(ConversationState, description="Idempotent: the current state"),
    "conversations.archive": ResponseDoc(ConversationState, description="Idempotent; archiving unpins"),
    "conversations.unarchive": ResponseDoc(ConversationState, description="Idempotent: the current state"),
    # members
    "members.list_members": ResponseDoc(Member, many=True, meta=CountMeta),
    "members.add_members": ResponseDoc(Member, many=True, meta=CountMeta, description="All active members now"),
    "members.change_role": ResponseDoc(Member),
    # messages
    "messages.history": ResponseDoc(Message, many=True, meta=HistoryMeta, description="Newest first"),
    "messages.send_message": ResponseDoc(
        Message,
        meta=DuplicateMeta,
        statuses=(200,),
        description="201: sent; 200: the original of a retry with the same `client_random`",
    ),
    "messages.mark_read": ResponseDoc(ReadWatermark, description="The caller's read watermark now"),
    "messages.get_message": ResponseDoc(Message),
    "messages.edit_message": ResponseDoc(Message),
    "messages.delete_message": ResponseDoc(MessageDeletion),
    "messages.message_status": ResponseDoc(MessageStatusReport),
    # message actions
    "message_actions.list_attachments": ResponseDoc(Attachment, many=True, meta=CountMeta),
    "message_actions.add_attachment": ResponseDoc(
        Attachment, meta=DuplicateMeta, statuses=(200,), description="201: linked; 200: already linked"
    ),
    "message_actions.forward": ResponseDoc(Message, many=True, meta=CountMeta, description="The new messages"),
    "message_actions.mark_unread": ResponseDoc(UnreadMark),
    # reactions
    "reactions.list_reactions": ResponseDoc(
        Reaction, many=True, meta=ReactionListMeta, description="Individual reactions; per-emoji counts in meta"
    ),
    "reactions.add_reaction": ResponseDoc(
        Reaction, meta=DuplicateMeta, statuses=(200,), description="201: added; 200: the caller already had it"
    ),
    # pins
    "pins.list_pins": ResponseDoc(MessagePin, many=True, meta=PinListMeta, description="Newest pin first"),
    "pins.pin_message": ResponseDoc(PinnedMessage, description="Idempotent: the pin"),
    "pins.unpin_message": ResponseDoc(MessagePinState, description="Idempotent: `is_pinned` false"),
    # drafts
    "drafts.get_draft": ResponseDoc(Draft, nullable=True, description="`data` is null when there is no draft"),
    "drafts.save_draft": ResponseDoc(Draft, nullable=True, description="`data` is null when an empty draft deleted it"),
    # sync
    "sync.sync": ResponseDoc(SyncChange, many=True, meta=SyncMeta, description="Changes in order"),
    # search
    "search.search_messages": ResponseDoc(Message, many=True, meta=SearchMeta, description="Newest first"),
    "search.search_conversations": ResponseDoc(Conversation, many=True, meta=MatchesMeta),
    # moderation
    "sanctions.list_sanctions": ResponseDoc(Sanction, many=True, meta=CountMeta),
    "sanctions.create_sanction": ResponseDoc(Sanction),
    "sanctions.revoke_sanction": ResponseDoc(Sanction, description="The sanction, with `revoked_at` (idempotent)"),
    "reports.create_report": ResponseDoc(Report),
    "reports.list_reports": ResponseDoc(Report, many=True, meta=OffsetPageMeta, description="Newest first"),
    "reports.queue": ResponseDoc(Report, many=True, meta=OffsetPageMeta, description="Pending, oldest first"),
    "reports.stats": ResponseDoc(ReportStats),
    "reports.get_report": ResponseDoc(Report),
    "reports.resolve": ResponseDoc(Report),
}

# Example request bodies, by body model name: documentation, and values the fuzzer starts from.
_SOMEONE = "0b6f4a1e-3c1d-4c89-9a4e-6f1f2d9b7c10"
EXAMPLES: dict[str, dict[str, Any]] = {
    "CreateConversation": {
        "direct": {"type": "direct", "other_user_id": _SOMEONE},
        "group": {"type": "group", "name": "Team", "user_ids": [_SOMEONE], "metadata": {"topic": "launch"}},
    },
    "UpdateConversation": {"rename": {"name": "New name", "metadata": {"e2ee": {"enabled": True}}}},
    "UpdateSettings": {"mute": {"muted_until": "2030-01-01T00:00:00Z", "custom_name": "Work"}},
    "AddMembers": {"some": {"user_ids": [_SOMEONE]}},
    "ChangeRole": {"admin": {"role": "admin"}},
    "SendMessage": {"text": {"content": "Hello", "message_type": "text", "client_random": 424242}},
    "MarkRead": {"up_to_seq": {"up_to_seq": 1}},
    "EditMessage": {"edit": {"content": "Hello again"}},
    "AddReaction": {"thumbs_up": {"reaction": "👍"}},
    "SaveDraft": {"draft": {"content": "half a thought"}},
    "AddAttachment": {"image": {"media_id": "media-123", "media_type": "image", "metadata": {"width": 640}}},
    "CreateReport": {"user": {"reported_user_id": _SOMEONE, "category": "spam", "description": "ads"}},
    "CreateSanction": {
        "mute": {"user_id": _SOMEONE, "type": "mute", "reason": "flooding", "expires_at": "2030-01-01T00:00:00Z"}
    },
    "ResolveReport": {"dismiss": {"action": "dismiss", "notes": "not spam"}},
    "ForwardMessage": {"two": {"conversation_ids": [_SOMEONE, "6f1c2a4e-8b7d-4c3a-9e21-5a0d7b3c9f10"]}},
    "ScheduleMessage": {
        "tomorrow": {
            "conversation_id": "6f1c2a4e-8b7d-4c3a-9e21-5a0d7b3c9f10",
            "content": "Happy birthday!",
            "message_type": "text",
            "scheduled_at": "2027-06-01T09:00:00Z",
            "client_random": 77,
        }
    },
    "UpdateScheduled": {"later": {"scheduled_at": "2027-06-01T10:00:00Z", "content": "Happy birthday!!"}},
    "InboundBody": {
        "pubsub_push": {  # the data: base64 of {"specversion": "1.0", "type": "whispr.user.deleted", ...}
            "message": {
                "data": (
                    "eyJzcGVjdmVyc2lvbiI6ICIxLjAiLCAiaWQiOiAiZTEiLCAic291cmNlIjogIi8vd2hpc3ByL3VzZXItc2VydmljZSIsICJ0"
                    "eXBlIjogIndoaXNwci51c2VyLmRlbGV0ZWQiLCAiZGF0YSI6IHsidXNlcl9pZCI6ICI2ZjFjMmE0ZS04YjdkLTRjM2EtOWUy"
                    "MS01YTBkN2IzYzlmMTAifX0="
                ),
                "messageId": "1234",
            },
            "subscription": "projects/whispr/subscriptions/messaging-events-from-user",
        },
        "cloudevent": {
            "specversion": "1.0",
            "id": "e2",
            "source": "//whispr/user-service",
            "type": "whispr.group.updated",
            "data": {"conversation_id": "6f1c2a4e-8b7d-4c3a-9e21-5a0d7b3c9f10", "name": "Climbing club"},
        },
    },
}

ERRORS: dict[int, tuple[str, str]] = {
    400: ("BadRequest", "Malformed: bad JSON, id, number, boolean, time or cursor"),
    401: ("Unauthorized", "No token, or an invalid or expired one"),
    403: ("Forbidden", "Authenticated, but not allowed"),
    404: ("NotFound", "Not found, or not visible to the caller"),
    409: ("Conflict", "Conflicts with the current state"),
    413: ("TooLarge", "The body, content or metadata is too large"),
    422: ("Invalid", "Breaks a rule; `details` maps each field to its messages"),
    429: ("RateLimited", "Rate limited: retry after `Retry-After` seconds"),
    500: ("InternalError", "Something went wrong on the server's side (never for bad input)"),
    503: ("Unavailable", "A dependency is unreachable"),
}


def handler_key(handler: Handler) -> str:
    """`<module under shared.http.handlers>.<function>`, e.g. `messages.send_message`."""
    module = getattr(handler, "__module__", "") or ""
    return f"{module.removeprefix('shared.http.handlers.')}.{getattr(handler, '__name__', repr(handler))}"


def response_doc(route: Route) -> ResponseDoc | None:
    return route.response or RESPONSES.get(handler_key(route.handler))


def query_params(route: Route) -> tuple[QueryParam, ...]:
    return route.query


def undocumented(routes: Iterable[Route]) -> list[Route]:
    """Routes that answer a body whose shape the document does not know."""
    return [r for r in routes if r.status != 204 and response_doc(r) is None]


def is_bare(route: Route) -> bool:
    doc = response_doc(route)
    return bool(getattr(route, "bare", False) or (doc is not None and doc.bare))


def api_version() -> str:
    try:
        return metadata.version("whispr-messaging")
    except metadata.PackageNotFoundError:
        return "0.0.0"


def _operation_ids(routes: list[Route]) -> list[str]:
    """`<function>_<handler>`, made unique with the path where a handler serves several paths."""
    ids: list[str] = []
    for route in routes:
        base = f"{route.function}_{getattr(route.handler, '__name__', 'handler')}"
        candidate = base
        if candidate in ids:
            candidate = base + "_" + (re.sub(r"[^A-Za-z0-9]+", "_", route.path).strip("_") or "root")
        n = 2
        while candidate in ids:
            candidate, n = f"{base}_{n}", n + 1
        ids.append(candidate)
    return ids


def _path_parameter(name: str) -> dict[str, Any]:
    if name.endswith("_id"):
        schema: dict[str, Any] = {"type": "string", "format": "uuid"}
        description = f"{name.removesuffix('_id').replace('_', ' ')} id (a UUID; anything else is a 400)"
    else:
        schema = {"type": "string", "minLength": 1}
        description = f"{name} (URL-encoded)"
    return {"name": name, "in": "path", "required": True, "description": description, "schema": schema}


def _query_parameter(param: QueryParam) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": param.type}
    if param.format is not None:
        schema["format"] = param.format
    if param.minimum is not None:
        schema["minimum"] = param.minimum
    if param.maximum is not None:
        schema["maximum"] = param.maximum
    if param.default is not None:
        schema["default"] = param.default
    out: dict[str, Any] = {"name": param.name, "in": "query", "required": param.required, "schema": schema}
    if param.description:
        out["description"] = param.description
    return out


ERROR_CODES_FILE = Path(__file__).with_name("error_codes.json")


def analysed_error_codes(route: Route) -> dict[int, list[str]]:
    """The error codes `route` can answer, by status, read from the code (`shared.http.error_codes`):
    its handler's, and the request layer's (query parameters; token, path ids, body where the route
    has them). Parses the source: what `export_error_codes` writes to ERROR_CODES_FILE."""
    codes = set(error_codes.codes_of(route.handler)) | error_codes.codes_of(route_query)
    if route.authenticated:
        codes |= error_codes.codes_of(bearer_token) | error_codes.codes_of(TokenVerifier.verify)
    if route.params:
        codes |= error_codes.codes_of(parse_uuid)
    if route.body is not None:
        codes |= error_codes.codes_of(Api._read_body)
    return error_codes.by_status(codes)


@cache
def _committed_error_codes() -> dict[str, dict[int, list[str]]]:
    table: dict[str, dict[str, list[str]]] = json.loads(ERROR_CODES_FILE.read_text(encoding="utf-8"))
    return {key: {int(status): codes for status, codes in by_status.items()} for key, by_status in table.items()}


def error_codes_of(route: Route) -> dict[int, list[str]]:
    """The error codes `route` can answer, by status: the committed analysis (ERROR_CODES_FILE),
    or, for a route the table does not know (a test's own), the analysis itself."""
    committed = _committed_error_codes().get(f"{route.method} {route.path}")
    return analysed_error_codes(route) if committed is None else committed


def _without_property_titles(schema: dict[str, Any]) -> dict[str, Any]:
    """pydantic titles every field after its name ("Sent At"): noise in a document that shows the name."""
    out = dict(schema)
    if isinstance(out.get("properties"), dict):
        out["properties"] = {
            name: {k: v for k, v in prop.items() if k != "title"} if isinstance(prop, dict) else prop
            for name, prop in out["properties"].items()
        }
    return out


def _described(model: str, schema: dict[str, Any]) -> dict[str, Any]:
    """Fields without a description of their own get the glossary's (`shared.http.descriptions`)."""
    for name, prop in schema.get("properties", {}).items():
        text = BODY_FIELDS.get((model, name)) or FIELDS.get(name)
        if isinstance(prop, dict) and "description" not in prop and text:
            prop["description"] = text
    return schema


class _Schemas:
    """Every pydantic model the document names, generated together into components/schemas."""

    def __init__(self, routes: list[Route]):
        wanted: dict[tuple[type[BaseModel], JsonSchemaMode], None] = {(Error, "serialization"): None}
        for route in routes:
            if route.body is not None:
                wanted[(route.body, "validation")] = None
            doc = response_doc(route)
            if doc is not None:
                if doc.data is not None:
                    wanted[(doc.data, "serialization")] = None
                wanted[(doc.meta, "serialization")] = None
        refs, top = models_json_schema(list(wanted), ref_template="#/components/schemas/{model}")
        self._refs = refs
        self.components: dict[str, Any] = {
            name: _described(name, _without_property_titles(schema))
            for name, schema in sorted(top.get("$defs", {}).items())
        }

    def ref(self, model: type[BaseModel], mode: Literal["validation", "serialization"]) -> dict[str, Any]:
        return dict(self._refs[(model, mode)])


def _success_schema(doc: ResponseDoc | None, bare: bool, schemas: _Schemas) -> dict[str, Any]:
    data: dict[str, Any] = {}
    if doc is not None and doc.data is not None:
        data = schemas.ref(doc.data, "serialization")
        if doc.many:
            data = {"type": "array", "items": data}
        if doc.nullable:
            data = {"anyOf": [data, {"type": "null"}]}
    if bare:
        return data
    meta = schemas.ref(doc.meta, "serialization") if doc is not None else {"type": "object"}
    return {
        "type": "object",
        "required": ["data", "meta"],
        "properties": {"data": data, "meta": meta},
        "additionalProperties": False,
    }


def _request_body(route: Route, schemas: _Schemas) -> dict[str, Any]:
    assert route.body is not None
    flat = schemas.ref(route.body, "validation")
    required = any(field.is_required() for field in route.body.model_fields.values())
    description = "Unknown fields are ignored."
    schema = flat
    if route.body_key:
        schema = {
            "anyOf": [
                flat,
                {"type": "object", "required": [route.body_key], "properties": {route.body_key: flat}},
            ]
        }
        description = f"The fields flat, or nested under `{route.body_key}`. " + description
    if not required:
        description += " " + NO_BODY_NOTE
    media: dict[str, Any] = {"schema": schema}
    if examples := EXAMPLES.get(route.body.__name__):
        media["examples"] = {name: {"value": value} for name, value in examples.items()}
    return {"required": required, "description": description, "content": {"application/json": media}}


def _success_responses(route: Route, schemas: _Schemas) -> dict[str, Any]:
    if route.status == 204:
        return {"204": {"description": "Done; no body"}}
    doc = response_doc(route)
    bare = is_bare(route)
    description = (doc.description if doc is not None else "") or "OK"
    media_type = doc.media_type if doc is not None else "application/json"
    content: dict[str, Any] = {}
    if media_type == "application/json":
        schema = _success_schema(doc, bare, schemas)
        content[media_type] = {"schema": schema}
        if doc is not None and doc.data is not None:
            content[media_type]["example"] = example_of(schema, schemas.components)
    else:
        for other in (media_type, *(doc.also if doc is not None else ())):
            content[other] = {"schema": {"type": "string"}}
    answer = {"description": description, "content": content}
    statuses = [route.status, *(doc.statuses if doc is not None else ())]
    return {str(status): answer for status in dict.fromkeys(statuses)}


def _operation(route: Route, operation_id: str, schemas: _Schemas) -> dict[str, Any]:
    notes: list[str] = []
    doc = response_doc(route)
    if is_bare(route) and (doc is None or doc.media_type == "application/json"):
        notes.append(
            "Answers a **bare JSON body**, not the `{data, meta}` envelope (the Whispr client reads the body directly)."
        )
    if route.body is not None and not any(f.is_required() for f in route.body.model_fields.values()):
        notes.append(NO_BODY_NOTE)
    operation: dict[str, Any] = {
        "operationId": operation_id,
        "summary": route.summary,
        "tags": [route.function],
        "x-function": route.function,
    }
    operation["description"] = "\n\n".join([DESCRIPTIONS.get(handler_key(route.handler), ""), *notes]).strip()
    parameters = [_path_parameter(name) for name in route.params]
    parameters += [_query_parameter(param) for param in query_params(route)]
    if parameters:
        operation["parameters"] = parameters
    if route.body is not None:
        operation["requestBody"] = _request_body(route, schemas)
    responses = _success_responses(route, schemas)
    for status, codes in error_codes_of(route).items():
        responses[str(status)] = _error_response(status, codes, schemas)
    responses["500"] = {"$ref": f"#/components/responses/{ERRORS[500][0]}"}
    operation["responses"] = responses
    if route.function == TASKS_FUNCTION:
        operation["security"] = [{TASKS_SCHEME: []}]
    elif not route.authenticated:
        operation["security"] = []
    return operation


RETRY_AFTER = {
    "Retry-After": {
        "description": "seconds to wait before retrying",
        "required": True,
        "schema": {"type": "integer", "minimum": 1},
    }
}


def _error_response(status: int, codes: list[str], schemas: _Schemas) -> dict[str, Any]:
    """An error answer naming the codes this operation can give with this status."""
    _, description = ERRORS.get(status, ("", "An error"))
    schema = {
        "allOf": [schemas.ref(Error, "serialization")],
        "properties": {"code": {"type": "string", "enum": codes}},
    }
    listed = ", ".join(f"`{code}`" for code in codes)
    example = {"error": "a sentence for people", "code": codes[0], "details": {}}
    response: dict[str, Any] = {
        "description": f"{description}. `code`: {listed}",
        "content": {"application/json": {"schema": schema, "example": example}},
    }
    if status == 429:
        response["headers"] = RETRY_AFTER
    return response


def _error_components(error_ref: dict[str, Any]) -> dict[str, Any]:
    """The answer every operation may give (500, `internal_error`)."""
    name, description = ERRORS[500]
    example = {"error": "something went wrong on our side", "code": "internal_error", "details": {}}
    return {
        name: {"description": description, "content": {"application/json": {"schema": error_ref, "example": example}}}
    }


def outside_base(path: str) -> bool:
    """Paths that live beside the versioned API (`/api/openapi.json` is `/messaging/api/openapi.json`)."""
    return path.startswith("/api/")


def build_document(routes: Iterable[Route] | None = None) -> dict[str, Any]:
    """The OpenAPI document of `routes` (default: the route table)."""
    if routes is None:
        from shared.http.routes import ROUTES  # late: the table imports the docs handler, which imports us

        routes = ROUTES
    table = list(routes)
    schemas = _Schemas(table)
    paths: dict[str, dict[str, Any]] = {}
    for route, operation_id in zip(table, _operation_ids(table), strict=True):
        item = paths.setdefault(route.path, {})
        if outside_base(route.path):
            item["servers"] = [{"url": "/messaging", "description": f"also at {route.path}, without /messaging"}]
        method = route.method.lower()
        if method in item:  # the dispatcher takes the first match: a later duplicate is never served
            continue
        item[method] = _operation(route, operation_id, schemas)
    tags: dict[str, None] = dict.fromkeys(route.function for route in table)
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": TITLE,
            "version": api_version(),
            "description": DESCRIPTION,
            "contact": CONTACT,
            "license": LICENSE,
        },
        "servers": [
            {"url": BASE_PATH, "description": "the API"},
            {"url": ALTERNATE_BASE_PATH, "description": "the same, behind a gateway that strips /messaging"},
        ],
        "tags": [{"name": tag, "description": f"served by the `{tag}` function"} for tag in tags],
        "security": [{SECURITY_SCHEME: []}],
        "paths": paths,
        "components": {
            "schemas": schemas.components,
            "responses": _error_components(schemas.ref(Error, "serialization")),
            "securitySchemes": {
                SECURITY_SCHEME: {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "An access token from the auth service (ES256; `sub` = user id, "
                    "`deviceId` = device id). Locally: `whispr-messaging token <user-uuid>`.",
                },
                TASKS_SCHEME: {
                    "type": "apiKey",
                    "in": "header",
                    "name": "X-Whispr-Tasks-Secret",
                    "description": "The task targets' shared secret (`WHISPR_TASKS_SECRET`); Cloud Tasks and Cloud "
                    "Scheduler send it. `Authorization: Bearer <secret>` is accepted too.",
                },
            },
        },
    }
