"""The OpenAPI document (api.md, "Conventions"): generated from the route table, valid, complete,
served at /messaging/api/openapi.json with an offline docs page, exported by a command; the
views answer exactly what it documents; and a bounded schemathesis run against the running
service finds no server error and no answer outside the document."""

from __future__ import annotations

import json
import os
import re
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from openapi_spec_validator import validate
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from shared.app.views import (
    attachment_view,
    conversation_view,
    draft_view,
    member_view,
    message_view,
    pin_view,
    reaction_view,
    settings_view,
)
from shared.devtools import export_error_codes, export_openapi
from shared.domain.models import Attachment, Conversation, Draft, Member, Message, MessagePin, Reaction
from shared.http import responses
from shared.http.descriptions import DESCRIPTIONS
from shared.http.openapi import (
    BASE_PATH,
    ERROR_CODES_FILE,
    analysed_error_codes,
    build_document,
    error_codes_of,
    handler_key,
    is_bare,
    query_params,
    undocumented,
)
from shared.http.responses import ResponseDoc
from shared.http.routes import ROUTES
from shared.http.routing import QueryParam, Reply, Route
from tests.support import BASE, RunningServer, UserClient, client_random, new_id

DOC_PATHS = ("/messaging/api/openapi.json", "/api/openapi.json")
DOCS_PAGES = ("/messaging/api/docs", "/api/docs")


def json_roundtrip(value: Any) -> Any:
    return json.loads(json.dumps(value))


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return build_document()


def operation(document: dict[str, Any], route: Route) -> dict[str, Any]:
    item = document["paths"].get(route.path)
    assert item is not None, f"{route.path} is not in the document"
    op = item.get(route.method.lower())
    assert op is not None, f"{route.method} {route.path} is not in the document"
    return dict(op)


def component(document: dict[str, Any], ref: dict[str, Any]) -> dict[str, Any]:
    name = ref["$ref"].removeprefix("#/components/schemas/")
    return dict(document["components"]["schemas"][name])


# --- the document -----------------------------------------------------------------------------


