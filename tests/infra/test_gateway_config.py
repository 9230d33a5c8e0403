"""The API Gateway config generated from the route table (Swagger 2.0, x-google-backend)."""

from __future__ import annotations

import re
from pathlib import Path

from shared.devtools.export_gateway_openapi import build_gateway_document, main
from shared.devtools.export_routes import INTERNAL_FUNCTIONS
from shared.http.routes import ROUTES

ROOT = Path(__file__).resolve().parents[2]


def test_every_public_route_goes_to_its_function_under_messaging() -> None:
    document = build_gateway_document()
    assert document["swagger"] == "2.0"
    for route in ROUTES:
        operations = [
            op
            for path, item in document["paths"].items()
            for method, op in item.items()
            if method == route.method.lower()
            and path.startswith("/messaging/")
            and path.endswith(route.path.removeprefix("/api"))
        ]
        if route.function in INTERNAL_FUNCTIONS:
            assert not operations, f"internal route {route.method} {route.path} is exposed"
            continue
        assert operations, f"{route.method} {route.path} is missing"
        backend = operations[0]["x-google-backend"]
        assert backend["address"] == "${backends." + route.function + "}"
        assert backend["path_translation"] == "APPEND_PATH_TO_ADDRESS"


def test_the_template_only_references_backends_terraform_provides(tmp_path: Path) -> None:
    target = tmp_path / "gateway.yaml"
    assert main([str(target)]) == 0
    text = target.read_text()
    references = set(re.findall(r"\$\{([^}]*)\}", text))
    assert references and all(re.fullmatch(r"backends\.[a-z_]+", r) for r in references)
    gateway_tf = (ROOT / "terraform/gateway.tf").read_text()
    assert "templatefile(var.openapi_path" in gateway_tf and "backends" in gateway_tf
