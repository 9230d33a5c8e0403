"""The authorization matrix, generated from the route table (issue 10): every authenticated route
with every bad token, and every route for a plain member; the socket's upgrade and joins for the
same identities. A route added to `ROUTES` is in the matrix the day it is added: a member is expected
to succeed on it unless `MEMBER_REFUSED` says otherwise (a new owner-only route fails here until
it is listed, which is the point).

What is already generated elsewhere over the same table, and not repeated here:
tests/api/test_error_contract.py (no token on every route; outsiders and ex-members on every
conversation and message route, and on someone else's scheduled message, report and sanction;
nothing of a conversation in any listing, search or sync of theirs), tests/api/test_auth.py (each
bad token's exact error code, JWKS mode).
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from shared.auth.keys import DEV_KID
from shared.http.routes import ROUTES
from shared.http.routing import Route
from tests.api.test_auth import claims, dev_key, es256, hs256, unsigned
from tests.api.test_error_contract import (
    World,
    assert_secret_kept,
    call,
    make_world,
    route_id,
    valid_body,
)
from tests.relay.phx import Phx, socket_url
from tests.support import BASE, RunningServer, assert_error, new_id

AUTHENTICATED = [r for r in ROUTES if r.authenticated]


def bad_tokens(server: RunningServer, user_id: str) -> dict[str, str]:
    """Tokens for `user_id` that must all be refused: each is right but for one thing."""
    key = dev_key(server)
    now = int(time.time())
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return {
        "expired": es256(key, DEV_KID, sub=user_id, iat=now - 3600, exp=now - 60),
        "foreign-key": es256(ec.generate_private_key(ec.SECP256R1()), DEV_KID, sub=user_id),
        "alg-none": unsigned({"alg": "none", "typ": "JWT", "kid": DEV_KID}, claims(sub=user_id)),
        "hs256-public-key": hs256(public_pem, {"alg": "HS256", "typ": "JWT", "kid": DEV_KID}, claims(sub=user_id)),
        "unknown-kid": es256(key, "no-such-kid", sub=user_id),
        "future-nbf": es256(key, DEV_KID, sub=user_id, nbf=now + 3600),
    }


BAD_TOKEN_KINDS = ["expired", "foreign-key", "alg-none", "hs256-public-key", "unknown-kid", "future-nbf"]


def world_state(world: World) -> dict[str, Any]:
    """What a refused request must not have changed, as the owner sees it."""
    cid = world.conversation["id"]
    conversation = world.alice.get(f"/conversations/{cid}").json()["data"]
    history = world.alice.get(f"/conversations/{cid}/messages").json()["data"]
    return {
        "name": conversation["name"],
        "members": sorted(conversation["member_user_ids"]),
        "last_seq": conversation["last_seq"],
        "history": [(m["id"], m["content"], m["is_deleted"], m["is_edited"]) for m in history],
        "scheduled": [(s["id"], s["status"]) for s in world.alice.get("/messages/scheduled").json()],
    }


@pytest.mark.parametrize("kind", BAD_TOKEN_KINDS)
def test_every_bad_token_is_refused_on_every_authenticated_route(server: RunningServer, kind: str) -> None:
    world = make_world(server)
    for param in ("scheduled_id", "report_id", "sanction_id"):
        world.value(param)
    before = world_state(world)
    token = bad_tokens(server, world.alice.user_id)[kind]  # the owner's own id: only the token is wrong
    with httpx.Client(base_url=server.url + BASE, headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
        for route in AUTHENTICATED:
            body = valid_body(route, world, world.alice)
            response = http.request(route.method, world.path(route), json=body)
            error = assert_error(response, 401)
            assert error["code"] in ("invalid_token", "token_expired", "missing_token"), (route_id(route), error)
            assert_secret_kept(response, world)
    assert world_state(world) == before, "a request with a bad token changed something"


@pytest.mark.parametrize("kind", BAD_TOKEN_KINDS)
def test_every_bad_token_is_refused_at_the_socket_upgrade(server: RunningServer, kind: str) -> None:
    user = new_id()
    token = bad_tokens(server, user)[kind]
    for params in ({"token": token, "vsn": "2.0.0"}, {"token": token, "vsn": "2.0.0", "user_id": user}):
        with pytest.raises(InvalidStatus) as refused:
            connect(socket_url(server, **params), open_timeout=10).close()
        assert refused.value.response.status_code == 403


# A plain member (not owner or admin) is refused these on the owner's conversation and message
# (the error code each answers). Every other authenticated route must succeed for a member.
MEMBER_REFUSED: dict[str, str] = {
    "PUT /conversations/{conversation_id}": "insufficient_role",
    "DELETE /conversations/{conversation_id}": "insufficient_role",
    "POST /conversations/{conversation_id}/members": "insufficient_role",
    "PATCH /conversations/{conversation_id}/members/{user_id}/role": "insufficient_role",
    "POST /conversations/{conversation_id}/sanctions": "insufficient_role",
    "DELETE /conversations/{conversation_id}/sanctions/{sanction_id}": "insufficient_role",
    "PUT /messages/{message_id}": "not_sender",
    "GET /messages/{message_id}/status": "not_sender",
    "POST /messages/{message_id}/attachments": "not_sender",
    "POST /messages/{message_id}/pin": "insufficient_role",
    # someone else's scheduled message and report do not exist for the member
    "PATCH /messages/scheduled/{scheduled_id}": "scheduled_message_not_found",
    "DELETE /messages/scheduled/{scheduled_id}": "scheduled_message_not_found",
    "GET /reports/{report_id}": "report_not_found",
    # global moderators only
    "GET /reports/queue": "not_a_moderator",
    "GET /reports/stats": "not_a_moderator",
    "PUT /reports/{report_id}/resolve": "not_a_moderator",
}


def member_body(route: Route, world: World) -> dict[str, Any] | None:
    if route.body is not None and route.body.__name__ == "CreateConversation":
        return {"type": "group", "name": "Bob's", "user_ids": [world.carol.user_id]}
    return valid_body(route, world, world.bob)


@pytest.fixture(scope="module")
def people(server: RunningServer) -> World:
    return make_world(server)


@pytest.mark.parametrize("route", AUTHENTICATED, ids=route_id)
def test_a_plain_member_on_every_route(server: RunningServer, people: World, route: Route) -> None:
    """bob, a member of alice's group, on alice's conversation, message, scheduled message,
    report and sanction: allowed unless the table says so; refused means nothing changed."""
    world = make_world(server, people=people)
    for param in route.params:
        world.value(param)
    before = world_state(world)
    response = call(world.bob, route, world.path(route), member_body(route, world))
    refused = MEMBER_REFUSED.get(route_id(route))
    if refused is None:
        assert 200 <= response.status_code < 300, (
            f"{route_id(route)}: a member got {response.status_code} {response.text[:300]}; "
            "if only owners, admins or moderators may do this, list it in MEMBER_REFUSED"
        )
        return
    error = assert_error(response, response.status_code, refused)
    assert response.status_code in (403, 404), error
    assert world_state(world) == before, f"{route_id(route)}: refused, yet something changed"


@pytest.mark.parametrize(
    ("what", "method", "path", "params", "code"),
    [
        ("remove the owner", "DELETE", "/conversations/{c}/members/{alice}", {}, "insufficient_role"),
        ("delete the owner's message for everyone", "DELETE", "/messages/{m}", {"delete_for_everyone": "true"}, None),
        ("unpin the owner's pinned message", "DELETE", "/messages/{m}/pin", {}, None),
        ("remove the owner's reaction", "DELETE", "/messages/{m}/reactions/{emoji}", {}, "own"),
    ],
)
def test_a_plain_member_cannot_act_on_others(
    server: RunningServer, what: str, method: str, path: str, params: dict[str, str], code: str | None
) -> None:
    world = make_world(server)
    cid, mid = world.conversation["id"], world.message["id"]
    assert world.alice.post(f"/messages/{mid}/pin").status_code in (200, 201)
    assert world.alice.post(f"/messages/{mid}/reactions", {"reaction": "👍"}).status_code in (200, 201)
    before = world_state(world)
    pins = world.alice.get(f"/conversations/{cid}/pins").json()["data"]
    reactions = world.alice.get(f"/messages/{mid}/reactions").json()["data"]
    url = path.format(c=cid, m=mid, alice=world.alice.user_id, emoji="👍")
    response = world.bob.request(method, url, params=params)
    if code == "own":  # removing "my" reaction: bob has none, alice's stays
        assert response.status_code == 204, response.text
    else:
        error = assert_error(response, response.status_code, code)
        assert response.status_code in (403, 404), (what, error)
    assert world_state(world) == before, f"a member could {what}"
    assert world.alice.get(f"/conversations/{cid}/pins").json()["data"] == pins, f"a member could {what}"
    assert world.alice.get(f"/messages/{mid}/reactions").json()["data"] == reactions, f"a member could {what}"


def test_socket_joins_for_every_identity(server: RunningServer) -> None:
    """The conversation's topic: its members join; an ex-member, an outsider, and anyone on
    somebody else's user topic are refused, and get nothing of it afterwards."""
    world = make_world(server)
    topic = f"conversation:{world.conversation['id']}"
    expected = {world.alice: "ok", world.bob: "ok", world.dave: "not_authorized", world.carol: "not_authorized"}
    for who, outcome in expected.items():
        sock = Phx.open(server, who.user_id)
        try:
            status, response = sock.join(topic)
            assert (status if status == "ok" else response["reason"]) == outcome, (who.user_id, response)
            others = [u for u in expected if u is not who]
            for other in others:
                status, response = sock.join(f"user:{other.user_id}")
                assert (status, response["reason"]) == ("error", "not_authorized")
            if outcome != "ok":
                world.alice.send(world.conversation["id"], "after the refusal")
                seen = sock.barrier()
                assert not [m for m in seen if m.topic == topic and m.event not in ("phx_reply",)], seen
                assert world.secret_content not in str(seen)
        finally:
            sock.close()
