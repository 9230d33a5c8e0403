"""The client's address behind proxies: `X-Forwarded-For` is believed only as far as the
configured proxies wrote it.

Each proxy appends the address it received the request from, so the header reads
`<whatever the client wrote>, <client>, <proxy 1>, ...`: only the entries on the right, written
by proxies we trust, say anything true. `WHISPR_TRUSTED_PROXY_HOPS=N` trusts the last N entries
(the N proxies in front of the service: Cloud Run's front end is 1); `WHISPR_TRUSTED_PROXIES`
trusts what the listed addresses or networks appended (a proxy on a known network). With
neither, the header is ignored and the address is the peer's: a client that writes
`X-Forwarded-For` itself changes nothing (it used to pick its own address, and so its own
per-address socket budget).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class ClientAddress:
    """Finds the client's address of a request from its peer and its `X-Forwarded-For` headers."""

    def __init__(self, hops: int = 0, proxies: str = ""):
        """`proxies`: comma-separated addresses or networks (`10.0.0.0/8`); a bad one raises
        ValueError at start rather than being skipped."""
        self.hops = max(0, hops)
        self._networks: tuple[Network, ...] = tuple(
            ipaddress.ip_network(p.strip(), strict=False) for p in proxies.split(",") if p.strip()
        )

    def _trusted(self, address: str) -> bool:
        if not self._networks:
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self._networks)

    def resolve(self, peer: str, forwarded_for: Iterable[str]) -> str:
        """`peer`: the address the connection comes from; `forwarded_for`: every
        `X-Forwarded-For` header of the request, in order."""
        if not self.hops and not self._networks:
            return peer
        entries = [e.strip() for header in forwarded_for for e in header.split(",") if e.strip()]
        address = peer
        for _ in range(self.hops):  # each trusted hop appended the address it was reached from
            if not entries:
                break
            address = entries.pop()
        while entries and self._trusted(address):  # a known proxy: what it appended is true too
            address = entries.pop()
        return address

    def of_scope(self, scope: Mapping[str, Any]) -> str:
        """The client's address of an ASGI connection scope."""
        client = scope.get("client")
        peer = str(client[0]) if isinstance(client, (tuple, list)) and client else "unknown"
        if not self.hops and not self._networks:
            return peer
        headers = scope.get("headers") or ()
        values = [value.decode("latin-1") for name, value in headers if name == b"x-forwarded-for"]
        return self.resolve(peer, values)
