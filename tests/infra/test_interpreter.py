"""The long-lived servers settle the interpreter before serving: what startup made is frozen out
of the garbage collector's reach, young collections are rarer and the GIL changes hands sooner
(shared.bootstrap.settle_interpreter; docs/performance.md, issue 16, "the latency tail")."""

from __future__ import annotations

import gc
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shared import cli
from shared.bootstrap import GC_THRESHOLDS, SWITCH_INTERVAL_SECONDS, settle_interpreter
from shared.config import get_settings


@pytest.fixture
def restored_gc() -> Iterator[None]:
    thresholds, interval = gc.get_threshold(), sys.getswitchinterval()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
        sys.setswitchinterval(interval)


@pytest.mark.usefixtures("restored_gc")
def test_settling_freezes_what_exists_and_spaces_collections() -> None:
    gc.unfreeze()
    survivor = [object() for _ in range(10)]  # tracked: a list
    settle_interpreter()
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == GC_THRESHOLDS
    assert sys.getswitchinterval() == pytest.approx(SWITCH_INTERVAL_SECONDS)
    assert all(survivor is not o for o in gc.get_objects())  # frozen: out of the collector's lists


@pytest.mark.usefixtures("restored_gc")
def test_dev_settles_the_interpreter_before_serving(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'whispr.db'}")
    monkeypatch.setenv("WHISPR_DEV_KEY_PATH", str(tmp_path / "dev-key.pem"))
    monkeypatch.setenv("WHISPR_SCHEDULER", "none")
    get_settings.cache_clear()
    gc.unfreeze()
    gc.set_threshold(700, 10, 10)
    sys.setswitchinterval(0.005)
    seen: dict[str, Any] = {}

    def serve(*args: Any, **kwargs: Any) -> None:
        seen.update(frozen=gc.get_freeze_count(), thresholds=gc.get_threshold(), interval=sys.getswitchinterval())

    monkeypatch.setattr("shared.relay.shutdown.serve", serve)
    try:
        assert cli.main(["dev", "--host", "127.0.0.1", "--port", "0", "--grpc-port", "0"]) == 0
    finally:
        get_settings.cache_clear()
    assert seen["frozen"] > 0
    assert seen["thresholds"] == GC_THRESHOLDS
    assert seen["interval"] == pytest.approx(SWITCH_INTERVAL_SECONDS)
