"""A real headless Chromium (Debian's `chromium` package, which `.ci/run` installs) driven by
Playwright for Python. Playwright's own browser download is not used: `executable_path` points
at the system browser. Screenshots go to $WHISPR_TEST_ARTIFACTS (default test-artifacts/) /browser."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import ROOT

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def chromium_path() -> str | None:
    for candidate in (os.environ.get("WHISPR_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    """Chromium for the tests of this package, closed when they are done: Playwright's sync API
    runs an asyncio loop in the main thread while it is open, so a later test's `asyncio.run`
    would fail with "cannot be called from a running event loop"."""
    executable = chromium_path()
    if executable is None:
        pytest.skip(
            "no Chromium on this machine: install Debian's package (apt-get install -y chromium; .ci/run does) "
            "or set WHISPR_CHROMIUM to a Chromium binary"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Where the browser tests save their screenshots (kept after the run: CI's test artifacts)."""
    base = Path(os.environ.get("WHISPR_TEST_ARTIFACTS", ROOT / "test-artifacts"))
    target = base / "browser"
    target.mkdir(parents=True, exist_ok=True)
    return target
