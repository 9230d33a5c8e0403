"""The browser code the service ships (shared/web/vendor) is the npm packages it says it is."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support import ROOT

WEB = ROOT / "shared" / "web"


def test_the_shipped_phoenix_client_is_the_npm_package(phoenix_js: Path) -> None:
    wanted = json.loads((WEB / "package.json").read_text())["dependencies"]
    installed = phoenix_js / "node_modules" / "phoenix"
    assert json.loads((installed / "package.json").read_text())["version"] == wanted["phoenix"]
    shipped = (WEB / "vendor" / "phoenix" / "phoenix.min.js").read_bytes()
    assert shipped == (installed / "priv" / "static" / "phoenix.min.js").read_bytes()


def test_the_shipped_swagger_ui_is_the_pinned_version() -> None:
    wanted = json.loads((WEB / "package.json").read_text())["dependencies"]["swagger-ui-dist"]
    bundle = (WEB / "vendor" / "swagger-ui" / "swagger-ui-bundle.js").read_text(encoding="utf-8")
    assert wanted in bundle
