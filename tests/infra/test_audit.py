"""The advisory check (`make audit`): what it makes of pip-audit's JSON report. The report below
is in pip-audit's own format (`pip-audit --format json`), with the orjson advisory of issue 10."""

from __future__ import annotations

from shared.devtools.audit import advisories_of_latest, summarise

REPORT = {
    "dependencies": [
        {"name": "httpx", "version": "0.28.1", "vulns": []},
        {
            "name": "orjson",
            "version": "3.11.4",
            "vulns": [
                {
                    "id": "GHSA-hx9q-6w63-j58v",
                    "fix_versions": ["3.11.5"],
                    "aliases": [],
                    "description": "dumps recursion",
                }
            ],
        },
        {"name": "alembic", "skip_reason": "Dependency not found on PyPI and could not be audited: alembic (1.17.2)"},
    ],
    "fixes": [],
}


def test_a_known_vulnerability_is_reported_with_its_fix() -> None:
    vulnerable, skipped, audited = summarise(REPORT)
    assert vulnerable == ["orjson==3.11.4: GHSA-hx9q-6w63-j58v; fixed in 3.11.5"]
    assert audited == 2
    assert [s.split(":")[0] for s in skipped] == ["alembic"]


def test_a_clean_report_has_nothing_to_say() -> None:
    assert summarise({"dependencies": [{"name": "httpx", "version": "0.28.1", "vulns": []}]}) == ([], [], 1)


def test_a_pin_at_the_latest_release_is_audited_from_the_project_page() -> None:
    """PyPI's project page (`/pypi/<name>/json`) lists the advisories of the latest release."""
    page = {
        "info": {"version": "3.11.4"},
        "vulnerabilities": [
            {"id": "GHSA-hx9q-6w63-j58v", "aliases": ["CVE-2025-1"], "fixed_in": ["3.11.5"], "withdrawn": None},
            {"id": "GHSA-old", "aliases": [], "fixed_in": [], "withdrawn": "2025-01-01T00:00:00Z"},
        ],
    }
    assert advisories_of_latest(page, "orjson", "3.11.4") == [
        "orjson==3.11.4: GHSA-hx9q-6w63-j58v (CVE-2025-1); fixed in 3.11.5"
    ]
    assert advisories_of_latest({**page, "vulnerabilities": []}, "orjson", "3.11.4") == []
    assert advisories_of_latest(page, "orjson", "3.10.0") is None  # an older pin: the page says nothing of it
