"""The push endpoint for sibling services' events (`functions/events`; contract in
docs/events.md). Accepted forms, all carrying one CloudEvent 1.0:

- a Pub/Sub push envelope `{"message": {"data": <base64>, "attributes": {...}}, "subscription"}`
  whose data is a structured CloudEvent (JSON with `specversion`, `id`, `type`, `source`,
  `data`), or the event's data with `ce-id`, `ce-type`, `ce-source` attributes (binary mode);
- a CloudEvent over HTTP, structured (that JSON as the body) or binary (`ce-*` headers, the
  data as the body), including Eventarc's `google.cloud.pubsub.topic.v1.messagePublished`,
  whose data is the push envelope above.

Answers: 200 with the outcome (`applied`, `duplicate`, `ignored` for a type not handled here),
all acknowledged; 400 `malformed_event` for what cannot be read or does not fit its type, so
Pub/Sub retries it, then dead-letters it. Not for clients: the caller proves itself with the
internal secret (WHISPR_TASKS_SECRET) in a header or as `?token=` on the push endpoint.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, StrictStr

from shared.app import sibling_events as uc
from shared.app.sibling_events import MalformedEvent, SiblingEvent
from shared.http.handlers.tasks import check_secret
from shared.http.responses import ResponseDoc, View
from shared.http.routing import Call, Reply

PUBSUB_PUBLISHED = "google.cloud.pubsub.topic.v1.messagePublished"


class InboundBody(BaseModel):
    """Any of the accepted forms (see the module's docstring); read by `parse`."""

    model_config = ConfigDict(extra="allow")

    message: dict[str, Any] | None = Field(default=None, description="Pub/Sub push: the message")
    subscription: StrictStr | None = Field(default=None, description="Pub/Sub push: the subscription")
    specversion: StrictStr | None = Field(default=None, description="structured CloudEvent: 1.0")
    id: StrictStr | None = Field(default=None, description="structured CloudEvent: its id (unique per source)")
    type: StrictStr | None = Field(default=None, description="structured CloudEvent: e.g. whispr.user.deleted")
    source: StrictStr | None = Field(default=None, description="structured CloudEvent: who sent it")
    data: dict[str, Any] | None = Field(default=None, description="structured CloudEvent: what the type says")


class OutcomeDoc(View):
    event_id: str
    type: str
    outcome: Literal["applied", "duplicate", "ignored"] = Field(
        description="duplicate: this event id was applied before; ignored: a type this service does not handle"
    )


OUTCOME_DOC = ResponseDoc(OutcomeDoc, description="The event was acknowledged")


def _text(value: object) -> str:
    return value.strip() if isinstance(value, str) else ""


def _cloudevent(fields: Mapping[str, Any], data: Any) -> SiblingEvent:
    event_id, kind, source = _text(fields.get("id")), _text(fields.get("type")), _text(fields.get("source"))
    missing = [name for name, value in (("id", event_id), ("type", kind), ("source", source)) if not value]
    if missing:
        raise MalformedEvent(
            "not a CloudEvent: " + ", ".join(missing) + " missing", details={m: ["required"] for m in missing}
        )
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise MalformedEvent("the event's data must be a JSON object", details={"data": ["a JSON object"]})
    return SiblingEvent(id=event_id, source=source, type=kind, data=data)


def _from_pubsub(message: Mapping[str, Any]) -> SiblingEvent:
    try:
        raw = base64.b64decode(_text(message.get("data")), validate=True)
        decoded = orjson.loads(raw) if raw.strip() else None
    except (binascii.Error, ValueError):
        raise MalformedEvent(
            "the Pub/Sub message's data is not base64 JSON", details={"message.data": ["base64 JSON"]}
        ) from None
    attributes = message.get("attributes") or {}
    if isinstance(attributes, dict) and attributes.get("ce-type"):  # binary mode: ce-* attributes
        return _cloudevent({k.removeprefix("ce-"): v for k, v in attributes.items()}, decoded)
    if not isinstance(decoded, dict):
        raise MalformedEvent("the Pub/Sub message is not a CloudEvent", details={"message.data": ["a CloudEvent"]})
    return _cloudevent(decoded, decoded.get("data"))


def parse(body: InboundBody, headers: Mapping[str, str]) -> SiblingEvent:
    """The CloudEvent a request carries, whatever its form."""
    fields = body.model_dump()
    ce_type = headers.get("ce-type")
    if ce_type and ce_type != PUBSUB_PUBLISHED:  # binary CloudEvent over HTTP
        return _cloudevent(
            {"id": headers.get("ce-id"), "type": ce_type, "source": headers.get("ce-source")},
            {k: v for k, v in fields.items() if v is not None},
        )
    if isinstance(body.message, dict):  # Pub/Sub push, directly or through Eventarc
        return _from_pubsub(body.message)
    if body.specversion is not None:  # structured CloudEvent over HTTP
        return _cloudevent(fields, body.data)
    raise MalformedEvent(
        "neither a Pub/Sub push nor a CloudEvent", details={"body": ["a Pub/Sub push or a CloudEvent"]}
    )


def receive(call: Call) -> Reply:
    check_secret(call)
    event = parse(call.body, call.headers)
    outcome = uc.apply(call.services, event)
    return Reply({"event_id": event.id, "type": event.type, "outcome": outcome})
