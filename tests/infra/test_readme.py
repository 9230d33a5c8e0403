"""The README and the docs hold on a fresh clone: every link points at a file in the
repository, and the curl walk-through is the one the README shows."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.support import ROOT, fresh_database, make_settings, serve

PAGES = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_link_is_a_file_of_the_repository(page: Path) -> None:
    for target in LINK.findall(page.read_text(encoding="utf-8")):
        if target.startswith("#"):
            continue
        assert not re.match(r"^[a-z]+:", target), f"{page.name} links outside the repository: {target}"
        path = (page.parent / target.split("#", 1)[0]).resolve()
        assert path.is_relative_to(ROOT) and path.exists(), f"{page.name}: {target} does not exist"


def test_the_readme_names_what_make_test_needs_and_shows_the_screenshots() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for needed in ("WHISPR_PORT", "PostgreSQL", "pubsub-emulator", "cloud-firestore-emulator", "Java", "npm", "root"):
        assert needed in readme, needed
    for image in ("docs/images/web-chat.png", "docs/images/api-reference.png"):
        assert f"]({image})" in readme and (ROOT / image).stat().st_size > 10_000
    for page in ("LICENSE", "CONTRIBUTING.md", "CHANGELOG.md"):
        assert (ROOT / page).is_file()


def _walk_through() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Try it (curl walk-through)", 1)[1]
    return section.split("```sh\n", 1)[1].split("```", 1)[0]


@pytest.mark.skipif(shutil.which("curl") is None, reason="the walk-through needs curl")
def test_the_curl_walk_through_does_what_its_comments_say(pg_url: str, tmp_path: Path) -> None:
    """The README's block, run as a new user would (in a directory with `.venv` and `./var`),
    against a gateway on a fresh database."""
    (tmp_path / ".venv").symlink_to(ROOT / ".venv")
    key = tmp_path / "var" / "dev-signing-key.pem"
    key.parent.mkdir()
    database = fresh_database(pg_url, "whispr_readme", str(key))
    with serve(make_settings(database, str(key))) as running:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("WHISPR_", "DATABASE_URL", "JWT_"))}
        env["WHISPR_PORT"] = str(urlsplit(running.url).port)
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", _walk_through()],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    statuses = [line for line in lines if line.startswith("-> HTTP")]
    assert statuses == ["-> HTTP 201", "-> HTTP 201", "-> HTTP 200"], done.stdout  # create; send; the retry
    bodies = [json.loads(line) for line in lines if line.startswith("{")]
    created, sent, retried, bob_reads, watermark, alice_reads = bodies
    assert created["data"]["type"] == "direct"
    assert retried["data"] == sent["data"] and retried["meta"]["duplicate"] is True
    assert [m["seq"] for m in bob_reads["data"]] == [1]
    assert watermark["data"]["last_read_seq"] == 1
    assert alice_reads["data"][0]["status"] == "read"
