"""The Phoenix Channels wire format, serializer v2 (arrays) and v1 (objects). Pure: no I/O.

v2 frame: `[join_ref, ref, topic, event, payload]`; v1 frame: `{topic, event, payload, ref, join_ref}`.
Refs are echoed back exactly as the client sent them (the phoenix JS client sends strings).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from shared.domain import nesting

Version = Literal[1, 2]
Ref = str | int | None

HEARTBEAT_TOPIC = "phoenix"
JOIN = "phx_join"
LEAVE = "phx_leave"
REPLY = "phx_reply"
CLOSE = "phx_close"
ERROR = "phx_error"
HEARTBEAT = "heartbeat"

MAX_TOPIC_CHARS = 255
MAX_EVENT_CHARS = 64
MAX_FRAME_DEPTH = 64  # the relay passes its own (rules.envelope_depth_limit)


@dataclass(frozen=True)
class Frame:
    join_ref: Ref
    ref: Ref
    topic: str
    event: str
    payload: dict[str, Any]


class FrameError(Exception):
    """A frame the relay cannot route. Carries whatever refs could be read, so that the error
    reply reaches the push that caused it when possible."""

    def __init__(
        self, reason: str, message: str, *, join_ref: Ref = None, ref: Ref = None, topic: str = HEARTBEAT_TOPIC
    ):
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.join_ref = join_ref
        self.ref = ref
        self.topic = topic


def parse_version(vsn: str | None) -> Version | None:
    """The serializer a client asks for with `vsn`; v2 when absent; None when unsupported."""
    if vsn is None or vsn == "":
        return 2
    major = vsn.split(".", 1)[0]
    if major == "2":
        return 2
    if major == "1":
        return 1
    return None


def _ref(value: Any) -> Ref:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise ValueError("refs are strings, integers or null")


def _best_effort(data: Any, version: Version) -> tuple[Ref, Ref, str]:
    """The refs and topic of a frame that failed validation, where they can be read."""
    join_ref: Any = None
    ref: Any = None
    topic: Any = HEARTBEAT_TOPIC
    if version == 2 and isinstance(data, list):
        join_ref = data[0] if len(data) > 0 else None
        ref = data[1] if len(data) > 1 else None
        topic = data[2] if len(data) > 2 else HEARTBEAT_TOPIC
    elif version == 1 and isinstance(data, dict):
        join_ref, ref, topic = data.get("join_ref"), data.get("ref"), data.get("topic", HEARTBEAT_TOPIC)
    try:
        join_ref, ref = _ref(join_ref), _ref(ref)
    except ValueError:
        join_ref, ref = None, None
    if not isinstance(topic, str) or not topic or len(topic) > MAX_TOPIC_CHARS:
        topic = HEARTBEAT_TOPIC
    return join_ref, ref, topic


def decode(raw: str | bytes, version: Version, max_depth: int = MAX_FRAME_DEPTH) -> Frame:
    """A validated frame, or FrameError (`nesting_too_deep` past `max_depth` levels)."""
    try:
        data = nesting.loads(raw, max_depth)
    except nesting.TooDeep as exc:
        raise FrameError("nesting_too_deep", f"the frame {exc}", **_readable_refs(raw, version)) from exc
    except orjson.JSONDecodeError as exc:
        raise FrameError("invalid_json", f"the frame is not valid JSON: {exc}") from exc
    return validate(data, version)


def _readable_refs(raw: str | bytes, version: Version) -> dict[str, Any]:
    """The refs and topic of a frame refused for its depth, where orjson can read them."""
    join_ref, ref, topic = peek(raw, version)
    return {"join_ref": join_ref, "ref": ref, "topic": topic}


def validate(data: Any, version: Version) -> Frame:
    join_ref, ref, topic = _best_effort(data, version)

    def fail(message: str) -> FrameError:
        return FrameError("invalid_frame", message, join_ref=join_ref, ref=ref, topic=topic)

    if version == 2:
        if not isinstance(data, list) or len(data) != 5:
            raise fail("a frame is an array [join_ref, ref, topic, event, payload]")
        raw_join_ref, raw_ref, raw_topic, event, payload = data
    else:
        if not isinstance(data, dict) or not {"topic", "event"} <= data.keys():
            raise fail("a frame is an object {topic, event, payload, ref, join_ref}")
        raw_join_ref, raw_ref = data.get("join_ref"), data.get("ref")
        raw_topic, event, payload = data["topic"], data["event"], data.get("payload", {})
    try:
        join_ref, ref = _ref(raw_join_ref), _ref(raw_ref)
    except ValueError as exc:
        raise fail(str(exc)) from exc
    if not isinstance(raw_topic, str) or not raw_topic or len(raw_topic) > MAX_TOPIC_CHARS:
        raise fail(f"topic must be a string of 1 to {MAX_TOPIC_CHARS} characters")
    if not isinstance(event, str) or not event or len(event) > MAX_EVENT_CHARS:
        raise fail(f"event must be a string of 1 to {MAX_EVENT_CHARS} characters")
    if payload is None:
        payload = {}
    if not isinstance(payload, dict):
        raise fail("payload must be a JSON object")
    return Frame(join_ref, ref, raw_topic, event, payload)


_REF = r'null|-?\d{1,18}|"(?:[^"\\]|\\.){0,255}"'
_V2_HEAD = re.compile(rf'\s*\[\s*({_REF})\s*,\s*({_REF})\s*,\s*("(?:[^"\\]|\\.){{1,{MAX_TOPIC_CHARS}}}")')
PEEK_HEAD_CHARS = 2048  # a v2 frame's refs and topic are within its first characters
PEEK_WHOLE_CHARS = 1024 * 1024  # larger frames are not parsed whole to find them (v1)


def peek(raw: str | bytes, version: Version) -> tuple[Ref, Ref, str]:
    """The refs and topic of a frame the relay will not process (too large, too deep), if
    readable: a v2 frame's from its head, whatever its size; a v1 frame (refs after the
    payload) by parsing it, up to `PEEK_WHOLE_CHARS`."""
    if version == 2:
        head = raw[:PEEK_HEAD_CHARS]
        match = _V2_HEAD.match(head.decode("utf-8", "ignore") if isinstance(head, bytes) else head)
        if match is not None:
            try:
                return _best_effort([orjson.loads(part) for part in match.groups()], version)
            except orjson.JSONDecodeError:
                pass
    if len(raw) > PEEK_WHOLE_CHARS:
        return None, None, HEARTBEAT_TOPIC
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None, None, HEARTBEAT_TOPIC
    return _best_effort(data, version)


def encode_json(version: Version, join_ref: Ref, ref: Ref, topic: str, event: str, payload_json: bytes) -> str:
    """A frame around an already-encoded payload: lets a broadcast encode its payload once."""
    head = orjson.dumps(join_ref), orjson.dumps(ref), orjson.dumps(topic), orjson.dumps(event)
    if version == 2:
        out = b"[" + b",".join(head) + b"," + payload_json + b"]"
    else:
        out = (
            b'{"topic":'
            + head[2]
            + b',"event":'
            + head[3]
            + b',"payload":'
            + payload_json
            + b',"ref":'
            + head[1]
            + b',"join_ref":'
            + head[0]
            + b"}"
        )
    return out.decode("utf-8")


def encode(version: Version, join_ref: Ref, ref: Ref, topic: str, event: str, payload: dict[str, Any]) -> str:
    return encode_json(version, join_ref, ref, topic, event, orjson.dumps(payload))


def reply(
    version: Version, join_ref: Ref, ref: Ref, topic: str, status: Literal["ok", "error"], response: dict[str, Any]
) -> str:
    return encode(version, join_ref, ref, topic, REPLY, {"status": status, "response": response})


def error_response(reason: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    """The body of an error reply: the REST API's code as `reason`, a human sentence, details."""
    response: dict[str, Any] = {"reason": reason, "message": message, "details": details or {}}
    if details and "retry_after" in details:
        response["retry_after"] = details["retry_after"]
    return response
