"""The error contract on every route of the table (api.md, "Conventions"): malformed JSON, wrong
types, oversize bodies, bad and unknown ids, bad query numbers, outsiders. Every answer is the
spec's error body with the right status, or a 2xx that is JSON (or 204 with no body); never a 500.

The tests iterate over `ROUTES`, so a new route is covered as soon as it is in the table. A new
body model needs a sample in `VALID_BODIES`, and a new path parameter a value in `World.ids`:
the tests say so when one is missing."""

from __future__ import annotations

import secrets
import types
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import httpx
import pytest

from shared.http.openapi import is_bare
from shared.http.routes import ROUTES
from shared.http.routing import Route
from tests.support import BASE, RunningServer, UserClient, assert_error, client_random, moderator_client, new_id

WITH_BODY = [r for r in ROUTES if r.body is not None]
AUTHENTICATED = [r for r in ROUTES if r.authenticated]
WITH_IDS = [r for r in ROUTES if any(p.endswith("id") for p in r.params)]
CONVERSATION_OR_MESSAGE = [r for r in ROUTES if {"conversation_id", "message_id"} & set(r.params)]
NON_UUID_PARAMS = {"emoji", "reaction"}
# routes only a global moderator may call (a token claim); the others answer them 403
MODERATOR_ONLY = {("GET", "/reports/queue"), ("GET", "/reports/stats"), ("PUT", "/reports/{report_id}/resolve")}
# api.md asks for a docs page: the pages and their files are the answers that are not JSON, each
# with the content type it must carry (the asset route is called with World.value("asset"), a script)
NOT_JSON = {
    ("GET", "/api/docs"): "text/html",
    ("GET", "/api/docs/{asset}"): "text/javascript",
    ("GET", "/api/realtime"): "text/html",
}


def route_id(route: Route) -> str:
    return f"{route.method} {route.path}"


def by_route(routes: list[Route]) -> pytest.MarkDecorator:
    return pytest.mark.parametrize("route", routes, ids=route_id)


@dataclass
class World:
    """A conversation with a message, seen from inside and outside.

    alice owns it and sent `message`; bob is a member; carol was never in it; dave was in it and
    left before the message was sent. The name and content carry secrets that outsiders must
    never see in any answer."""

    alice: UserClient
    bob: UserClient
    carol: UserClient
    dave: UserClient
    conversation: dict[str, Any]
    message: dict[str, Any]
    secret_name: str
    secret_content: str
    scheduled: dict[str, Any] | None = None  # alice's pending scheduled message in the conversation
    report: dict[str, Any] | None = None  # a pending report (on some user)
    sanction: dict[str, Any] | None = None  # a (lifted) sanction in the group
    server: RunningServer | None = None
    # the shared world's report is alice's (she reads it); the fresh ones' are someone else's, so
    # that alice stays far from the 20 reports a day (a moderator resolves them)
    alice_reports: bool = True

    def value(self, param: str) -> str:
        """A real value for a path parameter; scheduled messages, reports and sanctions are made
        when a route first needs one (most routes do not: worlds stay cheap)."""
        if param == "scheduled_id":
            if self.scheduled is None:
                self.scheduled = _schedule(self.alice, self.conversation["id"])
            return str(self.scheduled["id"])
        if param == "report_id":
            if self.report is None:
                assert self.server is not None
                reporter = self.alice if self.alice_reports else self.server.client()
                reported = reporter.post("/reports", {"user_id": new_id(), "category": "spam"})
                assert reported.status_code == 201, reported.text
                self.report = dict(reported.json()["data"])
            return str(self.report["id"])
        if param == "sanction_id":
            if self.sanction is None and self.conversation["type"] == "group":
                # muted and at once lifted: the world behaves as if it never was
                path = f"/conversations/{self.conversation['id']}/sanctions"
                muted = self.alice.post(path, {"user_id": self.bob.user_id, "kind": "mute", "duration_seconds": 60})
                assert muted.status_code == 201, muted.text
                self.sanction = dict(muted.json()["data"])
                assert self.alice.delete(f"{path}/{self.sanction['id']}").status_code == 200
            return str(self.sanction["id"]) if self.sanction else new_id()
        fixed = {
            "conversation_id": self.conversation["id"],
            "message_id": self.message["id"],
            "user_id": self.bob.user_id,
            "emoji": "👍",
            "asset": "docs.js",  # one of the API reference's files (shared/http/handlers/docs.ASSETS)
        }
        assert param in fixed, f"teach World.value() a real value for {param}"
        return str(fixed[param])

    def path(self, route: Route, **overrides: str) -> str:
        return route.path.format(**{p: overrides[p] if p in overrides else self.value(p) for p in route.params})


