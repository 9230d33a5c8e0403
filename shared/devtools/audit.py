"""The dependency advisory check of CI (`make audit`, run by `make test`): pip-audit over the
packages installed from the pinned requirements (runtime, dev, and what they pulled in), failing
on any known vulnerability.

pip-audit asks PyPI's JSON API about each exact version. Where that API does not answer for a
version (a mirror that serves only the project pages, as on the development machines of this
project), pip-audit skips the package instead of failing: a silent pass. This check counts the
skipped ones and says plainly that they were not audited; with `--strict` (or
WHISPR_AUDIT_STRICT=1, for a CI that does reach PyPI) any unaudited package fails the check too,
and so does pip-audit failing to run at all (otherwise reported, not failed: an unreachable
advisory source is not a vulnerability, and CI must not fail by chance).

What pip-audit skips is then asked of PyPI's project page (`/pypi/<name>/json`), which does
answer here and lists the advisories that affect the project's latest release: a package pinned
at its latest release is audited that way; one pinned behind it stays "not audited" (the page
does not speak for older releases).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

PYPI_PROJECT = "https://pypi.org/pypi/{name}/json"


def summarise(report: dict[str, Any]) -> tuple[list[str], list[str], int]:
    """(one line per known vulnerability, the packages not audited, how many were audited)."""
    vulnerable: list[str] = []
    skipped: list[str] = []
    audited = 0
    for dependency in report.get("dependencies", []):
        if "skip_reason" in dependency:
            skipped.append(f"{dependency['name']}: {dependency['skip_reason']}")
            continue
        audited += 1
        for vuln in dependency.get("vulns", []):
            fixed = ", ".join(vuln.get("fix_versions") or []) or "no fixed version"
            aliases = f" ({', '.join(vuln['aliases'])})" if vuln.get("aliases") else ""
            vulnerable.append(f"{dependency['name']}=={dependency['version']}: {vuln['id']}{aliases}; fixed in {fixed}")
    return vulnerable, skipped, audited


def advisories_of_latest(project: dict[str, Any], name: str, version: str) -> list[str] | None:
    """The known vulnerabilities of `name==version` from PyPI's project page, one line each;
    None when `version` is not the latest release (the page's advisories are the latest's)."""
    if project.get("info", {}).get("version") != version:
        return None
    lines = []
    for vuln in project.get("vulnerabilities") or []:
        if vuln.get("withdrawn"):
            continue
        fixed = ", ".join(vuln.get("fixed_in") or []) or "no fixed version"
        aliases = f" ({', '.join(vuln['aliases'])})" if vuln.get("aliases") else ""
        lines.append(f"{name}=={version}: {vuln.get('id')}{aliases}; fixed in {fixed}")
    return lines


def audit_from_project_pages(names: list[str]) -> tuple[list[str], list[str], int]:
    """What pip-audit skipped, asked of PyPI's project pages: (vulnerable lines, still not
    audited, how many were audited)."""

    def one(name: str) -> tuple[str, list[str] | None]:
        try:
            version = importlib.metadata.version(name)
            with urllib.request.urlopen(PYPI_PROJECT.format(name=name), timeout=20) as answer:
                return name, advisories_of_latest(json.load(answer), name, version)
        except (OSError, ValueError, importlib.metadata.PackageNotFoundError):
            return name, None

    vulnerable: list[str] = []
    skipped: list[str] = []
    with ThreadPoolExecutor(8) as pool:
        for name, lines in pool.map(one, names):
            if lines is None:
                skipped.append(f"{name}: pinned behind its latest release, or PyPI did not answer")
            else:
                vulnerable.extend(lines)
    return vulnerable, skipped, len(names) - len(skipped)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--strict", action="store_true", help="fail when a package could not be audited")
    args = parser.parse_args(argv)
    strict = args.strict or os.environ.get("WHISPR_AUDIT_STRICT") == "1"
    pip_audit = shutil.which("pip-audit", path=str(Path(sys.executable).parent)) or "pip-audit"
    done = subprocess.run(
        [pip_audit, "--local", "--skip-editable", "--format", "json", "--progress-spinner", "off"],
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        report = json.loads(done.stdout)
    except json.JSONDecodeError:  # it could not run: the advisory source unreachable, most often
        print(f"pip-audit gave no report (exit {done.returncode}): NOTHING AUDITED", file=sys.stderr)
        print(done.stderr[-4000:], file=sys.stderr)
        return 2 if strict else 0
    vulnerable, skipped, audited = summarise(report)
    if skipped:
        more, skipped, also = audit_from_project_pages([s.split(":")[0] for s in skipped])
        vulnerable, audited = vulnerable + more, audited + also
    for line in vulnerable:
        print(f"VULNERABLE {line}", file=sys.stderr)
    if skipped:
        print(
            f"pip-audit: {len(skipped)} package(s) NOT audited (the advisory source did not answer for them), "
            f"e.g. {skipped[0]}",
            file=sys.stderr,
        )
    print(
        f"pip-audit: {audited} package(s) audited, {len(vulnerable)} known vulnerability(ies), {len(skipped)} skipped"
    )
    if vulnerable:
        return 1
    return 1 if strict and skipped else 0


if __name__ == "__main__":
    sys.exit(main())
