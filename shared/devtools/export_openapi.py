"""Write the OpenAPI 3.1 document of the route table to a file.

    python -m shared.devtools.export_openapi build/openapi.json
    python -m shared.devtools.export_openapi --check build/openapi.json
    python -m shared.devtools.export_openapi -            # to stdout

It is the document the service serves at /messaging/api/openapi.json (`shared.http.openapi`),
for tools that want it as a file: client generators, API Gateway and Terraform pipelines.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from shared.http.openapi import build_document


def render() -> str:
    return json.dumps(build_document(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shared.devtools.export_openapi",
                                     description=(__doc__ or "").split("\n")[0])
    parser.add_argument("output", help="file to write, e.g. build/openapi.json ('-' for stdout)")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if the file is out of date")
    args = parser.parse_args(argv)
    text = render()
    if args.output == "-":
        sys.stdout.write(text)
        return 0
    target = Path(args.output)
    if args.check:
        current = target.read_text(encoding="utf-8") if target.is_file() else ""
        if current != text:
            print(f"{target} is out of date: run python -m shared.devtools.export_openapi {target}", file=sys.stderr)
            return 1
        return 0
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    operations = sum(1 for item in json.loads(text)["paths"].values() for key in item if key != "servers")
    print(f"wrote {operations} operations to {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
