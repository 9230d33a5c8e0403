"""Write the OpenAPI 3.1 document of the route table to a file.

    python -m shared.devtools.export_openapi build/openapi.json
    python -m shared.devtools.export_openapi --check build/openapi.json
    python -m shared.devtools.export_openapi -            # to stdout

It is the document the service serves at /messaging/api/openapi.json (`shared.http.openapi`),
for tools that want it as a file: client generators, API Gateway and Terraform pipelines.
"""

from __future__ import annotations

import json
import sys

from shared.devtools.export import export_main
from shared.http.openapi import build_document


def render() -> str:
    return json.dumps(build_document(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    return export_main("shared.devtools.export_openapi", __doc__, render, argv)


if __name__ == "__main__":
    sys.exit(main())
