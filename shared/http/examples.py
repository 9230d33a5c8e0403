"""Examples for the OpenAPI and AsyncAPI documents, made from the schemas themselves, so that an
example always has the shape its schema describes (a test validates every one against it).

Values follow the field's name where that says more than its type: ids are fixed UUIDs per kind
(the same conversation id everywhere in a document), `content` reads like a message, times are
one fixed instant."""

from __future__ import annotations

from typing import Any

IDS = {
    "conversation": "6f1c2a4e-8b7d-4c3a-9e21-5a0d7b3c9f10",
    "message": "0c9e7b52-3d4a-4f6e-8a1b-2c3d4e5f6a7b",
    "user": "11111111-1111-4111-8111-111111111111",
    "sender": "11111111-1111-4111-8111-111111111111",
    "other_user": "22222222-2222-4222-8222-222222222222",
    "reported_user": "22222222-2222-4222-8222-222222222222",
    "pinned_by": "11111111-1111-4111-8111-111111111111",
}
OTHER_ID = "3b8d5f0e-9a2c-4d6b-8e7f-1a2b3c4d5e6f"
TIME = "2026-12-07T16:00:00.000000Z"
STRINGS = {
    "content": "Salut Bob",
    "name": "Team",
    "custom_name": "Work",
    "reaction": "👍",
    "emoji": "👍",
    "media_id": "media-123",
    "sender_device_id": "phone-1",
    "device_id": "phone-1",
    "cursor": "c1:42",
    "next_cursor": "c1:42",
    "error": "conversation not found",
    "code": "conversation_not_found",
    "version": "0.1.0",
}
INTEGERS = {"seq": 42, "last_seq": 42, "up_to_seq": 42, "client_random": 424242, "count": 1, "unread_count": 1}
MAX_DEPTH = 6
FILLED = {"name", "sender_device_id", "device_id", "last_message", "custom_name", "data"}  # nullable, shown set


def _resolve(schema: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = components[schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def _string(name: str, schema: dict[str, Any]) -> str:
    fmt = schema.get("format")
    if fmt == "uuid" or (name.endswith("_id") and fmt is None and "pattern" in schema):
        return IDS.get(name.removesuffix("_id").removesuffix("_ids"), IDS.get(name, OTHER_ID))
    if fmt == "date-time":
        return TIME
    if name in STRINGS:
        return STRINGS[name]
    return name.replace("_", " ") if name else "text"


def example_of(schema: dict[str, Any], components: dict[str, Any], name: str = "", depth: int = 0) -> Any:
    """A value of `schema` (`$ref`s into `components`); `name` is the field it is the value of."""
    schema = _resolve(schema, components)
    for key in ("const", "default"):
        if key in schema and schema[key] is not None:
            return schema[key]
    if schema.get("examples"):
        return schema["examples"][0]
    if "enum" in schema:
        return schema["enum"][0]
    for key in ("anyOf", "oneOf"):
        if key in schema:
            options = [o for o in schema[key] if _resolve(o, components).get("type") != "null"]
            if not options or (len(options) < len(schema[key]) and depth > 0 and name not in FILLED):
                return None  # an optional value: null reads as the common case
            return example_of(options[0], components, name, depth)
    if "allOf" in schema:
        merged: dict[str, Any] = {}
        for part in schema["allOf"]:
            value = example_of(part, components, name, depth)
            if isinstance(value, dict):
                merged.update(value)
        return merged
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or "properties" in schema:
        if depth >= MAX_DEPTH:
            return {}
        return {key: example_of(prop, components, key, depth + 1) for key, prop in schema.get("properties", {}).items()}
    if kind == "array":
        item = example_of(schema.get("items", {}), components, name.removesuffix("s"), depth + 1)
        return [] if depth >= MAX_DEPTH else [item]
    if kind == "integer":
        return INTEGERS.get(name, max(1, schema.get("minimum", 1)))
    if kind == "number":
        return 1.5
    if kind == "boolean":
        return False
    if kind == "string":
        return _string(name, schema)
    if kind == "null":
        return None
    return {}
