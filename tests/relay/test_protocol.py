"""The wire format on its own: what the relay writes, a Phoenix client reads back unchanged."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from shared.relay import protocol

refs = st.one_of(st.none(), st.text(max_size=20), st.integers(min_value=0, max_value=2**53))
topics = st.text(min_size=1, max_size=protocol.MAX_TOPIC_CHARS)
events = st.text(min_size=1, max_size=protocol.MAX_EVENT_CHARS)
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**53), max_value=2**53), st.text()),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(), inner, max_size=4)),
    max_leaves=12,
)
payloads = st.dictionaries(st.text(), json_values, max_size=5)


@given(st.sampled_from([1, 2]), refs, refs, topics, events, payloads)
def test_encoded_frames_decode_to_what_was_encoded(
    version: Any, join_ref: Any, ref: Any, topic: str, event: str, payload: dict[str, Any]
) -> None:
    raw = protocol.encode(version, join_ref, ref, topic, event, payload)
    if version == 2:
        assert json.loads(raw) == [join_ref, ref, topic, event, payload]
    else:
        assert json.loads(raw) == {"topic": topic, "event": event, "payload": payload, "ref": ref, "join_ref": join_ref}
    assert protocol.decode(raw, version) == protocol.Frame(join_ref, ref, topic, event, payload)


@given(st.one_of(json_values, st.lists(json_values, min_size=5, max_size=5)))
def test_any_json_either_decodes_to_a_valid_frame_or_is_refused(value: Any) -> None:
    raw = json.dumps(value)
    try:
        frame = protocol.decode(raw, 2)
    except protocol.FrameError as error:
        assert error.reason == "invalid_frame"
        assert isinstance(error.topic, str) and error.topic
        return
    assert isinstance(frame.topic, str) and frame.topic and isinstance(frame.payload, dict)


def test_serializer_versions() -> None:
    assert protocol.parse_version(None) == 2
    assert protocol.parse_version("2.0.0") == 2
    assert protocol.parse_version("1.0.0") == 1
    assert protocol.parse_version("3.0.0") is None
