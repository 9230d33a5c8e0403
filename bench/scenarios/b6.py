"""B6, reconnect catch-up: a client leaves a conversation's topic, 1,000 messages are sent, it rejoins
with `last_seq`; the time from its reconnect until it has all of them, in order. With the default
`WHISPR_WS_CATCH_UP_MAX_MESSAGES` (500) the relay answers `catch_up: use_rest` and the client pages
through REST (`after_seq`, 100 a page), as the Whispr client does; the path taken is recorded."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bench.scenarios.common import median_of

if TYPE_CHECKING:
    from bench.runner import Bench


def run(bench: Bench) -> dict[str, Any]:
    service = bench.require_service()
    rest = bench.rest()
    try:
        pair = rest.pairs(1)[0]
    finally:
        rest.close()
    count = 100 if bench.quick else 1000
    job = {
        "mode": "catchup",
        "ws_url": service.ws_url,
        "http": ["127.0.0.1", service.port],
        "sender": bench.mint(pair.sender_id),
        "receiver": bench.mint(pair.receiver_id),
        "conversation": pair.conversation_id,
        "messages": count,
        "repeats": bench.repeats,
    }
    result = bench.run_generators([job], "B6 catch-up", 10.0 * bench.repeats)[0]
    runs = result["runs"]
    return {
        "messages": count,
        "seconds": median_of(runs, "seconds"),
        "all_in_order": all(r["in_order"] and r["received"] >= count for r in runs),
        "path": runs[-1]["path"] if runs else None,
        "target_s": 1.0,
        "runs": runs,
    }
