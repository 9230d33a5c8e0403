"""Write the AsyncAPI 3 document of the relay (the socket contract) to a file.

    python -m shared.devtools.export_asyncapi build/asyncapi.json
    python -m shared.devtools.export_asyncapi --check build/asyncapi.json
    python -m shared.devtools.export_asyncapi -            # to stdout

It is the document the service serves at /messaging/api/asyncapi.json (`shared.relay.asyncapi`),
for tools that want it as a file: AsyncAPI generators and viewers, client code generators.
"""

from __future__ import annotations

import json
import sys

from shared.devtools.export import export_main
from shared.relay.asyncapi import build_document


def render() -> str:
    return json.dumps(build_document(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    return export_main("shared.devtools.export_asyncapi", __doc__, render, argv)


if __name__ == "__main__":
    sys.exit(main())
