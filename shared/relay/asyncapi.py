"""The AsyncAPI 3 document of the relay, generated from its event registry (`shared.relay.events`).

Served at `/messaging/api/asyncapi.json` beside the OpenAPI document;
`python -m shared.devtools.export_asyncapi build/asyncapi.json` writes it to a file.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from shared.http.openapi import CONTACT, LICENSE, api_version
from shared.relay import protocol
from shared.relay.events import CLIENT_PUSHES, SERVER_EVENTS, ClientPush, ErrorReply, ServerEvent, TopicKind

ASYNCAPI_VERSION = "3.0.0"
SOCKET_PATH = "/messaging/socket/websocket"

DESCRIPTION = """\
The Whispr relay speaks the **Phoenix Channels** protocol over one WebSocket: the official
`phoenix` JavaScript client works unmodified.

- **Connect** to `ws://<host>/messaging/socket/websocket?token=<JWT>&vsn=2.0.0` (also
  `/socket/websocket`). A bad or missing token refuses the upgrade with HTTP 403.
- **Frames** (serializer 2.0.0, the default) are JSON arrays `[join_ref, ref, topic, event, payload]`;
  with `vsn=1.0.0`, objects `{topic, event, payload, ref, join_ref}`. The messages below document
  the `payload` of each `event`.
- **Join** a topic with `phx_join`; the relay answers `phx_reply` `{status, response}` with the
  join's ref. A push that carries a ref gets a `phx_reply` with the same ref:
  `{"status": "ok", "response": ...}` or `{"status": "error", "response": {"reason": "<code>", ...}}`
  with the REST API's error codes.
- **Heartbeat** on topic `phoenix` every 30 s; a socket silent for 60 s is closed.
- **Catch-up**: join `conversation:<id>` with `{"last_seq": N}` and every message after N comes
  first, in order, then live events. Every message event carries `seq`.
