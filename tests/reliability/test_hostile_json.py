"""Hostile JSON (tests/reliability/hostile.py) through every body route of the route table and
every socket push: never a 5xx, never a crashed channel, the process alive, and every member's
reads still 200 afterwards.

The routes come from `ROUTES` and the pushes from the relay's own tables, so a route or push
added tomorrow is fuzzed the day it is added (a new body model needs a sample in
tests/api/test_error_contract.py's VALID_BODIES, which says so). The service runs as its own
process: a crash fails the test, not the run. Hypothesis runs derandomized (the same cases on
every run: CI does not fail by chance); `make soak` runs many more cases, randomized.
"""

from __future__ import annotations

import json
import os

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.http.routes import ROUTES
from shared.http.routing import Route
from shared.relay import calls
from tests.api.test_error_contract import World, make_world, route_id, valid_body
from tests.relay.phx import Phx
from tests.reliability.hostile import hostile, with_field
from tests.support import BASE, RunningServer

SOAK = os.environ.get("WHISPR_SOAK") == "1"
CASES = 400 if SOAK else 25  # per route, and per push event
WITH_BODY = [r for r in ROUTES if r.body is not None]
# every event a client may push on a conversation topic, and the join itself
PUSH_EVENTS = sorted({*calls.PUSHES, *calls.TYPING_EVENTS, "phx_join"})
counted: dict[str, int] = {}
# hypothesis warns that a 70 KB hostile string makes a long repr: it is meant to be long
pytestmark = pytest.mark.filterwarnings("ignore:Generating overly large repr")


def fuzz_settings() -> settings:
    return settings(
        max_examples=CASES,
        derandomize=not SOAK,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )


def assert_members_still_read(service: RunningServer, world: World) -> None:
    assert service.proc.poll() is None, "the service died"  # type: ignore[attr-defined]
    assert httpx.get(service.url + BASE + "/health", timeout=10).status_code == 200
    cid = world.conversation["id"]
    for member in (world.alice, world.bob):
        for path in ("/conversations", f"/conversations/{cid}", f"/conversations/{cid}/messages", "/sync"):
            response = member.get(path)
            assert response.status_code == 200, (member.user_id, path, response.status_code, response.text[:300])


@pytest.mark.parametrize("route", WITH_BODY, ids=route_id)
def test_hostile_json_on_every_body_route_never_5xx(own_service: RunningServer, route: Route) -> None:
    world = make_world(own_service)
    assert route.body is not None
    fields = [*route.body.model_fields, "junk"]

    @fuzz_settings()
    @given(value=hostile, field=st.sampled_from(fields), form=st.sampled_from(("whole", "field", "duplicate")))
    def one(value: str, field: str, form: str) -> None:
        if form == "whole":
            body = value
        else:
            valid = valid_body(route, world, world.alice) or {}
            body = with_field(valid, field, value, duplicate=form == "duplicate")
        response = world.alice.request(
            route.method,
            world.path(route),
            content=body.encode("utf-8", "surrogatepass"),
            headers={"Content-Type": "application/json"},
        )
        assert response.status_code < 500, (route_id(route), body[:300], response.status_code, response.text[:300])
        counted[route_id(route)] = counted.get(route_id(route), 0) + 1

    one()
    assert counted[route_id(route)] >= CASES, counted
    assert_members_still_read(own_service, world)


@pytest.mark.parametrize("event", PUSH_EVENTS)
def test_hostile_json_in_every_socket_push_never_crashes_the_channel(own_service: RunningServer, event: str) -> None:
    world = make_world(own_service)
    topic = f"conversation:{world.conversation['id']}"
    sock = Phx.open(own_service, world.alice.user_id)
    try:
        sock.join_ok(topic)
        sample = {"message_id": world.message["id"], "content": "x", "reaction": "👍", "up_to_seq": 1}

        @fuzz_settings()
        @given(
            value=hostile,
            field=st.sampled_from([*sample, "client_random", "metadata", "last_seq", "junk"]),
            form=st.sampled_from(("whole", "field", "duplicate")),
        )
        def one(value: str, field: str, form: str) -> None:
            payload = value if form == "whole" else with_field(sample, field, value, duplicate=form == "duplicate")
            join_ref = sock.join_refs[topic]
            ref = sock.next_ref()
            frame = f"[{json.dumps(join_ref)},{json.dumps(ref)},{json.dumps(topic)},{json.dumps(event)},{payload}]"
            raw = frame.encode("utf-8", "surrogatepass")
            try:
                sock.send_raw(raw.decode("utf-8"))
            except UnicodeDecodeError:
                sock.send_raw(raw)  # not UTF-8: a binary frame
            seen = sock.barrier()
            crashed = [
                m
                for m in seen
                if m.event == "phx_error"
                or (m.event == "phx_reply" and m.payload.get("response", {}).get("reason") == "internal_error")
            ]
            assert not crashed, (event, payload[:300], crashed)
            counted[event] = counted.get(event, 0) + 1

        one()
        assert counted[event] >= CASES, counted
        # the socket and the channel are still there: a plain push is served
        if event != "phx_join":
            sent = sock.ok(topic, "new_message", {"content": "still here", "message_type": "text", "client_random": 7})
            assert sent["message"]["content"] == "still here"
    finally:
        sock.close()
    assert_members_still_read(own_service, world)
