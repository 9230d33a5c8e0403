"""Write the deployable functions and their routes as JSON, for Terraform.

    python -m shared.devtools.export_routes terraform/functions.auto.tfvars.json
    python -m shared.devtools.export_routes --check terraform/functions.auto.tfvars.json

The output is a Terraform variables file (`functions`, one entry per Cloud Function) built from
the route table (`shared.http.routes`), plus the internal functions that serve no REST route
(`tasks` for Cloud Tasks and Cloud Scheduler, `events` for Pub/Sub push) once their
`functions/<name>/main.py` exists. The generated file is committed; a test checks that it
equals what the route table produces now, so the deployment cannot drift from the code.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from shared.devtools.export import export_main
from shared.http.routes import ROUTES, functions

REPO_ROOT = Path(__file__).resolve().parents[2]

# Functions that are not behind the API gateway: invoked only by Google services with an
# OIDC token (Cloud Tasks, Cloud Scheduler, Pub/Sub push), never by clients.
INTERNAL_FUNCTIONS: dict[str, str] = {
    "tasks": "Cloud Tasks (scheduled messages, expiries) and Cloud Scheduler (sweepers)",
    "events": "Pub/Sub push of sibling services' events",
}


def source_of(name: str) -> str:
    """The function's source file, relative to the repo root (GOOGLE_FUNCTION_SOURCE)."""
    return f"functions/{name}/main.py"


def manifest(root: Path = REPO_ROOT) -> dict[str, Any]:
    """`{"functions": {name: {...}}}`: route-table functions in table order, then the internal
    ones whose source file exists under `root`."""
    out: dict[str, dict[str, Any]] = {}
    for name in functions():
        out[name] = {
            "source": source_of(name),
            "entry_point": name,
            "public": name not in INTERNAL_FUNCTIONS,
            "description": f"REST: the {name} routes of the route table",
            "routes": [
                {"method": r.method, "path": r.path, "authenticated": r.authenticated}
                for r in ROUTES
                if r.function == name
            ],
        }
    for name, description in INTERNAL_FUNCTIONS.items():
        if name not in out and (root / source_of(name)).is_file():
            out[name] = {
                "source": source_of(name),
                "entry_point": name,
                "public": False,
                "description": description,
                "routes": [],
            }
    return {"functions": out}


def render(root: Path = REPO_ROOT) -> str:
    return json.dumps(manifest(root), indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    return export_main("shared.devtools.export_routes", __doc__, render, argv)


if __name__ == "__main__":
    sys.exit(main())
