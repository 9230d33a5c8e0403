"""The benchmark's smoke run: every scenario with `--quick` (seconds each), so that the benchmark
cannot rot. It checks that the table, the JSON and the PNG are written and that every scenario
produced numbers; it never asserts on a timing (the machine is shared and noisy)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value == value  # not NaN


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, Any], Path]:
    out = tmp_path_factory.mktemp("bench")
    done = subprocess.run(
        [sys.executable, "-m", "shared.cli", "bench", "--quick", "--skip-synapse", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, f"bench --quick failed:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    runs = sorted(p for p in out.iterdir() if p.is_dir())
    assert len(runs) == 1, runs
    return done.stdout, json.loads((runs[0] / "results.json").read_text()), runs[0]


def test_writes_the_table_the_json_and_the_chart(quick_run: tuple[str, dict[str, Any], Path]) -> None:
    stdout, data, folder = quick_run
    assert "| scenario | figure | value |" in stdout
    assert (folder / "table.md").read_text().startswith("| scenario | figure | value |")
    assert (folder / "chart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert data["options"]["quick"] is True
    assert data["machine"]["cpus"] and "loadavg_samples" in data["machine"]
    assert set(data["results"]) == {"B1", "B2", "B3", "B4", "B5", "B6", "ceilings"}


def test_every_scenario_has_numbers(quick_run: tuple[str, dict[str, Any], Path]) -> None:
    _, data, _ = quick_run
    r = data["results"]
    for name, section in r.items():
        assert "error" not in section, (name, section["error"])
    closed = next(iter(r["B1"]["closed"].values()))
    assert number(closed["throughput"]) and number(closed["p99_ms"])
    assert all(number(step["p99_ms"]) for step in r["B1"]["steps"])
    # the bench's own CPU accounting: the service's and PostgreSQL's CPU per message, busy cores
    assert number(closed["service_us_per_msg"]) and number(closed["postgres_us_per_msg"])
    assert number(closed["busy_cores"])
    assert all(number(s["deliveries_per_cpu_s"]) for s in r["B2"]["sizes"])
    assert all(number(s["p99_ms"]) and number(s["deliveries_per_s"]) for s in r["B2"]["sizes"])
    assert all(
        s["connected"] > 0 and number(s["kb_per_socket"]) and number(s["probe_p99_ms"]) for s in r["B3"]["sizes"]
    )
    assert all(number(s["p99_ms"]) and number(s["requests_per_s"]) and s["status"].get("200") for s in r["B4"]["sizes"])
    assert number(r["B5"]["requests_per_s"]) and r["B5"]["status"].get("201")
    assert number(r["B6"]["seconds"]) and r["B6"]["all_in_order"]
    pg = r["ceilings"]["pgbench"]
    assert number(pg["single"]["rows_per_s"]) and number(pg["batched"]["rows_per_s"])
    assert number(next(iter(r["ceilings"]["bare_pairs"]["closed"].values()))["throughput"])
    assert number(r["ceilings"]["bare_broadcast"]["deliveries_per_s"])
    assert number(data["ratios"]["relay_vs_bare_pairs"] or data["ratios"]["durable_vs_pgbench_batched"])


def test_the_synapse_driver_imports_and_writes_its_config(tmp_path: Path) -> None:
    """Synapse itself is left out of the smoke run (its install takes minutes); its driver must
    still import and produce a configuration Synapse can read (JSON is YAML)."""
    from bench import synapse

    path = synapse.write_config(tmp_path, 8448, 5432, "secret")
    config = json.loads(path.read_text())
    assert config["database"]["name"] == "psycopg2"
    assert config["listeners"][0]["bind_addresses"] == ["127.0.0.1"]
    assert config["rc_message"]["per_second"] >= 1000
    assert config["trusted_key_servers"] == []
