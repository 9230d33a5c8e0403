"""The gRPC contracts in protos/ compile with grpcio-tools into the committed shared/protogen/,
the generated modules import, and they declare every rpc that spec/integration.md lists
(served and consumed).

Generated code is imported in a child process so that its descriptors never meet the ones
another test (or the gRPC shim) registers in this process's default descriptor pool."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROTOS = ROOT / "protos"

# proto file -> (package, service, the rpcs integration.md lists for it)
CONTRACTS: dict[str, tuple[str, str, set[str]]] = {
    "whispr/messaging/v1/messaging.proto": (
        "whispr.messaging.v1",
        "MessagingService",
        {
            "NotifyConversationEvent",
            "LinkMediaToMessage",
            "GetConversationStats",
            "NotifyGroupCreation",
            "SendScheduledMessage",
            "CleanupExpiredMessages",
            "GetConversationParticipants",
            "GetMessage",
            "SendSystemMessage",
        },
    ),
    "whispr/user/v1/user.proto": (
        "whispr.user.v1",
        "UserService",
        {"ValidateMessagePermissions", "ValidateConversationAccess", "GetConversationParticipants", "CheckUserBlocks"},
    ),
    "whispr/media/v1/media.proto": (
        "whispr.media.v1",
        "MediaService",
        {"ValidateMediaAccess", "LinkMediaToMessage", "GetMediaMetadata", "ValidateMediaMetadata"},
    ),
    "whispr/notification/v1/notification.proto": (
        "whispr.notification.v1",
        "NotificationService",
        {
            "SendMessageNotification",
            "SendBulkNotifications",
            "SendConversationNotification",
            "MarkNotificationsAsRead",
        },
    ),
}

# Runs in the child: import the generated modules and describe them as JSON.
_DESCRIBE = r"""
import importlib, json, sys
from google.protobuf.descriptor import FieldDescriptor

sys.path.insert(0, sys.argv[1])
out = {}

def fields(message, into):
    for field in message.fields:
        into.append({
            "message": message.full_name,
            "name": field.name,
            "string": field.type == FieldDescriptor.TYPE_STRING,
            "message_type": field.message_type.full_name if field.message_type else None,
        })
    for nested in message.nested_types:
        fields(nested, into)

for proto in sys.argv[2:]:
    base = "shared.protogen." + proto[: -len(".proto")].replace("/", ".")
    pb2 = importlib.import_module(base + "_pb2")
    pb2_grpc = importlib.import_module(base + "_pb2_grpc")
    file = pb2.DESCRIPTOR
    services = {}
    for name, service in file.services_by_name.items():
        stub = getattr(pb2_grpc, name + "Stub")
        servicer = getattr(pb2_grpc, name + "Servicer")
        services[name] = {
            "methods": sorted(service.methods_by_name),
            "servicer_methods": sorted(m for m in service.methods_by_name if callable(getattr(servicer, m, None))),
            "has_add_to_server": hasattr(pb2_grpc, "add_" + name + "Servicer_to_server"),
            "stub_class": stub.__name__,
        }
    all_fields = []
    for message in file.message_types_by_name.values():
        fields(message, all_fields)
    out[proto] = {"package": file.package, "services": services, "fields": all_fields}
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def described() -> dict[str, Any]:
    """The committed generated modules (test_committed_generated_code_is_current proves they are
    what protoc makes of protos/ today), described by a child process."""
    result = subprocess.run(
        [sys.executable, "-c", _DESCRIBE, str(ROOT), *CONTRACTS],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    parsed: dict[str, Any] = json.loads(result.stdout)
    return parsed


def test_every_proto_file_is_covered() -> None:
    on_disk = {str(p.relative_to(PROTOS)) for p in PROTOS.rglob("*.proto")}
    assert on_disk == set(CONTRACTS)


@pytest.mark.parametrize("proto", sorted(CONTRACTS))
def test_package_matches_path(described: dict[str, Any], proto: str) -> None:
    package, _service, _rpcs = CONTRACTS[proto]
    assert described[proto]["package"] == package
    assert package.replace(".", "/") == str(Path(proto).parent)


@pytest.mark.parametrize("proto", sorted(CONTRACTS))
def test_service_declares_every_rpc_of_the_spec(described: dict[str, Any], proto: str) -> None:
    _package, service, rpcs = CONTRACTS[proto]
    services = described[proto]["services"]
    assert list(services) == [service]
    assert set(services[service]["methods"]) == rpcs


@pytest.mark.parametrize("proto", sorted(CONTRACTS))
def test_generated_grpc_module_has_stub_servicer_and_registration(described: dict[str, Any], proto: str) -> None:
    _package, service, rpcs = CONTRACTS[proto]
    generated = described[proto]["services"][service]
    assert generated["stub_class"] == f"{service}Stub"
    assert set(generated["servicer_methods"]) == rpcs
    assert generated["has_add_to_server"]


@pytest.mark.parametrize("proto", sorted(CONTRACTS))
def test_ids_are_strings_and_times_are_timestamps(described: dict[str, Any], proto: str) -> None:
    wrong: list[str] = []
    for field in described[proto]["fields"]:
        name = field["name"]
        where = f"{field['message']}.{name}"
        if (name == "id" or name.endswith(("_id", "_ids"))) and not field["string"]:
            wrong.append(f"{where} is an id but not a string")
        if name.endswith("_at") and field["message_type"] != "google.protobuf.Timestamp":
            wrong.append(f"{where} is a time but not a google.protobuf.Timestamp")
    assert not wrong, "\n".join(wrong)


def test_committed_generated_code_is_current() -> None:
    """shared/protogen/ is committed (the images and functions import it without grpcio-tools):
    it must be exactly what protos/ generates today."""
    from shared.devtools import protogen

    stale = protogen.check()
    assert not stale, f"run python -m shared.devtools.protogen; stale: {stale}"