def make_world(server: RunningServer, kind: str = "group", people: World | None = None) -> World:
    """A new world; with `people`, a new conversation between the same people (cheaper)."""
    if people is None:
        alice, bob, carol, dave = (server.client() for _ in range(4))
    else:
        alice, bob, carol, dave = people.alice, people.bob, people.carol, people.dave
    secret_name = f"secret-name-{secrets.token_hex(6)}"
    secret_content = f"secret-content-{secrets.token_hex(6)}"
    if kind == "group":
        conversation = alice.group_with(bob, dave, name=secret_name)
        left = dave.post(f"/conversations/{conversation['id']}/leave")
        assert left.status_code == 204, left.text
    else:
        conversation = alice.direct_with(bob)
        secret_name = conversation["id"]  # a direct conversation has no name; its id is what alice knows
    message = alice.send(conversation["id"], secret_content)
    return World(
        alice,
        bob,
        carol,
        dave,
        conversation,
        message,
        secret_name,
        secret_content,
        server=server,
        alice_reports=people is None,
    )


def _schedule(alice: UserClient, conversation_id: str) -> dict[str, Any]:
    scheduled = alice.post("/messages/scheduled", _schedule_body(conversation_id))
    assert scheduled.status_code == 201, scheduled.text
    return dict(scheduled.json()["data"])


def _schedule_body(conversation_id: str) -> dict[str, Any]:
    at = datetime.now(timezone.utc) + timedelta(hours=1)
    return {"conversation_id": conversation_id, "content": "later", "scheduled_at": at.isoformat()}


@pytest.fixture(scope="module")
def world(server: RunningServer) -> World:
    """One shared world for the tests that change nothing (their requests all fail)."""
    return make_world(server)


# One valid body per body model, given the world and the caller. A new model needs a sample here.
VALID_BODIES: dict[str, Callable[[World, UserClient], dict[str, Any]]] = {
    "CreateConversation": lambda w, me: {"type": "group", "name": "New group", "user_ids": [w.bob.user_id]},
    "UpdateConversation": lambda w, me: {"name": "Renamed", "metadata": {"topic": "x"}},
    "UpdateSettings": lambda w, me: {"notifications_enabled": False, "custom_name": "mine"},
    "AddMembers": lambda w, me: {"user_ids": [me.user_id, new_id()]},
    "ChangeRole": lambda w, me: {"role": "admin"},
    "SendMessage": lambda w, me: {"content": "hi", "message_type": "text", "client_random": client_random()},
    "MarkRead": lambda w, me: {"up_to_seq": 1},
    "EditMessage": lambda w, me: {"content": "edited"},
    "AddReaction": lambda w, me: {"reaction": "👍"},
    "SaveDraft": lambda w, me: {"content": "a draft"},
    "AddAttachment": lambda w, me: {"media_id": f"media-{secrets.token_hex(4)}", "media_type": "image"},
    "ForwardMessage": lambda w, me: {"conversation_ids": [w.conversation["id"]]},
    "ScheduleMessage": lambda w, me: _schedule_body(w.conversation["id"]),
    "UpdateScheduled": lambda w, me: {"content": "later, edited"},
    "CreateReport": lambda w, me: {"user_id": new_id(), "category": "spam", "reason": "sample"},
    "ResolveReport": lambda w, me: {"resolution": "dismissed"},
    "CreateSanction": lambda w, me: {"user_id": w.bob.user_id, "kind": "mute", "duration_seconds": 60},
    "InboundBody": lambda w, me: {"message": {"data": "e30=", "messageId": "1"}, "subscription": "s"},
}


