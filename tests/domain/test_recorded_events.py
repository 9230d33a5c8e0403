"""Every event name the code records is known to the CloudEvents mapping, and every domain event
type of integration.md is produced by some recorded name."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest

from shared.domain.cloudevents import RECORDED, TYPES, planned_message, to_cloudevent, to_cloudevents
from shared.domain.models import Event

SHARED = Path(__file__).resolve().parents[2] / "shared"

INTEGRATION_TYPES = [
    "whispr.messaging.message.created",
    "whispr.messaging.message.updated",
    "whispr.messaging.message.deleted",
    "whispr.messaging.message.read",
    "whispr.messaging.conversation.created",
    "whispr.messaging.conversation.updated",
    "whispr.messaging.member.added",
    "whispr.messaging.member.removed",
    "whispr.messaging.moderation.report_created",
    "whispr.messaging.moderation.sanction_applied",
]


def _name_parameters(tree: ast.Module) -> dict[str, int]:
    """Functions that pass one of their parameters on as an Event's name: {function: index}."""
    found: dict[str, int] = {}
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef):
            continue
        params = [a.arg for a in node.args.args]
        for call in ast.walk(node):
            if isinstance(call, ast.Call) and _called(call) == "Event" and call.args:
                first = call.args[0]
                if isinstance(first, ast.Name) and first.id in params:
                    found[node.name] = params.index(first.id)
    return found


def _called(call: ast.Call) -> str:
    func = call.func
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""


def recorded_names() -> Iterator[tuple[str, str]]:
    """(name, where) for every literal event name in shared/: the first argument of `Event(...)`,
    or the argument of a helper that hands it to `Event` as its name."""
    trees = {path: ast.parse(path.read_text(encoding="utf-8")) for path in SHARED.rglob("*.py")}
    helpers: dict[str, int] = {"Event": 0}
    for tree in trees.values():
        helpers.update(_name_parameters(tree))
    for path, tree in trees.items():
        for call in ast.walk(tree):
            if not isinstance(call, ast.Call) or _called(call) not in helpers:
                continue
            index = helpers[_called(call)]
            name = call.args[index] if index < len(call.args) else None
            if isinstance(name, ast.Constant) and isinstance(name.value, str):
                yield name.value, f"{path.relative_to(SHARED.parent)}:{call.lineno}"


def test_the_walk_finds_the_names_recorded_through_helpers() -> None:
    names = {name for name, _ in recorded_names()}
    # recorded directly, through `_announce` (conversations) and through `_member_event` (members)
    assert {"new_message", "conversation_created", "member_added", "member_removed"} <= names


@pytest.mark.parametrize(("name", "where"), sorted(set(recorded_names())))
def test_every_recorded_name_is_in_the_mapping(name: str, where: str) -> None:
    assert name in RECORDED, f"{where} records {name!r}, unknown to shared.domain.cloudevents.RECORDED"


def test_an_unknown_name_cannot_be_recorded() -> None:
    with pytest.raises(ValueError, match=r"not in shared\.domain\.cloudevents\.RECORDED"):
        Event("message_teleported", {}, ())


def test_every_type_of_integration_md_comes_from_a_recorded_name() -> None:
    assert sorted(INTEGRATION_TYPES) == TYPES


@pytest.mark.parametrize("name", [n for n, kind in RECORDED.items() if kind is not None])
def test_each_published_name_becomes_its_cloudevent(name: str) -> None:
    payload = {"delete_for_everyone": True, "message": {"id": "m", "content": "secret", "metadata": {}}}
    event = to_cloudevent("e1", name, payload, "c1", datetime.now(timezone.utc))
    assert event is not None
    assert event["type"] == RECORDED[name] and event["specversion"] == "1.0" and event["id"] == "e1"
    assert "content" not in event["data"]["message"]


def test_a_planner_pass_is_one_message_created_per_message_with_its_own_id_and_ordering_key() -> None:
    message = {"id": "m1", "content": "secret", "metadata": {"mentions": ["u2", 3]}, "sender_id": "u1"}
    payload = {
        "messages": [
            planned_message("n1", "c1", message, ["u2"], False),
            planned_message("n2", "c2", {**message, "id": "m2"}, [], True),
        ]
    }
    now = datetime.now(timezone.utc)
    created = to_cloudevents("row", "message_recipients", payload, None, now)
    assert [(key, event["id"], event["subject"]) for key, event in created] == [
        ("c1", "n1", "conversations/c1"),
        ("c2", "n2", "conversations/c2"),
    ]
    assert {event["type"] for _, event in created} == {"whispr.messaging.message.created"}
    assert created[0][1]["data"] == {
        "message": {"id": "m1", "sender_id": "u1", "mention_ids": ["u2"]},
        "recipient_ids": ["u2"],
        "encrypted": False,
    }
    assert created[1][1]["data"]["encrypted"] is True and created[1][1]["data"]["recipient_ids"] == []
    # a row recorded one message at a time (before passes were one row) is still one event
    (single,) = to_cloudevents(
        "e1", "message_recipients", {"message": message, "recipient_ids": [], "encrypted": False}, "c1", now
    )
    assert single[0] == "c1" and single[1]["id"] == "e1" and "content" not in single[1]["data"]["message"]
    assert to_cloudevents("e2", "delivery_status", {}, "c1", now) == []  # siblings do not hear of it
