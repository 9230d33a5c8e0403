"""/metrics (shared/telemetry/metrics.py): scraped before and after known traffic, the counters
move by exactly what the traffic was. The gateway serves REST and the relay on one port, as
`make run` does; the instruments are per process, so the deltas are this test's own."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.relay.phx import Phx
from tests.support import RunningServer, client_random, make_settings, serve

ROUTE = "/conversations/{conversation_id}/messages"


@pytest.fixture(scope="module")
def gateway(pg_url: str, key_path: str) -> Iterator[RunningServer]:
    with serve(make_settings(pg_url, key_path, messages_burst=1000, messages_per_minute=100_000)) as running:
        yield running


def scrape(server: RunningServer) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = httpx.get(f"{server.url}/metrics", timeout=10)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_counters_move_by_the_traffic(gateway: RunningServer) -> None:
    alice, bob = gateway.client(), gateway.client()
    cid = alice.direct_with(bob)["id"]
    before = scrape(gateway)
    sock = Phx.open(gateway, bob.user_id)
    try:
        topic = f"conversation:{cid}"
        sock.join_ok(topic)
        sock.joined(topic)
        during = scrape(gateway)
        assert value(during, "whispr_sockets_open") == value(before, "whispr_sockets_open") + 1
        for n in range(3):
            alice.send(cid, f"rest {n}")
        for n in range(2):
            body = {"content": f"sock {n}", "message_type": "text", "client_random": client_random()}
            sock.ok(topic, "new_message", body)
        for n in range(3):
            sock.event(topic, "new_message", lambda p, n=n: p["message"]["content"] == f"rest {n}")
        assert httpx.get(f"{gateway.url}/messaging/api/v1/no/such/route").status_code == 404
    finally:
        sock.close()
    sent = {"route": ROUTE, "method": "POST", "status": "201"}
    after = scrape(gateway)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("whispr_http_requests_total", **sent) == 3
    assert delta("whispr_http_request_duration_seconds_count", route=ROUTE, method="POST") == 3
    assert delta("whispr_http_requests_total", route="unmatched", method="GET", status="404") == 1
    assert delta("whispr_socket_joins_total") == 1
    assert delta("whispr_socket_frames_in_total") == 3  # the join and two sends
    # out: the join's reply and presence frames, two send replies, five new_message events
    assert delta("whispr_socket_frames_out_total") >= 1 + 2 + 5
    # the three REST sends (the gateway's, shared/http/sends.py) and the two socket sends went
    # through group commit, one after the other
    assert delta("whispr_send_batch_size_sum") == 5
    assert 1 <= delta("whispr_send_batch_size_count") <= 5
    assert delta("whispr_send_commit_duration_seconds_count") == delta("whispr_send_batch_size_count")
    assert delta("whispr_bus_publish_duration_seconds_count") >= 5  # each send's events were published
    assert value(after, "whispr_outbox_lag_seconds") >= 0
    assert value(after, "whispr_db_pool_connections", state="idle") >= 1
