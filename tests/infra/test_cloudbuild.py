"""cloudbuild.yaml and the container images: the pipeline tests before it deploys, builds the
relay and gRPC images from Dockerfiles that exist, and only sets Terraform variables that
terraform/variables.tf declares."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]

yaml = pytest.importorskip("yaml")


@pytest.fixture(scope="module")
def build() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "cloudbuild.yaml").read_text(encoding="utf-8"))
    return loaded


def _step(build: dict[str, Any], step_id: str) -> dict[str, Any]:
    steps = {step["id"]: step for step in build["steps"]}
    assert step_id in steps, f"no step {step_id!r} in cloudbuild.yaml"
    found: dict[str, Any] = steps[step_id]
    return found


def _text(step: dict[str, Any]) -> str:
    return " ".join(str(arg) for arg in step.get("args", []))


def test_steps_have_unique_ids_and_wait_only_for_known_steps(build: dict[str, Any]) -> None:
    ids = [step["id"] for step in build["steps"]]
    assert len(ids) == len(set(ids))
    for step in build["steps"]:
        for dependency in step.get("waitFor", []):
            assert dependency in ids, f"{step['id']} waits for unknown step {dependency}"


def test_tests_run_before_anything_is_deployed(build: dict[str, Any]) -> None:
    assert ".ci/run" in _text(_step(build, "test")) or "make test" in _text(_step(build, "test"))
    assert _step(build, "terraform-init")["waitFor"] == ["test"]
    assert "apply" in _text(_step(build, "deploy"))


@pytest.mark.parametrize("image", ["relay", "grpc"])
def test_images_are_built_from_existing_dockerfiles(build: dict[str, Any], image: str) -> None:
    args = _step(build, f"build-{image}")["args"]
    dockerfile = ROOT / args[args.index("-f") + 1]
    assert dockerfile.is_file()
    assert f'ENTRYPOINT ["whispr-messaging", "{image}"]' in dockerfile.read_text(encoding="utf-8")
    assert any(f"/{image}:${{_VERSION}}" in str(arg) for arg in args)


def test_terraform_variables_set_by_the_build_are_declared(build: dict[str, Any]) -> None:
    declared = set(re.findall(r'^variable "(\w+)"', (ROOT / "terraform" / "variables.tf").read_text(), re.MULTILINE))
    for entry in build["options"]["env"]:
        name = entry.split("=", 1)[0]
        if name.startswith("TF_VAR_"):
            assert name.removeprefix("TF_VAR_") in declared, f"{name} sets an undeclared variable"
