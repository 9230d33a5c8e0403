"""Issue 10, item 3: the per-address socket cap counts the client's real address. The client
writes X-Forwarded-For itself, so only the entries appended by the configured proxies count."""

from __future__ import annotations

import pytest
from websockets.exceptions import InvalidStatus

from shared.http.forwarded import ClientAddress
from tests.relay.conftest import ServeWith
from tests.relay.phx import Phx
from tests.support import RunningServer


def _open(server: RunningServer, user_id: str, forwarded_for: str | None) -> Phx:
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for is not None else None
    return Phx.open(server, user_id, additional_headers=headers)


def _refused_status(server: RunningServer, user_id: str, forwarded_for: str | None) -> int:
    with pytest.raises(InvalidStatus) as refused:
        _open(server, user_id, forwarded_for)
    return refused.value.response.status_code


def test_a_client_written_forwarded_for_does_not_buy_more_sockets(serve_with: ServeWith) -> None:
    """No proxy configured (the default, and `make run`): the header is ignored; 127.0.0.1 used
    to be trusted by uvicorn, and every invented address got a budget of its own."""
    server = serve_with(ws_sockets_per_ip=2)
    user = server.client()
    sockets = [_open(server, user.user_id, f"203.0.113.{i}") for i in range(2)]
    try:
        assert _refused_status(server, user.user_id, "203.0.113.99") == 429
        assert _refused_status(server, user.user_id, None) == 429
    finally:
        for sock in sockets:
            sock.close()


def test_behind_one_trusted_hop_the_address_it_appended_counts(serve_with: ServeWith) -> None:
    """As behind Cloud Run's front end (WHISPR_TRUSTED_PROXY_HOPS=1): the last entry is the
    client's, appended by the proxy; whatever the client wrote before it changes nothing."""
    server = serve_with(ws_sockets_per_ip=2, trusted_proxy_hops=1)
    user = server.client()
    sockets = [_open(server, user.user_id, f"203.0.113.{i}, 198.51.100.7") for i in range(2)]
    try:
        assert _refused_status(server, user.user_id, "203.0.113.99, 198.51.100.7") == 429
        other = _open(server, user.user_id, "203.0.113.1, 198.51.100.8")  # another client: its own budget
        other.close()
    finally:
        for sock in sockets:
            sock.close()


def test_resolver_takes_the_entry_the_trusted_proxies_appended() -> None:
    spoofed = ["6.6.6.6, 198.51.100.7"]  # the client wrote 6.6.6.6; the front end appended .7
    assert ClientAddress().resolve("10.0.0.1", spoofed) == "10.0.0.1"
    assert ClientAddress(hops=1).resolve("10.0.0.1", spoofed) == "198.51.100.7"
    assert ClientAddress(hops=1).resolve("10.0.0.1", []) == "10.0.0.1"  # no header: the peer
    # behind a load balancer that appends `<client>, <itself>`: two hops
    assert ClientAddress(hops=2).resolve("10.0.0.1", ["6.6.6.6, 198.51.100.7, 35.191.0.9"]) == "198.51.100.7"
    # headers repeated are one list, in order
    assert ClientAddress(hops=1).resolve("10.0.0.1", ["6.6.6.6", "198.51.100.7"]) == "198.51.100.7"
    # known proxy networks: what they appended is believed, the first address outside them is the client
    by_network = ClientAddress(proxies="10.0.0.0/8, 192.0.2.1")
    assert by_network.resolve("10.0.0.1", ["6.6.6.6, 198.51.100.7, 192.0.2.1"]) == "198.51.100.7"
    assert by_network.resolve("198.51.100.8", ["6.6.6.6"]) == "198.51.100.8"  # not from a proxy: ignored
    with pytest.raises(ValueError):
        ClientAddress(proxies="not-a-network")
