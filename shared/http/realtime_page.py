"""The AsyncAPI document of the relay as a plain HTML page (served at /messaging/api/realtime):
per topic, what a client pushes (with the reply) and what it receives, each payload as a table of
fields. Rendered on the server from the document itself, so it shows exactly what is published;
no script, no inline style (its CSS is shared/web/realtime.css), works offline."""

from __future__ import annotations

import html
import json
from typing import Any

from shared.http.examples import example_of


def _e(text: Any) -> str:
    return html.escape(str(text))


def _markdown_lite(text: str) -> str:
    """Backticks as code and **bold**, paragraphs and list items: enough for the descriptions."""
    out: list[str] = []
    for block in text.strip().split("\n\n"):
        lines = [line.strip() for line in block.splitlines()]
        items = []
        for line in lines:
            if line.startswith("- "):
                items.append(line[2:])
            elif items:
                items[-1] += " " + line
            else:
                items.append(line)
        rendered = [_inline(item) for item in items]
        if lines and lines[0].startswith("- "):
            out.append("<ul>" + "".join(f"<li>{item}</li>" for item in rendered) + "</ul>")
        else:
            out.append("<p>" + " ".join(rendered) + "</p>")
    return "\n".join(out)


def _inline(text: str) -> str:
    parts = _e(text).split("`")
    text = "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))
    bold = text.split("**")
    return "".join(f"<b>{p}</b>" if i % 2 else p for i, p in enumerate(bold))


def _type(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        return str(schema["$ref"]).rsplit("/", 1)[-1]
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return " | ".join(_type(option) for option in schema[key])
    if "const" in schema:
        return repr(schema["const"])
    if "enum" in schema:
        return " | ".join(repr(v) for v in schema["enum"])
    kind = schema.get("type", "any")
    if kind == "array":
        return f"list of {_type(schema.get('items', {}))}"
    if kind == "object" and "additionalProperties" in schema and isinstance(schema["additionalProperties"], dict):
        return f"map of {_type(schema['additionalProperties'])}"
    return str(kind) + (f" ({schema['format']})" if "format" in schema else "")


def _fields(schema: dict[str, Any], schemas: dict[str, Any]) -> str:
    while "$ref" in schema:
        schema = schemas[schema["$ref"].rsplit("/", 1)[-1]]
    properties = schema.get("properties", {})
    if not properties:
        return f"<p>Payload: <code>{_e(_type(schema))}</code></p>"
    required = set(schema.get("required", []))
    rows = "".join(
        f"<tr><td><code>{_e(name)}</code>{'' if name in required else ' (optional)'}</td>"
        f"<td><code>{_e(_type(prop))}</code></td><td>{_inline(prop.get('description', ''))}</td></tr>"
        for name, prop in properties.items()
    )
    return f"<table><tr><th>field</th><th>type</th><th>meaning</th></tr>{rows}</table>"


def render(document: dict[str, Any]) -> str:
    components = document["components"]
    schemas = components["schemas"]
    info = document["info"]
    body: list[str] = [f"<h1>{_e(info['title'])} <small>{_e(info['version'])}</small></h1>"]
    body.append(_markdown_lite(info["description"]))
    for channel_key, channel in document["channels"].items():
        body.append(f"<h2 id='{_e(channel_key)}'>Topic <code>{_e(channel['address'])}</code></h2>")
        body.append(_markdown_lite(channel.get("description", "")))
        for op_key, op in document["operations"].items():
            if op["channel"]["$ref"] != f"#/channels/{channel_key}":
                continue
            message = components["messages"][op["messages"][0]["$ref"].rsplit("/", 1)[-1]]
            verb = "client pushes" if op["action"] == "send" else "client receives"
            body.append(f"<section class='op {op['action']}' id='{_e(op_key)}'>")
            body.append(f"<h3><span class='tag'>{verb}</span><code>{_e(message['name'])}</code></h3>")
            body.append(f"<p>{_inline(op.get('summary', ''))}</p>")
            body.append(_fields(message["payload"], schemas))
            example = example_of(message["payload"], schemas)
            body.append(f"<pre>{_e(_frame(op['action'], channel['address'], message['name'], example))}</pre>")
            for reply_ref in op.get("reply", {}).get("messages", []):
                reply = components["messages"][reply_ref["$ref"].rsplit("/", 1)[-1]]
                ok = reply["payload"]["oneOf"][0]["properties"]["response"]
                body.append('<p>Reply <code>phx_reply</code> <code>{status: "ok", response}</code>:</p>')
                body.append(_fields(ok, schemas))
                body.append('<p>or <code>{status: "error", response: {reason, message, details}}</code>.</p>')
            body.append("</section>")
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{_e(info['title'])}: socket contract</title><link rel='stylesheet' href='docs/realtime.css'>"
        "</head><body>"
        "<header><strong>Whispr messaging</strong><a href='docs'>REST API</a><a href='realtime'>Socket contract</a>"
        "<a href='asyncapi.json'>asyncapi.json</a></header><main>" + "\n".join(body) + "</main></body></html>"
    )


def _frame(action: str, address: str, event: str, payload: Any) -> str:
    ref = '"7"' if action == "send" else "null"
    topic = address.replace("{user_id}", "<user id>").replace("{conversation_id}", "<conversation id>")
    return f'["3", {ref}, "{topic}", "{event}", {json.dumps(payload, ensure_ascii=False)}]'
