"""How deep JSON values nest: bounded walks, no recursion on client input. Pure, no I/O.

Depth counts containers: `1` and `"x"` are depth 0, `{}` and `{"a": 1}` depth 1,
`{"a": [1]}` depth 2. Every client-supplied JSON value is bounded (`Limits.max_json_depth`,
checked by the rules before anything is stored), well below what the JSON libraries handle:
orjson's encoder refuses past 255 levels (and up to 3.11.4 could corrupt memory before it
did), its parser past 1024, pydantic and Python's own recursion limit in between.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson

log = logging.getLogger(__name__)

# Values read back from the store are cut at this depth: every answer wraps a stored value in
# a few levels of its own (a frame, a reply, a conversation, its last message), and must stay
# far below the encoder's 255. The configurable bound on writes is kept under it.
MAX_STORED_DEPTH = 128

# A request body or socket frame wraps its JSON values in a few levels of its own
# (`{"message": {"metadata": ...}}`, `[join_ref, ref, topic, event, {"metadata": ...}]`): the
# whole nests at most this much deeper than a value may.
ENVELOPE_DEPTH = 4


class TooDeep(ValueError):
    """JSON nested deeper than allowed."""


def loads(raw: str | bytes, max_depth: int) -> Any:
    """`orjson.loads`, refusing JSON nested deeper than `max_depth` with TooDeep (before anything
    else sees it); other malformed JSON raises `orjson.JSONDecodeError` as usual."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if "depth" in str(exc) or "recursion" in str(exc):  # past the parser's own limit (1024)
            raise TooDeep(f"nests deeper than {max_depth} levels") from exc
        raise
    if could_exceed(raw, max_depth) and exceeds(data, max_depth):
        raise TooDeep(f"nests deeper than {max_depth} levels")
    return data


def could_exceed(text: str | bytes, limit: int) -> bool:
    """False when the JSON `text` cannot nest deeper than `limit`: it has no more opening
    brackets than that (counted in C; brackets inside strings count too, which only errs on
    the side of the full walk)."""
    if isinstance(text, str):
        return text.count("{") + text.count("[") > limit
    return text.count(b"{") + text.count(b"[") > limit


def exceeds(value: Any, limit: int) -> bool:
    """Whether `value` (parsed JSON: dicts, lists, scalars) nests deeper than `limit`. Walks with
    an explicit stack and stops at the first container past the limit."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def cut(value: Any, limit: int) -> Any:
    """`value` with every container nested deeper than `limit` replaced by null (what a stored
    value written before the bound existed reads back as). Recurses at most `limit` levels."""
    if not isinstance(value, dict | list):
        return value
    if limit <= 0:
        return None
    if isinstance(value, dict):
        return {key: cut(child, limit - 1) for key, child in value.items()}
    return [cut(child, limit - 1) for child in value]


def loaded_within(text: str, value: Any, limit: int = MAX_STORED_DEPTH) -> Any:
    """A stored JSON value (`value`, parsed from `text`) cut at `limit` if it nests deeper."""
    if not could_exceed(text, limit) or not exceeds(value, limit):
        return value
    log.warning("a stored JSON value nests deeper than %d levels: read back cut at that depth", limit)
    return cut(value, limit)
