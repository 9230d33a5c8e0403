"""docs/configuration.md lists every environment variable the service reads: each setting of
shared/config.py with its default, and every variable read directly with os.environ anywhere in
the code; and it lists nothing the code does not know."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

from shared.config import Limits, Settings, env_name, known_variables

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "configuration.md"
_DIRECT = re.compile(r"""environ(?:\.get\(|\[)\s*["']([A-Z][A-Z0-9_]+)["']""")


def _documented() -> set[str]:
    return set(re.findall(r"`([A-Z][A-Z0-9_]+)`", DOC.read_text(encoding="utf-8")))


def test_every_setting_is_documented() -> None:
    names = {env_name(f.name) for f in fields(Settings) if f.name != "limits"}
    names |= {env_name(f.name) for f in fields(Limits)}
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


def _setting_defaults() -> dict[str, object]:
    defaults: dict[str, object] = {env_name(f.name): getattr(Settings(), f.name) for f in fields(Settings)}
    defaults |= {env_name(f.name): getattr(Limits(), f.name) for f in fields(Limits)}
    defaults.pop(env_name("limits"))
    return defaults


def _same(documented: str, default: object) -> bool:
    if isinstance(default, bool):
        return documented == str(default).lower()
    if isinstance(default, (int, float)):
        return float(documented) == default
    return documented == default


def test_every_documented_default_is_the_real_one() -> None:
    """Each table row `| `VAR` (, `VAR2`) | default | …`: the default is `value` (one per
    variable), or "(…)" meaning empty."""
    defaults = _setting_defaults()
    checked = set()
    for line in DOC.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not cells[0].startswith("`"):
            continue
        names = re.findall(r"`([A-Z][A-Z0-9_]+)`", cells[0])
        if not names or any(n not in defaults for n in names) or not cells[1].startswith(("`", "(")):
            continue
        values = [""] * len(names) if cells[1].startswith("(") else re.findall(r"`([^`]*)`", cells[1])[: len(names)]
        assert len(values) == len(names), f"docs/configuration.md, {line!r}: one default per variable"
        for name, value in zip(names, values, strict=True):
            assert _same(value, defaults[name]), (
                f"docs/configuration.md says {name} defaults to {value!r}, the code {defaults[name]!r}"
            )
            checked.add(name)
    assert checked == set(defaults), f"no default documented for {sorted(set(defaults) - checked)}"


def _table_variables() -> set[str]:
    """Variables in the first column of the page's tables."""
    lines = DOC.read_text(encoding="utf-8").splitlines()
    firsts = [line.strip().strip("|").split("|")[0] for line in lines if line.startswith("| `")]
    return {name for cell in firsts for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", cell)}


def test_every_whispr_variable_in_the_tables_is_known_to_the_code() -> None:
    documented = {name for name in _table_variables() if name.startswith("WHISPR_")}
    unknown = sorted(documented - known_variables())
    assert not unknown, f"docs/configuration.md documents variables nothing reads: {unknown}"


def test_every_whispr_variable_read_directly_is_known_to_the_settings() -> None:
    """So that load_settings does not warn about them as unknown."""
    read: set[str] = set()
    for folder in ("shared", "functions", "tests", "bench"):
        for path in (ROOT / folder).rglob("*.py"):
            read |= set(_DIRECT.findall(path.read_text(encoding="utf-8", errors="replace")))
    assert not sorted(n for n in read if n.startswith("WHISPR_") and n not in known_variables())
