"""B5, REST send through the function entry point (the local gateway, as `make run` serves it):
`POST /conversations/<id>/messages`, closed loop over 16 keep-alive connections, 16 conversations.
Figures: requests/s and p99."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bench.loadgen import PAD
from bench.scenarios.b4 import read_load
from bench.scenarios.common import median_of

if TYPE_CHECKING:
    from bench.runner import Bench


def run(bench: Bench) -> dict[str, Any]:
    service = bench.require_service()
    rest = bench.rest()
    try:
        pairs = rest.pairs(16)
    finally:
        rest.close()
    body = {"content": PAD[:128], "message_type": "text", "client_random": 0}
    requests = [
        {
            "method": "POST",
            "path": f"/messaging/api/v1/conversations/{p.conversation_id}/messages",
            "token": bench.mint(p.sender_id),
            "body": body,
        }
        for p in pairs
    ]
    duration = 1.0 if bench.quick else 10.0
    runs = [
        read_load(bench, requests, duration, 16, ("127.0.0.1", service.port), "B5 REST send")
        for _ in range(bench.repeats)
    ]
    return {
        "connections": 16,
        "requests_per_s": median_of(runs, "requests_per_s"),
        "p50_ms": median_of(runs, "p50_ms"),
        "p99_ms": median_of(runs, "p99_ms"),
        "service_us_per_request": median_of(runs, "service_us_per_item"),
        "postgres_us_per_request": median_of(runs, "postgres_us_per_item"),
        "status": runs[-1]["status"],
        "generator_load": max(r["generator_load"] for r in runs),
        "runs": runs,
    }
