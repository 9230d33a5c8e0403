"""REST sends in a long-running process (the local gateway) join the relay's group commit
(shared/http/sends.py): concurrent sends share a transaction, and each still gets exactly the
answer a send of its own would (issue 16, B5). A function keeps one transaction per send."""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from shared.app.messages import Sent
from shared.app.services import Services
from shared.auth.tokens import TokenVerifier, build_verifier, mint_dev_token
from shared.domain.models import Actor, NewMessage
from shared.http.api import Api
from shared.http.gateway import create_gateway
from shared.http.routes import ROUTES, routes_of
from shared.http.sends import DirectSends
from shared.relay.batching import SendBatcher
from tests.relay.phx import Phx
from tests.support import RunningServer, UserClient, assert_error, client_random, make_settings, new_id, serve

SENDERS = 12


@pytest.fixture
def gateway(store_url: str, key_path: str) -> Iterator[tuple[RunningServer, SendBatcher]]:
    """The gateway (on each backend) with a wide batching window (50 ms), so that concurrent
    sends surely meet in a batch, and its relay's batcher, whose counters say what it ran."""
    apps: list[Starlette] = []

    def factory(services: Services, verifier: TokenVerifier) -> Starlette:
        apps.append(create_gateway(services, verifier))
        return apps[-1]

    settings = make_settings(
        store_url, key_path, messages_burst=100_000, messages_per_minute=1_000_000, send_batch_window_ms=50
    )
    with serve(settings, app_factory=factory) as running:
        yield running, apps[0].state.relay.ctx.sends


def _post(client: UserClient, conversation_id: str, body: dict[str, Any]) -> httpx.Response:
    return client.post(f"/conversations/{conversation_id}/messages", body)


def test_concurrent_rest_sends_share_batches_and_each_gets_its_own_answer(
    gateway: tuple[RunningServer, SendBatcher],
) -> None:
    server, batcher = gateway
    alice, bob, mallory = server.client(), server.client(), server.client()
    cid = alice.group_with(bob)["id"]
    listener = Phx.open(server, bob.user_id)
    try:
        listener.join_ok(f"conversation:{cid}")
        repeated = {"content": "sent twice", "message_type": "text", "client_random": client_random()}
        jobs: list[tuple[UserClient, dict[str, Any]]] = [
            (alice if i % 2 else bob, {"content": f"m{i}", "message_type": "text", "client_random": client_random()})
            for i in range(SENDERS)
        ]
        jobs += [(alice, repeated), (alice, repeated), (mallory, {"content": "intruder", "client_random": 1})]
        batches, sends = batcher.batches, batcher.sends
        start = threading.Barrier(len(jobs))

        def send(job: tuple[UserClient, dict[str, Any]]) -> httpx.Response:
            start.wait()
            return _post(job[0], cid, job[1])

        with concurrent.futures.ThreadPoolExecutor(max_workers=len(jobs)) as pool:
            answers = list(pool.map(send, jobs))

        # every send went through the batcher, and they shared batches
        assert batcher.sends - sends == len(jobs)
        assert batcher.batches - batches < len(jobs)

        # the non-member's send is refused alone, as a send of its own would be
        assert_error(answers[-1], 403, "not_a_member")
        # the repeated client_random: one 201 and the original again (200, duplicate)
        twice = sorted(answers[-3:-1], key=lambda r: r.status_code)
        assert [r.status_code for r in twice] == [200, 201]
        assert twice[0].json()["data"]["id"] == twice[1].json()["data"]["id"]
        assert [r.json()["meta"]["duplicate"] for r in twice] == [True, False]
        # each other send: its own 201 with its own message; seqs gap-free
        created = answers[:SENDERS]
        assert all(r.status_code == 201 for r in created), [r.text for r in created]
        assert [r.json()["data"]["content"] for r in created] == [f"m{i}" for i in range(SENDERS)]
        stored = [r.json()["data"] for r in [*created, twice[1]]]
        assert sorted(m["seq"] for m in stored) == list(range(1, SENDERS + 2))
        history = alice.get(f"/conversations/{cid}/messages", params={"limit": 100}).json()["data"]
        assert sorted(m["id"] for m in history) == sorted(m["id"] for m in stored)

        # the events reach the sockets: one new_message per stored message
        heard: set[str] = set()
        for _ in stored:
            heard.add(
                listener.event(f"conversation:{cid}", "new_message", lambda p: p["message"]["id"] not in heard)[
                    "message"
                ]["id"]
            )
        assert heard == {m["id"] for m in stored}
    finally:
        listener.close()


def test_a_function_keeps_one_transaction_per_send(server: RunningServer) -> None:
    """The functions' Api (no batcher handed to it) stores each send alone."""
    api = Api(server.services, build_verifier(server.services.settings), routes_of("messages"))
    assert isinstance(api.sends, DirectSends)


class RecordingSends:
    """A send port that says where each send was asked for: in a worker thread or on the loop."""

    def __init__(self, services: Services):
        self.inner = DirectSends(services)
        self.calls: list[str] = []

    def send_message(self, actor: Actor, conversation_id: str, new: NewMessage) -> Sent:
        self.calls.append("thread")
        return self.inner.send_message(actor, conversation_id, new)

    async def send_message_async(self, actor: Actor, conversation_id: str, new: NewMessage) -> Sent:
        self.calls.append("loop")
        return await self.inner.send_message_async(actor, conversation_id, new)


def test_a_send_with_a_token_already_verified_goes_to_the_port_from_the_loop(pg_url: str, key_path: str) -> None:
    """No hop to a worker thread and back for a send whose token the verifier remembers; a
    token seen for the first time is verified in a worker thread, as before."""
    ports: list[RecordingSends] = []

    def factory(services: Services, verifier: TokenVerifier) -> Starlette:
        ports.append(RecordingSends(services))
        api = Api(services, verifier, ROUTES, sends=ports[-1])

        async def endpoint(request: Request) -> Response:
            return await api(request)

        return Starlette(routes=[Route("/{path:path}", endpoint, methods=["GET", "POST"])])

    settings = make_settings(pg_url, key_path, messages_burst=100_000, messages_per_minute=1_000_000)
    with serve(settings, app_factory=factory) as server:
        alice, bob = server.client(), server.client()
        cid = alice.direct_with(bob)["id"]  # bob's token is not verified yet, alice's is
        first = bob.send(cid, "first from bob")
        again = _post(bob, cid, {"content": "again", "client_random": 5})
        original = _post(bob, cid, {"content": "again", "client_random": 5})
        outsider = server.client()
        refused = _post(outsider, cid, {"content": "intruder", "client_random": 6})
        late = _post(outsider, cid, {"content": "intruder", "client_random": 6})
    assert ports[0].calls == ["thread", "loop", "loop", "thread", "loop"]
    assert first["seq"] == 1 and again.status_code == 201 and again.json()["data"]["seq"] == 2
    assert original.status_code == 200 and original.json()["data"]["id"] == again.json()["data"]["id"]
    assert_error(refused, 403, "not_a_member")
    assert_error(late, 403, "not_a_member")


def test_the_verifier_remembers_only_tokens_that_verified(server: RunningServer) -> None:
    verifier = build_verifier(server.services.settings)
    user_id = new_id()
    token = mint_dev_token(server.services.settings, user_id)
    assert verifier.remembered(token) is None
    assert verifier.remembered("not a token") is None
    assert verifier.verify(token).user_id == user_id
    remembered = verifier.remembered(token)
    assert remembered is not None and remembered.user_id == user_id
