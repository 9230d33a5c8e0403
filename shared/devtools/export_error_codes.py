"""Write the error codes of every route of the table, by status, as the OpenAPI document lists them.

    python -m shared.devtools.export_error_codes shared/http/error_codes.json
    python -m shared.devtools.export_error_codes --check shared/http/error_codes.json

The codes are read from the code that raises them (`shared.http.error_codes` parses `shared/`),
which takes about a second of CPU: too slow for the first request of a cold docs function, so the
result is generated here and committed, and `shared.http.openapi` reads the file. A test fails
when the committed file differs from what the code raises now.
"""

from __future__ import annotations

import json
import sys

from shared.devtools.export import export_main
from shared.http.openapi import analysed_error_codes
from shared.http.routes import ROUTES


def render() -> str:
    """One line per route, in table order: a change of codes is a one-line diff."""
    lines = [f"{json.dumps(f'{r.method} {r.path}')}: {json.dumps(analysed_error_codes(r))}" for r in ROUTES]
    return "{\n" + ",\n".join(lines) + "\n}\n"


def main(argv: list[str] | None = None) -> int:
    return export_main("shared.devtools.export_error_codes", __doc__, render, argv)


if __name__ == "__main__":
    sys.exit(main())
