"""shared.domain.nesting: depth is counted without recursing on client input, and cut values
keep every level within the bound."""

from __future__ import annotations

import orjson
import pytest

from shared.domain import nesting


def nested(depth: int) -> object:
    value: object = 1
    for _ in range(depth):
        value = {"a": value} if depth % 2 else [value]
    return value


@pytest.mark.parametrize("depth", [0, 1, 2, 31, 32, 33, 300, 5000])
def test_exceeds_counts_containers(depth: int) -> None:
    value = nested(depth)
    assert nesting.exceeds(value, 32) is (depth > 32)
    assert nesting.exceeds(value, depth) is False
    if depth:
        assert nesting.exceeds(value, depth - 1) is True


def test_depth_of_mixed_values() -> None:
    assert not nesting.exceeds({}, 1)
    assert not nesting.exceeds({"a": 1, "b": "x", "c": None}, 1)
    assert nesting.exceeds({"a": [1]}, 1)
    assert not nesting.exceeds({"a": [1], "b": {"c": 2}}, 2)
    assert nesting.exceeds({"a": [1], "b": {"c": [[]]}}, 3)


def test_could_exceed_never_misses_a_deep_text() -> None:
    for depth in (0, 5, 32, 33, 100):
        text = orjson.dumps(nested(depth))
        if nesting.exceeds(nested(depth), 32):
            assert nesting.could_exceed(text, 32)
            assert nesting.could_exceed(text.decode(), 32)
    assert not nesting.could_exceed('{"a":{"b":1}}', 2)
    assert nesting.could_exceed('{"a":"{{{"}', 2)  # brackets in strings: only a walk more


def test_cut_keeps_what_fits_and_drops_the_rest() -> None:
    deep = nested(301)
    cut = nesting.cut(deep, 128)
    assert not nesting.exceeds(cut, 128)
    assert nesting.exceeds(cut, 127)
    assert nesting.cut({"keep": {"x": 1}, "deep": deep}, 3)["keep"] == {"x": 1}
    assert orjson.loads(orjson.dumps(cut))  # encodable again


def test_loads_refuses_deep_json_and_passes_other_errors_through() -> None:
    assert nesting.loads(b'{"a":[1,{"b":2}]}', 3) == {"a": [1, {"b": 2}]}
    with pytest.raises(nesting.TooDeep):
        nesting.loads(b'{"a":[1,{"b":2}]}', 2)
    with pytest.raises(nesting.TooDeep):  # past orjson's own parser limit
        nesting.loads("[" * 5000 + "]" * 5000, 32)
    with pytest.raises(orjson.JSONDecodeError):
        nesting.loads(b'{"a":', 32)


def test_stored_values_read_back_within_the_cap() -> None:
    text = '{"e2ee":{"enabled":true},"deep":' + "[" * 301 + "]" * 301 + "}"  # too deep to encode
    value = nesting.loaded_within(text, orjson.loads(text))
    assert value["e2ee"] == {"enabled": True}  # the levels a reader relies on are all there
    assert not nesting.exceeds(value, nesting.MAX_STORED_DEPTH)
    shallow = {"a": {"b": 1}}
    assert nesting.loaded_within(orjson.dumps(shallow).decode(), shallow) is shallow