def valid_body(route: Route, world: World, caller: UserClient) -> dict[str, Any] | None:
    if route.body is None:
        return None
    name = route.body.__name__
    assert name in VALID_BODIES, f"add a valid sample body for {name} to VALID_BODIES ({route_id(route)})"
    return VALID_BODIES[name](world, caller)


def call(client: UserClient, route: Route, path: str, body: Any = None, **kwargs: Any) -> httpx.Response:
    if body is not None:
        kwargs["json"] = body
    return client.request(route.method, path, **kwargs)


def assert_json_or_204(response: httpx.Response, route: Route | None = None) -> None:
    """api.md: every answer is either 204 with no body or a JSON body; never an empty 200. The
    pages and their files (NOT_JSON) answer their own content type, never empty; their errors are JSON."""
    assert response.status_code < 500, f"{response.status_code}: {response.text}"
    if route is not None and (route.method, route.path) in NOT_JSON and response.status_code < 300:
        assert response.status_code == 200, response.status_code
        media_type = response.headers.get("content-type", "").split(";")[0]
        assert media_type == NOT_JSON[(route.method, route.path)], response.headers
        assert response.content
        return
    if response.status_code == 204:
        assert response.content == b"", response.content
        return
    assert response.headers.get("content-type", "").startswith("application/json"), response.headers
    assert response.content, f"empty {response.status_code}"
    response.json()


def assert_secret_kept(response: httpx.Response, world: World) -> None:
    assert world.secret_name not in response.text
    assert world.secret_content not in response.text


# --- malformed JSON ---------------------------------------------------------------------------

MALFORMED = [
    b'{"content": ',
    b"not json",
    b"{'single': 'quotes'}",
    b'{"a": 1} {"b": 2}',
    b"\xff\xfe\x00garbage",
    b"[1, 2, 3]",
    b'"a string"',
    b"42",
    b"null",
]


@by_route(WITH_BODY)
def test_malformed_json_is_400_invalid_json(server: RunningServer, world: World, route: Route) -> None:
    for raw in MALFORMED:
        response = world.alice.request(
            route.method, world.path(route), content=raw, headers={"Content-Type": "application/json"}
        )
        assert_error(response, 400, "invalid_json")


# --- wrong types ------------------------------------------------------------------------------