"""

TOPICS: dict[TopicKind, dict[str, Any]] = {
    "user": {
        "address": "user:{user_id}",
        "description": "The user's own topic (only they may join it): summaries, receipts, their settings "
        "and notifications for every conversation.",
        "parameters": {"user_id": {"description": "the caller's own user id (the token's `sub`)"}},
    },
    "conversation": {
        "address": "conversation:{conversation_id}",
        "description": "One conversation (active members only): messages, typing, reactions, presence.",
        "parameters": {"conversation_id": {"description": "the conversation's id"}},
    },
    "phoenix": {"address": "phoenix", "description": "The socket's own topic: heartbeats."},
}

FRAME_V2: dict[str, Any] = {
    "type": "array",
    "description": "A Phoenix frame, serializer 2.0.0: [join_ref, ref, topic, event, payload]",
    "prefixItems": [
        {"type": ["string", "null"], "description": "join_ref: the ref of the join this frame belongs to"},
        {"type": ["string", "null"], "description": "ref: set on pushes that want a reply, echoed by phx_reply"},
        {"type": "string", "description": "topic, e.g. conversation:<id>"},
        {"type": "string", "description": "event name"},
        {"type": "object", "description": "payload"},
    ],
    "minItems": 5,
    "maxItems": 5,
    "examples": [["3", "7", "conversation:6f1c…", "new_message", {"content": "hi", "client_random": 42}]],
}


def _key(name: str) -> str:
    return name.replace(".", "_")


class _Schemas:
    def __init__(self, models: list[type[BaseModel]]):
        wanted = [(m, "serialization") for m in dict.fromkeys(models)]
        refs, top = models_json_schema(wanted, ref_template="#/components/schemas/{model}")  # type: ignore[arg-type]
        self._refs = refs
        self.components: dict[str, Any] = dict(sorted(top.get("$defs", {}).items()))

    def ref(self, model: type[BaseModel]) -> dict[str, Any]:
        return dict(self._refs[(model, "serialization")])


def _reply_schema(ok: dict[str, Any], error: dict[str, Any]) -> dict[str, Any]:
    return {
        "oneOf": [
            {
                "type": "object",
                "required": ["status", "response"],
                "properties": {"status": {"const": "ok"}, "response": ok},
            },
            {
                "type": "object",
                "required": ["status", "response"],
                "properties": {"status": {"const": "error"}, "response": error},
            },
        ]
    }


def build_document() -> dict[str, Any]:
    """The AsyncAPI 3.0 document of the relay."""
    models: list[type[BaseModel]] = [ErrorReply]
    models += [event.payload for event in SERVER_EVENTS]
    for push in CLIENT_PUSHES:
        models.append(push.payload)
        if push.reply is not None:
            models.append(push.reply)
    schemas = _Schemas(models)
    schemas.components["PhoenixFrameV2"] = FRAME_V2

    messages: dict[str, Any] = {}
    channels: dict[str, Any] = {kind: {**topic, "messages": {}} for kind, topic in TOPICS.items()}
    operations: dict[str, Any] = {}

    def add_message(key: str, name: str, summary: str, payload: dict[str, Any], kind: TopicKind) -> dict[str, str]:
        messages[key] = {
            "name": name,
            "title": name,
            "summary": summary,
            "contentType": "application/json",
            "payload": payload,
            "description": f'Sent as `[join_ref, ref, topic, "{name}", payload]` (`PhoenixFrameV2`); '
            "this is the payload.",
        }
        channels[kind]["messages"][key] = {"$ref": f"#/components/messages/{key}"}
        return {"$ref": f"#/channels/{kind}/messages/{key}"}

    for event in SERVER_EVENTS:
        _server_event(event, schemas, add_message, operations)
    for push in CLIENT_PUSHES:
        _client_push(push, schemas, add_message, operations)

    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "Whispr messaging relay",
            "version": api_version(),
            "description": DESCRIPTION,
            "contact": CONTACT,
            "license": {"name": LICENSE["name"]},  # AsyncAPI 3.0 has no SPDX `identifier`
        },
        "defaultContentType": "application/json",
        "servers": {
            "local": {
                "host": "127.0.0.1:4000",
                "protocol": "ws",
                "pathname": SOCKET_PATH,
                "description": "`make run`; query `token=<JWT>&vsn=2.0.0`",
                "security": [{"$ref": "#/components/securitySchemes/token"}],
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {
            "schemas": schemas.components,
            "messages": messages,
            "securitySchemes": {
                "token": {
                    "type": "httpApiKey",
                    "name": "token",
                    "in": "query",
                    "description": "An access token (or a short-lived socket token with audience `ws`); "
                    "locally `whispr-messaging token <user-uuid>`.",
                }
            },
        },
    }


def _server_event(event: ServerEvent, schemas: _Schemas, add_message: Any, operations: dict[str, Any]) -> None:
    payload = schemas.ref(event.payload)
    if event.name == protocol.REPLY:
        payload = _reply_schema({"type": "object"}, schemas.ref(ErrorReply))
    for kind in event.topics:
        key = f"{kind}_{_key(event.name)}"
        ref = add_message(key, event.name, event.summary, payload, kind)
        operations[f"receive_{key}"] = {
            "action": "receive",
            "channel": {"$ref": f"#/channels/{kind}"},
            "summary": event.summary,
            "messages": [ref],
        }


def _client_push(push: ClientPush, schemas: _Schemas, add_message: Any, operations: dict[str, Any]) -> None:
    for kind in push.topics:
        key = f"{kind}_push_{_key(push.name)}"
        ref = add_message(key, push.name, push.summary, schemas.ref(push.payload), kind)
        operation: dict[str, Any] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{kind}"},
            "summary": push.summary,
            "messages": [ref],
        }
        if push.reply is not None:
            reply_key = f"{key}_reply"
            reply_ref = add_message(
                reply_key,
                protocol.REPLY,
                f"The reply to {push.name}",
                _reply_schema(schemas.ref(push.reply), schemas.ref(ErrorReply)),
                kind,
            )
            operation["reply"] = {"channel": {"$ref": f"#/channels/{kind}"}, "messages": [reply_ref]}
        operations[f"send_{key}"] = operation


def documented_events(document: dict[str, Any]) -> set[str]:
    """The event names an AsyncAPI document describes (its messages' names)."""
    return {message["name"] for message in document["components"]["messages"].values()}


def undocumented(sent: set[str], document: dict[str, Any]) -> list[str]:
    """The event names among `sent` that `document` lacks, sorted: the drift check."""
    return sorted(sent - documented_events(document))
