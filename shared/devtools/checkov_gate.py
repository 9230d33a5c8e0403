"""CI gate over checkov's findings on terraform/ and deploy/: fail on any finding the baseline
(deploy/checkov-baseline.json) does not accept with a reason, and on an accepted one that no
longer occurs (so the baseline only shrinks). checkov runs from its own virtualenv (its pins
clash with the service's): `make checkov` makes it.

    python -m shared.devtools.checkov_gate [--checkov PATH]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BASELINE = ROOT / "deploy" / "checkov-baseline.json"
TARGETS = (("terraform", ["--framework", "terraform"]), ("deploy", ["--framework", "dockerfile"]))


def findings(checkov: str) -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for directory, options in TARGETS:
        done = subprocess.run(
            [checkov, "-d", str(ROOT / directory), *options, "--quiet", "--compact", "-o", "json"],
            capture_output=True,
            text=True,
            check=False,
        )
        if not done.stdout.strip():
            raise SystemExit(f"checkov gave nothing on {directory}/: {done.stderr[-2000:]}")
        reports = json.loads(done.stdout)
        for report in reports if isinstance(reports, list) else [reports]:
            for check in report.get("results", {}).get("failed_checks", []):
                found.add((check["check_id"], check["resource"]))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checkov", default=str(ROOT / ".venv-checkov" / "bin" / "checkov"))
    args = parser.parse_args(argv)
    accepted = {(a["check"], a["resource"]): a["why"] for a in json.loads(BASELINE.read_text())["accepted"]}
    missing_reason = [key for key, why in accepted.items() if not why.strip()]
    found = findings(args.checkov)
    new = sorted(found - set(accepted))
    gone = sorted(set(accepted) - found)
    for check, resource in new:
        print(f"new checkov finding: {check} on {resource} (fix it, or accept it with a reason in {BASELINE.name})")
    for check, resource in gone:
        print(f"{check} on {resource} no longer occurs: remove it from {BASELINE.name}")
    for check, resource in missing_reason:
        print(f"{check} on {resource} is accepted without a reason")
    print(f"checkov: {len(found)} findings, {len(found) - len(new)} accepted with a reason, {len(new)} new")
    return 1 if new or gone or missing_reason else 0


if __name__ == "__main__":
    sys.exit(main())
