"""docs/configuration.md lists every environment variable the service reads: each setting of
shared/config.py, and every variable read directly with os.environ anywhere in the code."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

from shared.config import Limits, Settings, _env_name

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "configuration.md"
_DIRECT = re.compile(r"""environ(?:\.get\(|\[)\s*["']([A-Z][A-Z0-9_]+)["']""")


def _documented() -> set[str]:
    return set(re.findall(r"`([A-Z][A-Z0-9_]+)`", DOC.read_text(encoding="utf-8")))


def test_every_setting_is_documented() -> None:
    names = {_env_name(f.name) for f in fields(Settings) if f.name != "limits"}
    names |= {_env_name(f.name) for f in fields(Limits)}
    missing = sorted(names - _documented())
    assert not missing, f"add these to docs/configuration.md (default, meaning, adapter): {missing}"


def test_every_variable_read_directly_is_documented() -> None:
    read: set[str] = set()
    for folder in ("shared", "functions", "tests", "bench"):
        for path in (ROOT / folder).rglob("*.py"):
            read |= set(_DIRECT.findall(path.read_text(encoding="utf-8", errors="replace")))
    assert "WHISPR_PG_BIN" in read  # the pattern finds them
    missing = sorted(read - _documented())
    assert not missing, f"add these to docs/configuration.md: {missing}"


def test_the_readme_points_to_the_table() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    assert "docs/configuration.md" in section