def wrong_values(annotation: Any) -> list[Any]:
    """JSON values that are not of the field's type (independent of how strict the model is)."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        return wrong_values(args[0])
    if origin in (Union, types.UnionType):
        (inner,) = [a for a in args if a is not type(None)]
        return wrong_values(inner)
    if origin is Literal:
        return [123, "not-one-of-the-choices", ["text"]]
    if origin is list:
        return ["notalist", {"a": 1}, 7, [123]]
    if origin is dict:
        return ["notadict", [1, 2], 7]
    if annotation is bool:
        return ["notabool", 2, "true"]
    if annotation is int:
        return ["x", 1.5, True, [1]]
    if annotation is str:
        return [123, True, {"a": 1}, ["a"]]
    if annotation is datetime:
        return ["notatime", [2020]]
    raise AssertionError(f"teach wrong_values about {annotation!r}")


@by_route(WITH_BODY)
def test_wrong_types_are_422_naming_the_field(server: RunningServer, world: World, route: Route) -> None:
    assert route.body is not None
    for name, info in route.body.model_fields.items():
        for wrong in wrong_values(info.annotation):
            body = {**(valid_body(route, world, world.alice) or {}), name: wrong}
            forms = [body] if route.body_key is None else [body, {route.body_key: body}]
            for form in forms:
                response = call(world.alice, route, world.path(route), form)
                error = assert_error(response, 422)
                assert any(k == name or k.startswith(name + ".") for k in error["details"]), (name, wrong, error)
                assert all(
                    isinstance(v, list) and all(isinstance(m, str) for m in v) for v in error["details"].values()
                ), error


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/conversations/{c}/messages", {"content": 123, "client_random": 1}, "content"),
        ("/conversations/{c}/messages", {"content": "hi", "client_random": "x"}, "client_random"),
        ("/conversations/{c}/messages", {"content": "hi"}, "client_random"),
        ("/conversations/{c}/messages", {"client_random": 5}, "content"),
        ("/conversations/{c}/messages", {"content": "hi", "client_random": -1}, "client_random"),
        ("/conversations/{c}/messages", {"content": "hi", "client_random": 2**32}, "client_random"),
        ("/conversations/{c}/messages", {"content": "hi", "client_random": 10**30}, "client_random"),
        (
            "/conversations/{c}/messages",
            {"content": "hi", "client_random": 1, "message_type": "system"},
            "message_type",
        ),
        ("/conversations/{c}/messages", {"content": "hi", "client_random": 1, "reply_to_id": "nope"}, "reply_to_id"),
        (
            "/conversations/{c}/messages",
            {"content": "hi", "client_random": 1, "expires_in_seconds": 5},
            "expires_in_seconds",
        ),
        ("/conversations", {"type": "group", "name": "G", "user_ids": "notalist"}, "user_ids"),
        ("/conversations", {"type": "group", "name": "G", "user_ids": ["not-a-uuid"]}, "user_ids"),
        ("/conversations", {"type": "direct", "other_user_id": "not-a-uuid"}, "other_user_id"),
        ("/conversations/{c}/members", {"user_ids": "notalist"}, "user_ids"),
        ("/conversations/{c}/read", {"up_to_seq": -1}, "up_to_seq"),
        ("/conversations/{c}/read", {"message_id": "nope"}, "message_id"),
    ],
)
def test_named_wrong_values_are_422(
    server: RunningServer, world: World, path: str, body: dict[str, Any], field: str
) -> None:
    response = world.alice.post(path.format(c=world.conversation["id"]), body)
    error = assert_error(response, 422)
    assert any(k == field or k.startswith(field + ".") for k in error["details"]), error


# --- oversize ---------------------------------------------------------------------------------


def test_content_over_64_kib_is_413_and_64_kib_is_accepted(server: RunningServer, world: World) -> None:
    path = f"/conversations/{world.conversation['id']}/messages"
    limit = 64 * 1024
    exact = world.alice.post(path, {"content": "a" * limit, "client_random": client_random()})
    assert exact.status_code == 201, exact.text
    assert len(exact.json()["data"]["content"]) == limit
    over = world.alice.post(path, {"content": "a" * (limit + 1), "client_random": client_random()})
    assert_error(over, 413, "content_too_large")
    # bytes, not characters: 32,769 two-byte characters are 65,538 bytes
    wide = world.alice.post(path, {"content": "é" * (limit // 2 + 1), "client_random": client_random()})
    assert_error(wide, 413, "content_too_large")


def test_edit_over_64_kib_is_413(server: RunningServer, world: World) -> None:
    response = world.alice.put(f"/messages/{world.message['id']}", {"content": "a" * (64 * 1024 + 1)})
    assert_error(response, 413)
    unchanged = world.bob.get(f"/messages/{world.message['id']}").json()["data"]
    assert unchanged["content"] == world.secret_content and unchanged["is_edited"] is False


def test_metadata_over_16_kib_is_413(server: RunningServer, world: World) -> None:
    response = world.alice.post(
        f"/conversations/{world.conversation['id']}/messages",
        {"content": "hi", "client_random": 1, "metadata": {"x": "a" * (16 * 1024 + 1)}},
    )
    assert_error(response, 413, "metadata_too_large")


@by_route(WITH_BODY)
def test_request_body_over_256_kib_is_413(server: RunningServer, world: World, route: Route) -> None:
    body = {**(valid_body(route, world, world.alice) or {}), "padding": "a" * (256 * 1024)}
    declared = call(world.alice, route, world.path(route), body)
    assert_error(declared, 413, "request_too_large")

    raw = httpx.Request("POST", "/", json=body).content

    def chunks() -> Any:  # no Content-Length: the server must count while reading
        for start in range(0, len(raw), 16 * 1024):
            yield raw[start : start + 16 * 1024]

    streamed = world.alice.request(
        route.method, world.path(route), content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert "content-length" not in streamed.request.headers
    assert_error(streamed, 413, "request_too_large")


# --- ids in the path --------------------------------------------------------------------------

BAD_IDS = [
    "not-a-uuid",
    "1234",
    "123e4567-e89b-12d3-a456-42661417400g",
    "123e4567-e89b-12d3-a456-4266141740000",
    "%20",
    "null",
]


@by_route(WITH_IDS)
def test_bad_uuid_in_path_is_400_invalid_id(server: RunningServer, world: World, route: Route) -> None:
    for param in [p for p in route.params if p not in NON_UUID_PARAMS]:
        for bad in BAD_IDS:
            response = call(
                world.alice, route, world.path(route, **{param: bad}), valid_body(route, world, world.alice)
            )
            error = assert_error(response, 400, "invalid_id")
            assert param in error["details"], error


@by_route([r for r in ROUTES if {"conversation_id", "message_id", "user_id"} & set(r.params)])
def test_unknown_ids_are_404(server: RunningServer, world: World, route: Route) -> None:
    for param in [p for p in ("conversation_id", "message_id", "user_id") if p in route.params]:
        response = call(
            world.alice, route, world.path(route, **{param: new_id()}), valid_body(route, world, world.alice)
        )
        assert_error(response, 404)
    after = world.alice.get(f"/conversations/{world.conversation['id']}").json()["data"]
    assert sorted(after["member_user_ids"]) == sorted([world.alice.user_id, world.bob.user_id])


def test_unknown_route_and_wrong_method_answer_the_error_body(server: RunningServer, world: World) -> None:
    assert_error(world.alice.get("/no-such-thing"), 404, "route_not_found")
    error = assert_error(world.alice.request("PATCH", f"/messages/{world.message['id']}"), 405)
    assert sorted(error["details"]["allowed"]) == ["DELETE", "GET", "PUT"]


# --- outsiders --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["group", "direct"])
def test_non_members_get_nothing_on_any_conversation_or_message_route(server: RunningServer, kind: str) -> None:
    world = make_world(server, kind)
    outsiders = [world.carol, world.dave] if kind == "group" else [world.carol]
    for outsider in outsiders:
        for route in CONVERSATION_OR_MESSAGE:
            response = call(
                outsider,
                route,
                world.path(route),
                valid_body(route, world, outsider),
                headers={"Content-Type": "application/json"},
            )
            assert response.status_code in (403, 404), f"{route_id(route)}: {response.status_code} {response.text}"
            assert_error(response, response.status_code)
            assert_secret_kept(response, world)
    # and nothing they asked for happened
    seen = world.alice.get(f"/conversations/{world.conversation['id']}")
    assert seen.status_code == 200, seen.text
    conversation = seen.json()["data"]
    assert sorted(conversation["member_user_ids"]) == sorted([world.alice.user_id, world.bob.user_id])
    assert conversation["is_active"] is True
    assert conversation["last_seq"] == world.message["seq"]
    history = world.alice.get(f"/conversations/{world.conversation['id']}/messages").json()["data"]
    assert [m["id"] for m in history if m["message_type"] != "system"] == [world.message["id"]]
    assert history[0]["content"] == world.secret_content and history[0]["is_edited"] is False
    assert history[0]["is_deleted"] is False
    if kind == "group":
        assert conversation["name"] == world.secret_name
    # the outsiders' own lists show nothing of it either
    for outsider in outsiders:
        listed = outsider.get("/conversations", params={"include_archived": "true"})
        assert world.conversation["id"] not in {c["id"] for c in listed.json()["data"]}
        assert_secret_kept(listed, world)


# --- query strings ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "params", "code"),
    [
        ("/conversations", {"limit": "abc"}, "invalid_number"),
        ("/conversations", {"limit": "1.5"}, "invalid_number"),
        ("/conversations", {"limit": "1e3"}, "invalid_number"),
        ("/conversations", {"include_archived": "maybe"}, "invalid_boolean"),
        ("/conversations", {"limit": "5", "cursor": "!!!not-a-cursor"}, "invalid_cursor"),
        ("/conversations/archived", {"limit": "abc"}, "invalid_number"),
        ("/conversations/archived", {"offset": "abc"}, "invalid_number"),
        ("{c}/messages", {"limit": "abc"}, "invalid_number"),
        ("{c}/messages", {"before_seq": "abc"}, "invalid_number"),
        ("{c}/messages", {"after_seq": "x1"}, "invalid_number"),
        ("{c}/messages", {"before": "yesterday"}, "invalid_time"),
        ("{c}/messages", {"after": "2024-13-45"}, "invalid_time"),
    ],
)
def test_bad_values_in_the_query_are_400(
    server: RunningServer, world: World, path: str, params: dict[str, str], code: str
) -> None:
    path = path.replace("{c}", f"/conversations/{world.conversation['id']}")
    error = assert_error(world.alice.get(path, params=params), 400, code)
    assert error["error"]


def test_bad_boolean_on_delete_is_400_and_deletes_nothing(server: RunningServer, world: World) -> None:
    response = world.alice.delete(f"/messages/{world.message['id']}", params={"delete_for_everyone": "maybe"})
    assert_error(response, 400, "invalid_boolean")
    assert world.bob.get(f"/messages/{world.message['id']}").json()["data"]["is_deleted"] is False


@pytest.mark.parametrize("params", [{"limit": "0"}, {"limit": "-3"}, {"before_seq": "-1"}])
def test_out_of_range_numbers_are_client_errors(server: RunningServer, world: World, params: dict[str, str]) -> None:
    response = world.alice.get(f"/conversations/{world.conversation['id']}/messages", params=params)
    assert response.status_code in (400, 422), response.text
    assert_error(response, response.status_code)


@pytest.mark.parametrize("param", ["before_seq", "after_seq", "limit"])
@pytest.mark.parametrize("huge", ["9" * 40, str(2**63), str(-(2**63) - 1)])
def test_numbers_beyond_64_bits_in_the_query_are_400(
    server: RunningServer, world: World, param: str, huge: str
) -> None:
    response = world.alice.get(f"/conversations/{world.conversation['id']}/messages", params={param: huge})
    error = assert_error(response, 400, "invalid_number")
    assert param in error["details"]


def test_the_largest_64_bit_cursor_is_a_number(server: RunningServer, world: World) -> None:
    response = world.alice.get(
        f"/conversations/{world.conversation['id']}/messages", params={"before_seq": str(2**63 - 1)}
    )
    assert response.status_code == 200, response.text
    assert world.message["id"] in [m["id"] for m in response.json()["data"]]


GARBAGE_QUERY = {
    "limit": "abc",
    "offset": "-x",
    "cursor": "%%%",
    "before_seq": "1.5",
    "after_seq": "[]",
    "before": "never",
    "after": "2020-02-30",
    "include_archived": "perhaps",
    "delete_for_everyone": "2",
    "since": "bogus",
    "q": "\u0000",
    "query": "'; drop table messages; --",
    "conversation_id": "not-a-uuid",
    "user_id": "nope",
}


@by_route([r for r in ROUTES if r.query])
def test_garbage_query_values_never_500(server: RunningServer, world: World, route: Route) -> None:
    """Garbage in every parameter the route takes at once; one at a time on reads (which change nothing)."""
    current = world if route.method == "GET" else make_world(server, people=world)
    garbage = {q.name: GARBAGE_QUERY.get(q.name, "\u0000 [] %%%") for q in route.query}
    queries = [garbage] + ([{k: v} for k, v in garbage.items()] if route.method == "GET" else [])
    for query in queries:
        response = call(
            current.alice, route, current.path(route), valid_body(route, current, current.alice), params=query
        )
        assert_json_or_204(response, route)
        if response.status_code >= 400:
            assert_error(response, response.status_code)


def sample_query(route: Route, world: World) -> dict[str, str]:
    """A plausible value for every query parameter the route declares."""
    by_name = {
        "conversation_id": world.conversation["id"],
        "user_id": world.alice.user_id,
        "type": "group",
        "status": "pending",
        "category": "spam",
        "q": "secret",
        "query": "secret",
    }
    by_type = {"integer": "1", "boolean": "false"}
    values = {}
    for param in route.query:
        if param.format == "date-time":
            values[param.name] = "2030-01-01T00:00:00Z"
        else:
            values[param.name] = by_name.get(param.name) or by_type.get(param.type, "x")
    return values


@by_route(ROUTES)
def test_a_query_parameter_the_route_does_not_take_is_400(world: World, route: Route) -> None:
    """Never accepted and ignored (issue 11): the route table says what each route takes, and
    anything else is refused before the route does anything."""
    params = {**sample_query(route, world), "not_a_parameter": "1"}
    response = call(world.alice, route, world.path(route), valid_body(route, world, world.alice), params=params)
    body = assert_error(response, 400, "unknown_parameter")
    assert list(body["details"]) == ["not_a_parameter"] and "not_a_parameter" in body["error"]
    for param in route.query:
        assert param.name in body["error"]  # and says what the route takes


@by_route([r for r in ROUTES if r.query])
def test_every_query_parameter_the_route_declares_is_taken(server: RunningServer, world: World, route: Route) -> None:
    current = world if route.method == "GET" else make_world(server, people=world)
    caller = moderator_client(server) if (route.method, route.path) in MODERATOR_ONLY else current.alice
    response = call(
        caller, route, current.path(route), valid_body(route, current, caller), params=sample_query(route, current)
    )
    assert_json_or_204(response, route)
    if response.status_code >= 400:
        assert response.json()["code"] != "unknown_parameter", response.text


# --- absent bodies, content types, success shapes ---------------------------------------------


ANONYMOUS = httpx.Client(timeout=30)  # no Authorization header


@by_route(AUTHENTICATED)
def test_no_token_is_401_on_every_authenticated_route(server: RunningServer, world: World, route: Route) -> None:
    response = ANONYMOUS.request(
        route.method, server.url + BASE + world.path(route), json=valid_body(route, world, world.alice)
    )
    assert_error(response, 401)
    assert_secret_kept(response, world)


# task targets and the events push endpoint need WHISPR_TASKS_SECRET: test_scheduled.py, test_sibling_events.py
@by_route([r for r in ROUTES if r.function not in ("tasks", "events")])
def test_every_route_answers_204_empty_or_json_on_success(server: RunningServer, world: World, route: Route) -> None:
    """A valid call (on a fresh world unless it only reads); GETs and DELETEs carry
    Content-Type: application/json and no body, as the client sends them: that is not an error."""
    world = world if route.method == "GET" else make_world(server, people=world)
    caller = world.bob if route.path.endswith("/leave") else world.alice
    if (route.method, route.path) in MODERATOR_ONLY:
        caller = moderator_client(server)
    body = valid_body(route, world, caller)
    headers = {"Content-Type": "application/json"}
    response = call(caller, route, world.path(route), body, headers=headers)
    assert 200 <= response.status_code < 300, f"{route_id(route)}: {response.status_code} {response.text}"
    assert response.status_code == route.status, f"{route_id(route)}: {response.status_code} {response.text}"
    assert_json_or_204(response, route)
    if response.status_code != 204 and (route.method, route.path) not in NOT_JSON:
        envelope = response.json()
        if not is_bare(route):  # e.g. GET /messages/scheduled answers a bare array (api.md)
            assert set(envelope) == {"data", "meta"}, envelope


@pytest.mark.parametrize("suffix", ["/archive", "/pin", "/read"])
@pytest.mark.parametrize("content_type", [None, "application/json"])
def test_posts_without_a_body_are_not_errors(server: RunningServer, suffix: str, content_type: str | None) -> None:
    world = make_world(server)
    headers = {"Content-Type": content_type} if content_type else {}
    response = world.bob.request("POST", f"/conversations/{world.conversation['id']}{suffix}", headers=headers)
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    if suffix == "/archive":
        assert data["is_archived"] is True
        archived = world.bob.get("/conversations/archived").json()["data"]
        assert [c["id"] for c in archived] == [world.conversation["id"]]
    elif suffix == "/pin":
        assert data["is_pinned"] is True
    else:  # no body: read everything
        assert data["last_read_seq"] == world.message["seq"]


@by_route(
    [r for r in WITH_BODY if r.body is not None and not any(f.is_required() for f in r.body.model_fields.values())]
)
def test_routes_whose_fields_are_all_optional_accept_an_absent_body(server: RunningServer, route: Route) -> None:
    world = make_world(server)
    response = world.alice.request(route.method, world.path(route), headers={"Content-Type": "application/json"})
    assert response.status_code < 500, response.text
    assert response.status_code not in (400, 413), response.text  # an absent body is not malformed
    assert_json_or_204(response)


def test_uppercase_ids_in_the_path_are_the_same_resource(server: RunningServer, world: World) -> None:
    response = world.alice.get(f"/conversations/{world.conversation['id'].upper()}")
    assert response.status_code == 200, response.text
    assert response.json()["data"]["id"] == world.conversation["id"]
    assert str(uuid.UUID(response.json()["data"]["id"])) == response.json()["data"]["id"]


# --- outsiders and things that are not theirs -------------------------------------------------

SOMEONE_ELSES = [
    r
    for r in ROUTES
    if r.authenticated and {"scheduled_id", "report_id", "sanction_id"} & set(r.params) and r.function != "tasks"
]


@by_route(SOMEONE_ELSES)
def test_outsiders_get_nothing_of_someone_elses_scheduled_message_report_or_sanction(
    server: RunningServer, route: Route
) -> None:
    world = make_world(server)
    for param in ("scheduled_id", "report_id", "sanction_id"):
        world.value(param)
    assert world.scheduled is not None and world.report is not None and world.sanction is not None
    for outsider in (world.carol, world.dave):
        response = call(outsider, route, world.path(route), valid_body(route, world, outsider))
        assert response.status_code in (403, 404), f"{route_id(route)}: {response.status_code} {response.text}"
        assert_error(response, response.status_code)
        assert_secret_kept(response, world)
    scheduled = world.alice.get("/messages/scheduled").json()
    mine = [s for s in scheduled if s["id"] == world.scheduled["id"]]
    assert [(s["status"], s["content"], s["scheduled_at"]) for s in mine] == [
        ("pending", world.scheduled["content"], world.scheduled["scheduled_at"])
    ]
    report = world.alice.get(f"/reports/{world.report['id']}")
    assert report.status_code == 200, report.text
    assert report.json()["data"]["status"] == world.report["status"]
    assert report.json()["data"]["resolution"] is None


def test_outsiders_find_nothing_of_it_in_any_listing_search_or_sync(server: RunningServer) -> None:
    """Every authenticated GET without ids in its path, asked by outsiders about the secrets."""
    world = make_world(server)
    lookups = {"q": world.secret_name, "query": world.secret_content, "conversation_id": world.conversation["id"]}
    listings = [r for r in AUTHENTICATED if r.method == "GET" and not r.params]
    assert listings
    for outsider in (world.carol, world.dave):
        for route in listings:
            for params in ({}, lookups, {"q": world.secret_content, "query": world.secret_name}):
                response = outsider.get(route.path, params=params)
                assert response.status_code < 500, f"{route_id(route)}: {response.text}"
                assert world.secret_content not in response.text, route_id(route)
                assert world.message["id"] not in response.text, route_id(route)
                if outsider is world.carol:  # dave was there when the group got its name
                    assert world.secret_name not in response.text, route_id(route)
    # the control: the insiders' own search does find it
    found = world.bob.get("/messages/search", params={"query": world.secret_content})
    assert found.status_code == 200, found.text
    assert world.message["id"] in [m["id"] for m in found.json()["data"]]
