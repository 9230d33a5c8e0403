"""The long-lived servers settle the interpreter before serving: what startup made is frozen out
of the garbage collector's reach and young collections are rarer (shared.bootstrap.settle_interpreter;
docs/performance.md, issue 16, "the latency tail")."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shared import cli
from shared.bootstrap import GC_THRESHOLDS, settle_interpreter
from shared.config import get_settings


@pytest.fixture
def restored_gc() -> Iterator[None]:
    thresholds = gc.get_threshold()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)


@pytest.mark.usefixtures("restored_gc")
def test_settling_freezes_what_exists_and_spaces_collections() -> None:
    gc.unfreeze()
    survivor = [object() for _ in range(10)]  # tracked: a list
    settle_interpreter()
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == GC_THRESHOLDS
    assert all(survivor is not o for o in gc.get_objects())  # frozen: out of the collector's lists


@pytest.mark.usefixtures("restored_gc")
def test_dev_settles_the_interpreter_before_serving(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'whispr.db'}")
    monkeypatch.setenv("WHISPR_DEV_KEY_PATH", str(tmp_path / "dev-key.pem"))
    monkeypatch.setenv("WHISPR_SCHEDULER", "none")
    get_settings.cache_clear()
    gc.unfreeze()
    gc.set_threshold(700, 10, 10)
    seen: dict[str, Any] = {}

    def serve(*args: Any, **kwargs: Any) -> None:
        seen.update(frozen=gc.get_freeze_count(), thresholds=gc.get_threshold())

    monkeypatch.setattr("shared.relay.shutdown.serve", serve)
    try:
        assert cli.main(["dev", "--host", "127.0.0.1", "--port", "0", "--grpc-port", "0"]) == 0
    finally:
        get_settings.cache_clear()
    assert seen["frozen"] > 0
    assert seen["thresholds"] == GC_THRESHOLDS
