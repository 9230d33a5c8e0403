"""Hostile JSON, as text: what a client can put on the wire that a well-meaning encoder never
writes. Deep nesting (past the service's bound, orjson's encoder (255) and parser (1024)
limits, Python's recursion limit), numbers no float or 64-bit integer holds, lone surrogates
(escaped: valid JSON, invalid Unicode), NUL and other control characters, duplicate keys,
empty and huge keys, and plain garbage. Built as text so that no encoder of ours cleans it up.
"""

from __future__ import annotations

import json

from hypothesis import strategies as st

DEPTHS = (31, 33, 64, 254, 255, 256, 1023, 1025, 5000)

HUGE_NUMBERS = (
    "1" + "0" * 400,
    "-" + "9" * 400,
    "1e999999",
    "-1e400",
    "1.7976931348623157e309",
    "4.9e-325",
    str(2**64),
    str(2**63),
    str(-(2**63) - 1),
    "0." + "0" * 500 + "1",
    "-0",
    "1E+2147483648",
)

STRINGS = (
    '"\\ud800"',
    '"\\udfff"',
    '"a\\ud800b"',
    '"\\udc00\\ud800"',
    '"\\u0000"',
    '"a\\u0000b"',
    '"\\u0000\\u0000\\u0000"',
    '"\\ufffe\\uffff"',
    '"\\u202e\\u200b"',
    '"\\\\x00"',
    '"' + "\u00e9" * 2000 + '"',
    '"' + "a" * 70_000 + '"',
    '""',
    '"null"',
    '"00000000-0000-0000-0000-000000000000"',
)

GARBAGE = ("NaN", "Infinity", "-Infinity", "undefined", "{", "]", '{"a":}', "[1,]", "'x'", "")

scalars = st.one_of(
    st.sampled_from(HUGE_NUMBERS),
    st.sampled_from(STRINGS),
    st.sampled_from(("true", "false", "null", "0", "-1", "1.5", "[]", "{}")),
    st.text(max_size=20).map(lambda s: json.dumps(s, ensure_ascii=False)),
    st.integers().map(str),
)


def deep(depth: int, leaf: str = "1", kind: str = "object") -> str:
    if kind == "array":
        return "[" * depth + leaf + "]" * depth
    if kind == "mixed":
        return '{"a":[' * (depth // 2) + leaf + "]}" * (depth // 2)
    return '{"a":' * depth + leaf + "}" * depth


deeps = st.builds(deep, st.sampled_from(DEPTHS), scalars, st.sampled_from(("object", "array", "mixed")))


def _obj(pairs: list[tuple[str, str]]) -> str:
    return "{" + ",".join(f"{k}:{v}" for k, v in pairs) + "}"


keys = st.one_of(
    st.sampled_from(('""', '"a"', '"a"', '"\\u0000"', '"\\ud800"', '"' + "k" * 5000 + '"', '"__proto__"')),
    st.text(max_size=10).map(lambda s: json.dumps(s)),
)

values = st.recursive(
    st.one_of(scalars, deeps),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4).map(lambda items: "[" + ",".join(items) + "]"),
        # duplicate keys are likely: "a" twice among few keys
        st.lists(st.tuples(keys, inner), max_size=4).map(_obj),
    ),
    max_leaves=8,
)

hostile = st.one_of(values, st.sampled_from(GARBAGE))


def with_field(valid: dict[str, object], field: str, value: str, *, duplicate: bool) -> str:
    """`valid` as JSON text with `field` set to the hostile `value`; `duplicate`: the valid
    field is kept and the hostile one follows it under the same key (a duplicate key)."""
    pairs = [(json.dumps(k), json.dumps(v)) for k, v in valid.items() if duplicate or k != field]
    if duplicate and field in valid:
        pairs.insert(0, (json.dumps(field), value))  # first the hostile one, then the valid one
        pairs.append((json.dumps(field), value))  # and again after it: whichever one a parser keeps
    else:
        pairs.append((json.dumps(field), value))
    return _obj(pairs)