def test_the_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    validate(document)
    assert document["openapi"].startswith("3.1")
    assert document["servers"][0]["url"] == BASE_PATH == "/messaging/api/v1"
    assert {"url": "/api/v1"} in [{"url": s["url"]} for s in document["servers"]]
    scheme = document["components"]["securitySchemes"]["bearerAuth"]
    assert scheme == {**scheme, "type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    assert document["security"] == [{"bearerAuth": []}]


def test_validation_catches_a_broken_document(document: dict[str, Any]) -> None:
    """The validator is not a rubber stamp: the same document with a dangling reference fails."""
    broken = json_roundtrip(document)
    first_path = next(iter(broken["paths"].values()))
    first_op = next(v for k, v in first_path.items() if k != "servers")
    first_op["responses"]["599"] = {"$ref": "#/components/responses/NoSuchThing"}
    with pytest.raises(Exception):  # noqa: B017 - the validator raises several kinds
        validate(broken)


def test_every_route_in_the_table_is_an_operation(document: dict[str, Any]) -> None:
    ids = []
    for route in ROUTES:
        op = operation(document, route)
        ids.append(op["operationId"])
        assert op["operationId"].startswith(f"{route.function}_{route.handler.__name__}")
        assert op["summary"] == route.summary
        assert op["tags"] == [route.function]
        params = {(p["name"], p["in"]): p for p in op.get("parameters", [])}
        # the query parameters documented are exactly those the route takes (any other is a 400)
        assert {name for name, where in params if where == "query"} == {q.name for q in route.query}, route
        for name in route.params:
            param = params[(name, "path")]
            assert param["required"] is True
            if name.endswith("_id"):
                assert param["schema"] == {"type": "string", "format": "uuid"}
        assert (op.get("security") is not None) is (not route.authenticated), route
        if route.body is not None:
            schema = op["requestBody"]["content"]["application/json"]["schema"]
            flat = schema["anyOf"][0] if route.body_key else schema
            assert flat == {"$ref": f"#/components/schemas/{route.body.__name__}"}
            if route.body_key:
                assert schema["anyOf"][1]["properties"][route.body_key] == flat
        else:
            assert "requestBody" not in op
        success = [s for s in op["responses"] if s.startswith("2")]
        assert str(route.status) in success
        if route.status == 204:
            assert success == ["204"] and "content" not in op["responses"]["204"]
    assert len(ids) == len(set(ids)), "operationIds must be unique"
    counted = sum(1 for item in document["paths"].values() for key in item if key != "servers")
    assert counted == len({(r.method, r.path) for r in ROUTES})


def test_every_route_documents_its_answer() -> None:
    missing = [f"{r.method} {r.path} ({r.handler.__module__}.{r.handler.__name__})" for r in undocumented(ROUTES)]
    assert not missing, (
        "document these answers: give the Route a response=ResponseDoc(...) (shared/http/responses.py) "
        f"or add the handler to RESPONSES in shared/http/openapi.py: {missing}"
    )


def test_success_bodies_are_the_envelope_with_the_documented_object(document: dict[str, Any]) -> None:
    by_handler = {r.handler.__name__: r for r in ROUTES}
    history = operation(document, by_handler["history"])["responses"]["200"]["content"]["application/json"]["schema"]
    assert history["required"] == ["data", "meta"] and history["additionalProperties"] is False
    assert history["properties"]["data"] == {"type": "array", "items": {"$ref": "#/components/schemas/Message"}}
    meta = component(document, history["properties"]["meta"])
    assert set(meta["required"]) == {"count", "has_more", "next_before_seq", "next_after_seq"}

    detail = operation(document, by_handler["get_conversation"])["responses"]["200"]["content"]
    assert detail["application/json"]["schema"]["properties"]["data"] == {
        "$ref": "#/components/schemas/ConversationDetail"
    }
    created = operation(document, by_handler["send_message"])["responses"]
    assert set(created) >= {"201", "200"}  # 200: the original of a duplicate client_random

    conversation = document["components"]["schemas"]["Conversation"]
    assert conversation["additionalProperties"] is False
    assert set(conversation["required"]) >= {  # api.md's list
        "id",
        "type",
        "name",
        "metadata",
        "created_at",
        "updated_at",
        "is_active",
        "last_seq",
        "last_message",
        "unread_count",
        "member_user_ids",
        "is_pinned",
        "is_muted",
        "is_archived",
    }
    message = document["components"]["schemas"]["Message"]
    assert "status" in message["properties"] and "status" not in message["required"]


def test_every_operation_is_described_and_every_request_body_has_an_example(document: dict[str, Any]) -> None:
    undescribed = sorted({handler_key(r.handler) for r in ROUTES} - set(DESCRIPTIONS))
    assert not undescribed, f"describe these handlers in shared/http/descriptions.py: {undescribed}"
    for route in ROUTES:
        op = operation(document, route)
        assert len(op["description"]) > len(op["summary"]) / 2, route
        if route.body is not None:
            examples = op["requestBody"]["content"]["application/json"].get("examples")
            assert examples, f"{route.method} {route.path}: add an example body to EXAMPLES (shared/http/openapi.py)"
    for name in {r.body.__name__ for r in ROUTES if r.body is not None}:
        fields = document["components"]["schemas"][name]["properties"]
        bare = [field for field, schema in fields.items() if not schema.get("description")]
        assert not bare, f"{name}: describe {bare} (shared/http/descriptions.py, BODY_FIELDS or FIELDS)"
    info = document["info"]
    assert info["contact"]["name"] and info["license"]["identifier"] == "Apache-2.0"


def test_request_and_response_examples_have_their_schemas_shape(document: dict[str, Any]) -> None:
    cls = jsonschema.validators.validator_for({"$schema": "https://json-schema.org/draft/2020-12/schema"})
    checked = 0
    for route in ROUTES:
        op = operation(document, route)
        media: list[tuple[dict[str, Any], Any]] = []
        for answer in op["responses"].values():
            for content in answer.get("content", {}).values():
                if "example" in content:
                    media.append((content["schema"], content["example"]))
        body = op.get("requestBody", {}).get("content", {}).get("application/json", {})
        media += [(body["schema"], example["value"]) for example in body.get("examples", {}).values()]
        for schema, example in media:
            validator = cls({**schema, "components": document["components"]}, format_checker=cls.FORMAT_CHECKER)
            errors = [e.message for e in validator.iter_errors(example)]
            assert not errors, f"{route.method} {route.path}: {errors[:3]} in {example}"
            checked += 1
    assert checked > len(ROUTES)


def test_every_error_answer_names_its_codes_read_from_the_code(document: dict[str, Any]) -> None:
    error = document["components"]["schemas"]["Error"]
    assert set(error["required"]) == {"error", "code", "details"} and error["additionalProperties"] is False
    for route in ROUTES:
        answers = operation(document, route)["responses"]
        assert answers["500"] == {"$ref": "#/components/responses/InternalError"}
        for status, answer in answers.items():
            if not status.startswith("4"):
                continue
            schema = answer["content"]["application/json"]["schema"]
            assert schema["allOf"] == [{"$ref": "#/components/schemas/Error"}]
            codes = schema["properties"]["code"]["enum"]
            assert codes and codes == error_codes_of(route)[int(status)], (route, status)
            assert all(f"`{code}`" in answer["description"] for code in codes)
            if status == "429":
                assert answer["headers"]["Retry-After"]["schema"]["type"] == "integer"
    by_handler = {handler_key(r.handler): r for r in ROUTES}
    send = operation(document, by_handler["messages.send_message"])["responses"]
    assert "not_a_member" in send["403"]["content"]["application/json"]["schema"]["properties"]["code"]["enum"]
    assert {"missing_token", "invalid_token"} <= set(
        send["401"]["content"]["application/json"]["schema"]["properties"]["code"]["enum"]
    )
    assert "validation_failed" in send["422"]["content"]["application/json"]["schema"]["properties"]["code"]["enum"]
    health = operation(document, by_handler["health.live"])["responses"]
    assert [s for s in health if s.startswith("4")] == ["400"], "only what the request layer raises"
    assert health["400"]["content"]["application/json"]["schema"]["properties"]["code"]["enum"] == ["unknown_parameter"]


def test_the_committed_error_codes_are_what_the_code_raises_now(tmp_path: Path) -> None:
    """The document reads the codes from error_codes.json (built once, not on a cold start): it
    must be what the analysis of the source finds today, for every route of the table."""
    assert ERROR_CODES_FILE.read_text(encoding="utf-8") == export_error_codes.render(), (
        "shared/http/error_codes.json is stale: "
        "python -m shared.devtools.export_error_codes shared/http/error_codes.json"
    )
    for route in ROUTES:
        assert error_codes_of(route) == analysed_error_codes(route), route
    stale = tmp_path / "error_codes.json"
    stale.write_text(ERROR_CODES_FILE.read_text(encoding="utf-8").replace('"not_a_member", ', "", 1))
    assert export_error_codes.main(["--check", str(stale)]) == 1
    assert export_error_codes.main(["--check", str(ERROR_CODES_FILE)]) == 0


def test_an_error_code_the_service_answers_is_in_the_document(server: RunningServer, document: dict[str, Any]) -> None:
    """The codes are read from the code: what a real call answers is listed for its operation."""
    alice, bob, eve = server.client(), server.client(), server.client()
    conversation = alice.direct_with(bob)
    answer = eve.post(f"/conversations/{conversation['id']}/messages", {"content": "hi", "client_random": 1})
    route = next(r for r in ROUTES if handler_key(r.handler) == "messages.send_message")
    listed = operation(document, route)["responses"][str(answer.status_code)]
    assert answer.json()["code"] in listed["content"]["application/json"]["schema"]["properties"]["code"]["enum"]


def test_the_task_routes_need_the_task_secret(document: dict[str, Any]) -> None:
    scheme = document["components"]["securitySchemes"]["tasksSecret"]
    assert scheme == {**scheme, "type": "apiKey", "in": "header", "name": "X-Whispr-Tasks-Secret"}
    for route in ROUTES:
        security = operation(document, route).get("security")
        if route.function == "tasks":
            assert security == [{"tasksSecret": []}], route
        elif not route.authenticated:
            assert security == [], route


def test_query_parameters_of_the_list_and_history_routes(document: dict[str, Any]) -> None:
    def query_of(handler: str) -> dict[str, dict[str, Any]]:
        route = next(r for r in ROUTES if r.handler.__name__ == handler)
        return {p["name"]: p for p in operation(document, route).get("parameters", []) if p["in"] == "query"}

    history = query_of("history")
    assert set(history) >= {"limit", "before_seq", "after_seq", "before", "after"}
    assert history["limit"]["schema"]["minimum"] == 1 and history["limit"]["schema"]["default"] == 50
    assert history["before"]["schema"]["format"] == "date-time"
    assert set(query_of("list_conversations")) >= {"limit", "cursor", "include_archived"}
    assert query_of("list_conversations")["include_archived"]["schema"]["type"] == "boolean"
    assert set(query_of("list_archived")) >= {"limit", "offset"}
    assert query_of("delete_message")["delete_for_everyone"]["schema"]["type"] == "boolean"
    assert set(query_of("list_conversations")) >= {"type", "offset"}
    assert set(query_of("search_conversations")) == {"q", "query", "limit"}
    assert set(query_of("list_pins")) == {"limit", "offset"}
    assert set(query_of("queue")) == {"limit", "offset", "status", "category"}
    assert "search" not in history  # the client's in-conversation search falls back on a 400


def test_a_bare_route_is_documented_without_the_envelope() -> None:
    """A route flagged bare answers its data alone; the scheduled list is one (api.md)."""

    def handler(call: Any) -> Reply:
        return Reply([], bare=True)

    bare = Route(
        "GET",
        "/things",
        "things",
        handler,
        "Things, bare",
        response=ResponseDoc(responses.Message, many=True, bare=True),
        query=(QueryParam("conversation_id", format="uuid"),),
    )
    wrapped = Route(
        "GET", "/wrapped", "things", handler, "Things, wrapped", response=ResponseDoc(responses.Message, many=True)
    )
    doc = build_document([bare, wrapped])
    validate(doc)
    bare_op = doc["paths"]["/things"]["get"]
    assert bare_op["responses"]["200"]["content"]["application/json"]["schema"] == {
        "type": "array",
        "items": {"$ref": "#/components/schemas/Message"},
    }
    assert "bare JSON" in bare_op["description"]
    assert bare_op["parameters"] == [
        {"name": "conversation_id", "in": "query", "required": False, "schema": {"type": "string", "format": "uuid"}}
    ]
    wrapped_schema = doc["paths"]["/wrapped"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert wrapped_schema["required"] == ["data", "meta"]
    scheduled = [r for r in ROUTES if r.method == "GET" and r.path == "/messages/scheduled"]
    for route in scheduled:
        assert is_bare(route)
        schema = operation(build_document(), route)["responses"]["200"]["content"]["application/json"]["schema"]
        assert schema["type"] == "array"


# --- the views answer what the document says ----------------------------------------------------


def _validator(document: dict[str, Any], name: str) -> jsonschema.protocols.Validator:
    schema = {"$ref": f"#/components/schemas/{name}", "components": document["components"]}
    cls = jsonschema.validators.validator_for({"$schema": "https://json-schema.org/draft/2020-12/schema"})
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def _assert_matches(document: dict[str, Any], name: str, value: Any) -> None:
    errors = sorted(_validator(document, name).iter_errors(json_roundtrip(value)), key=str)
    assert not errors, f"{name}: " + "; ".join(e.message for e in errors[:5])


def test_the_views_are_what_the_schemas_describe(document: dict[str, Any]) -> None:
    now = datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=timezone.utc)
    me, other, cid, mid = (new_id() for _ in range(4))
    message = Message(
        mid, cid, 3, me, "device-1", 7, "text", "hi", {"k": 1}, None, None, None, None, now, edited_at=now
    )
    members = [Member(cid, me, "owner", now, muted_until=now + timedelta(hours=1)), Member(cid, other, "member", now)]
    conv = Conversation(cid, "group", "Team", {"name": "Team"}, me, now, now, True, 3)
    last = message_view(message)
    _assert_matches(document, "Message", last)
    _assert_matches(document, "Message", message_view(message, "read"))
    _assert_matches(document, "Member", member_view(members[0]))
    _assert_matches(document, "Settings", settings_view(members[0], now))
    listed = conversation_view(conv, members[0], members, last_message=last, unread_count=1, now=now)
    _assert_matches(document, "Conversation", listed)
    _assert_matches(
        document,
        "ConversationDetail",
        conversation_view(conv, members[0], members, last_message=None, unread_count=0, now=now, detail=True),
    )
    _assert_matches(document, "Reaction", reaction_view(Reaction(new_id(), mid, cid, me, "👍", now)))
    _assert_matches(document, "MessagePin", pin_view(MessagePin(mid, cid, me, now), message))
    _assert_matches(document, "Draft", draft_view(Draft(cid, me, "draft", {}, now)))
    _assert_matches(
        document, "Attachment", attachment_view(Attachment(new_id(), mid, cid, "media-1", "image", {}, now))
    )


def test_the_schemas_refuse_what_the_views_never_answer(document: dict[str, Any]) -> None:
    """The schemas are closed and exact: an extra key, a missing key, a bad time or id fails."""
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    view = message_view(Message(new_id(), new_id(), 1, new_id(), None, 1, "text", "x", {}, None, None, None, None, now))
    validator = _validator(document, "Message")
    assert validator.is_valid(view)
    assert not validator.is_valid({**view, "surprise": 1})
    assert not validator.is_valid({k: v for k, v in view.items() if k != "sent_at"})
    assert not validator.is_valid({**view, "sent_at": "2026-01-02T03:04:05+00:00"})  # not ...microseconds Z
    assert not validator.is_valid({**view, "id": view["id"].upper()})  # ids are lowercase
    assert not validator.is_valid({**view, "status": "lost"})


# --- the export command -----------------------------------------------------------------------


def test_the_export_command_writes_the_document(
    tmp_path: Path, document: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "build" / "openapi.json"
    assert export_openapi.main([str(target)]) == 0
    assert json.loads(target.read_text(encoding="utf-8")) == json_roundtrip(document)
    assert export_openapi.main(["--check", str(target)]) == 0
    target.write_text(target.read_text(encoding="utf-8").replace('"3.1.0"', '"3.0.0"'), encoding="utf-8")
    assert export_openapi.main(["--check", str(target)]) == 1
    capsys.readouterr()
    assert export_openapi.main(["-"]) == 0
    assert json.loads(capsys.readouterr().out) == json_roundtrip(document)


# --- served -----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", DOC_PATHS)
def test_the_served_document_is_the_generated_one(server: RunningServer, document: dict[str, Any], path: str) -> None:
    response = httpx.get(server.url + path, timeout=60)  # no token needed; built on first use
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    served = response.json()
    assert served == json_roundtrip(document)
    validate(served)


@pytest.mark.parametrize("path", DOCS_PAGES)
def test_the_api_reference_is_served_with_everything_it_loads(server: RunningServer, path: str) -> None:
    response = httpx.get(server.url + path)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    assert not re.search(r"https?:|//[\w.-]+\.[a-z]{2,}", page, re.IGNORECASE), "the page must work offline"
    loaded = re.findall(r"<(?:script|link)[^>]+(?:src|href)=\"([^\"]+)\"", page)
    assert "docs/swagger-ui-bundle.js" in loaded and "docs/docs.js" in loaded
    base = server.url + path.rsplit("/", 1)[0] + "/"
    for asset in loaded:
        served = httpx.get(base + asset)
        assert served.status_code == 200, asset
        assert served.headers["content-type"].split(";")[0] in ("text/javascript", "text/css"), asset
    script = httpx.get(base + "docs/docs.js").text
    assert 'url: "openapi.json"' in script and "persistAuthorization" in script
    assert httpx.get(base + "docs/nothing.js").status_code == 404
    beside = httpx.get(base + "openapi.json")
    assert beside.status_code == 200 and beside.json()["openapi"].startswith("3.1")


@pytest.mark.parametrize("path", ("/messaging/api/asyncapi.json", "/api/asyncapi.json"))
def test_the_socket_contract_is_served_beside_the_openapi_document(server: RunningServer, path: str) -> None:
    document = httpx.get(server.url + path)
    assert document.status_code == 200 and document.json()["asyncapi"] == "3.0.0"
    page = httpx.get(server.url + path.replace("asyncapi.json", "realtime"))
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for event in ("new_message", "delivery_status", "presence_diff", "phx_join", "heartbeat"):
        assert f"<code>{event}</code>" in page.text
    assert "<style" not in page.text and "<script" not in page.text  # nothing inline: CSP-friendly
    styles = httpx.get(server.url + path.replace("asyncapi.json", "docs/realtime.css"))
    assert styles.status_code == 200 and styles.headers["content-type"].startswith("text/css")


def test_paths_starlette_cannot_route_still_answer_the_json_error_body(server: RunningServer) -> None:
    """Found by schemathesis: a newline in the path got Starlette's plain-text 404."""
    response = httpx.get(server.url + BASE + "/conversations/%0Aabc")
    assert response.status_code in (400, 401, 404), response.text
    assert response.headers["content-type"].startswith("application/json")
    assert set(response.json()) == {"error", "code", "details"}


def test_a_405_says_which_methods_are_allowed(server: RunningServer) -> None:
    """RFC 9110: a 405 carries `Allow` (found by schemathesis)."""
    response = httpx.put(server.url + "/messaging/api/docs")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET"
    assert response.json()["details"]["allowed"] == ["GET"]


def test_null_for_a_setting_switch_changes_nothing_and_null_clears_a_name(server: RunningServer) -> None:
    """Found by schemathesis: `{"show_read_receipts": null}` was stored into a NOT NULL column (500)."""
    alice, bob = server.client(), server.client()
    conversation = alice.direct_with(bob)
    path = f"/conversations/{conversation['id']}/settings"
    response = alice.put(
        path, {"show_read_receipts": None, "notifications_enabled": None, "show_typing": None, "custom_name": "Bob"}
    )
    assert response.status_code == 200, response.text
    settings_now = response.json()["data"]
    assert settings_now["show_read_receipts"] is True and settings_now["notifications_enabled"] is True
    assert settings_now["show_typing"] is True and settings_now["custom_name"] == "Bob"
    cleared = alice.put(path, {"settings": {"custom_name": None, "show_typing": False}})
    assert cleared.status_code == 200, cleared.text
    assert cleared.json()["data"]["custom_name"] is None and cleared.json()["data"]["show_typing"] is False
    assert alice.get(path).json()["data"] == cleared.json()["data"]


def test_times_are_answered_in_utc_with_four_digit_years(server: RunningServer) -> None:
    """Found by schemathesis: `muted_until` with another offset came back with that local time
    labelled Z, and a year before 1000 with three digits."""
    alice, bob = server.client(), server.client()
    conversation = alice.direct_with(bob)
    path = f"/conversations/{conversation['id']}/settings"
    for sent, answered in [
        ("2031-05-06T07:08:09.5+02:00", "2031-05-06T05:08:09.500000Z"),
        ("0737-09-25T21:23:10+13:04", "0737-09-25T08:19:10.000000Z"),
    ]:
        response = alice.put(path, {"muted_until": sent})
        assert response.status_code == 200, response.text
        assert response.json()["data"]["muted_until"] == answered
        assert alice.get(path).json()["data"]["muted_until"] == answered
    out_of_range = alice.put(path, {"muted_until": "0001-01-01T00:00:00+13:00"})
    assert out_of_range.status_code == 422, out_of_range.text
    assert "muted_until" in out_of_range.json()["details"]


def test_nul_in_text_stored_as_text_is_422_and_content_keeps_it(server: RunningServer) -> None:
    """Found by schemathesis: PostgreSQL text cannot hold NUL, so a NUL in a name was a 500.
    Content is stored byte for byte and keeps it."""
    alice, bob = server.client(), server.client()
    group = alice.group_with(bob, name="Plain")
    nul = "a\u0000b"
    for method, path, body, field in [
        ("POST", "/conversations", {"type": "group", "name": nul, "user_ids": [bob.user_id]}, "name"),
        ("PUT", f"/conversations/{group['id']}", {"name": nul}, "name"),
        ("PUT", f"/conversations/{group['id']}/settings", {"custom_name": nul}, "custom_name"),
    ]:
        response = alice.request(method, path, json=body)
        assert response.status_code == 422, response.text
        assert field in response.json()["details"]
    sent = alice.send(group["id"], nul)
    assert alice.get(f"/messages/{sent['id']}").json()["data"]["content"] == nul


# --- schemathesis against the running service -------------------------------------------------

# Cases per operation (about 60 operations: about 30 s). More for a deeper run:
#   WHISPR_FUZZ_EXAMPLES=200 .venv/bin/pytest tests/api/test_openapi.py -k schemathesis
FUZZ_EXAMPLES = int(os.environ.get("WHISPR_FUZZ_EXAMPLES", "25"))
# Task targets (Cloud Tasks/Scheduler) and the events push endpoint (Pub/Sub) want a shared
# secret, which the test server does not set (they answer 403 tasks_not_configured): they have
# their own tests (test_scheduled.py, tests/cloud/test_sibling_events.py).
NOT_FUZZED_FUNCTIONS = {"tasks", "events"}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


def _real_ids(server: RunningServer, owner: UserClient) -> dict[str, str]:
    """A group (owner + bob) with a message carrying a reaction, for the path parameters, so that
    cases reach the handlers' success paths and not only their 404s."""
    bob = server.client()
    conversation = owner.group_with(bob, name="Fuzzed")
    message = owner.send(conversation["id"], "fuzz me")
    ids = {"conversation_id": conversation["id"], "message_id": message["id"], "user_id": bob.user_id, "emoji": "👍"}
    owner.post(f"/messages/{message['id']}/reactions", {"reaction": "👍"})
    scheduled = owner.post(
        "/messages/scheduled",
        {
            "conversation_id": conversation["id"],
            "content": "later",
            "message_type": "text",
            "client_random": client_random(),
            "scheduled_at": (datetime.now(timezone.utc) + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        },
    )
    sanction = owner.post(
        f"/conversations/{conversation['id']}/sanctions",
        {"user_id": bob.user_id, "kind": "mute", "duration_seconds": 3600},
    )
    report = owner.post("/reports", {"user_id": bob.user_id, "conversation_id": conversation["id"], "category": "spam"})
    for name, created in (("scheduled_id", scheduled), ("sanction_id", sanction), ("report_id", report)):
        if created.status_code == 201:  # routes still in the making may not be there yet
            body = created.json()
            ids[name] = body.get("data", body)["id"]
    bob.close()
    return ids


def _fuzz(
    strategy: st.SearchStrategy[schemathesis.Case], base_url: str, session: requests.Session, headers: dict[str, str]
) -> None:
    """Up to FUZZ_EXAMPLES cases of one operation; raises on the first failing one (no shrinking:
    schemathesis prints a curl command that reproduces it)."""

    @settings(
        max_examples=FUZZ_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def run(case: schemathesis.Case) -> None:
        case.call_and_validate(base_url=base_url, session=session, headers=headers, checks=CHECKS)

    run()


def test_schemathesis_finds_no_server_error_and_no_answer_outside_the_document(server: RunningServer) -> None:
    served = httpx.get(server.url + DOC_PATHS[0], timeout=60).json()  # built on first use: seconds on a busy machine
    schema = schemathesis.openapi.from_dict(served)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == len({(r.method, r.path) for r in ROUTES})
    base_url = server.url + BASE
    session = requests.Session()
    failures: dict[str, str] = {}
    tested = 0
    for op in operations:
        route = next(r for r in ROUTES if r.method == op.method.upper() and r.path == op.path)
        if route.function in NOT_FUZZED_FUNCTIONS:
            continue
        owner = server.client()
        headers = {"Authorization": f"Bearer {owner.token}"}
        real = {k: v for k, v in _real_ids(server, owner).items() if k in route.params} if route.params else {}
        strategies = [op.as_strategy(GenerationMode.POSITIVE), op.as_strategy(GenerationMode.NEGATIVE)]
        # the document's example bodies, on the real resources: the success answers get checked too
        media = served["paths"][route.path][route.method.lower()].get("requestBody", {}).get("content", {})
        for example in media.get("application/json", {}).get("examples", {}).values():
            strategies.append(
                op.as_strategy(GenerationMode.POSITIVE, path_parameters=real or None, body=example["value"])
            )
        if real:
            strategies.append(op.as_strategy(GenerationMode.POSITIVE, path_parameters=real))
            if route.body is not None or query_params(route):
                strategies.append(op.as_strategy(GenerationMode.NEGATIVE, path_parameters=real))

        try:
            _fuzz(st.one_of(strategies), base_url, session, headers)
        except (Exception, BaseExceptionGroup) as exc:  # a schemathesis FailureGroup is an exception group
            failures[op.label] = f"{type(exc).__name__}: {exc}"[:3000]
        finally:
            owner.close()
        tested += 1
    session.close()
    assert not failures, f"{len(failures)} of {tested} operations failed:\n\n" + "\n\n".join(
        f"== {label}\n{text}" for label, text in failures.items()
    )
    assert tested >= len(operations) - len([r for r in ROUTES if r.function in NOT_FUZZED_FUNCTIONS])


def test_ids_sent_to_the_fuzzer_are_real(server: RunningServer) -> None:
    """The fuzz run's fixed path parameters point at things the owner can see."""
    owner = server.client()
    ids = _real_ids(server, owner)
    assert owner.get(f"/conversations/{ids['conversation_id']}").status_code == 200
    assert owner.get(f"/messages/{ids['message_id']}").status_code == 200
    assert uuid.UUID(ids["user_id"])
    for name in ("scheduled_id", "sanction_id", "report_id"):
        if any(name in r.params for r in ROUTES):
            assert name in ids, f"could not create a real {name} for the fuzz run"
    owner.close()
