"""The scenarios of docs/performance.md, each a function of the running bench returning its figures."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bench.scenarios import b1, b2, b3, b4, b5, b6, references

if TYPE_CHECKING:
    from bench.runner import Bench

Scenario = Callable[["Bench"], dict[str, Any]]

REGISTRY: dict[str, Scenario] = {
    "B1": b1.run,
    "B2": b2.run,
    "B3": b3.run,
    "B4": b4.run,
    "B5": b5.run,
    "B6": b6.run,
    "ceilings": references.ceilings,
    "synapse": references.synapse,
}
