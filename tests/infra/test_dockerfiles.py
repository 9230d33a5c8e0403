"""The container images (deploy/*/Dockerfile), read as docker would (no docker here: checkov
checks them too, `make checkov`): multi-stage, the runtime dependencies installed with
constraints.txt in a build stage and nothing that installs or compiles in the image itself, a
HEALTHCHECK, a user other than root, every file copied in allowed by .dockerignore, base images
pinned by digest or listed, with the command that pins them, in deploy/checkov-baseline.json.
And the functions' builds: requirements.txt names constraints.txt, which ships with it."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILES = sorted(ROOT.glob("deploy/*/Dockerfile"))
BUILD_TOOLS = re.compile(r"\b(apt-get|apt|apk|gcc|g\+\+|make|build-essential|cc|git)\b|-dev\b|requirements-dev")
DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")


@dataclass
class Stage:
    image: str  # what FROM names: an image or an earlier stage
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)  # (KEYWORD, arguments)

    def args(self, keyword: str) -> list[str]:
        return [a for k, a in self.instructions if k == keyword]


def stages(path: Path) -> list[Stage]:
    """The Dockerfile's stages: continuation lines joined, comments dropped."""
    text = re.sub(
        r"\\\n", " ", "\n".join(line for line in path.read_text().splitlines() if not line.lstrip().startswith("#"))
    )
    found: list[Stage] = []
    for line in filter(None, (raw.strip() for raw in text.splitlines())):
        keyword, _, arguments = line.partition(" ")
        keyword, arguments = keyword.upper(), arguments.strip()
        if keyword == "FROM":
            image, _, name = re.sub(r"--platform=\S+\s+", "", arguments).partition(" AS ")
            found.append(Stage(image.strip(), name.strip() or None))
        else:
            assert found, f"{path}: {keyword} before any FROM"
            found[-1].instructions.append((keyword, arguments))
    return found


def test_there_are_images_to_check() -> None:
    assert {p.parent.name for p in DOCKERFILES} >= {"relay", "grpc"}


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.parent.name)
def test_the_image_is_built_in_stages_and_keeps_only_what_runs(path: Path) -> None:
    built = stages(path)
    final, earlier = built[-1], built[:-1]
    assert earlier, "one stage only: the image would carry what built it"
    installs = [run for stage in earlier for run in stage.args("RUN") if "-r requirements.txt" in run]
    assert installs and all("-c constraints.txt" in run for run in installs), installs
    # the image: the virtualenv the build stage made, copied; nothing installed, fetched or compiled
    assert [c for c in final.args("COPY") if c.startswith("--from=")], "the image copies nothing from the build"
    for run in final.args("RUN"):
        assert "install" not in run.replace("pip uninstall", "") and not BUILD_TOOLS.search(run), run
    assert not [c for c in final.args("COPY") if not c.startswith("--from=")], "sources copied into the image"
    chain = {s.name: s for s in earlier if s.name}
    ancestors = [final]
    while ancestors[-1].image in chain:  # the stages the image is built on (the base stage)
        ancestors.append(chain[ancestors[-1].image])
    for stage in ancestors[1:]:
        assert not stage.args("RUN") and not stage.args("COPY"), f"stage {stage.name} puts things in the image"
    for stage in built:
        for command in stage.args("RUN") + stage.args("COPY"):
            assert "requirements-dev" not in command, command


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.parent.name)
def test_the_image_checks_its_health_and_does_not_run_as_root(path: Path) -> None:
    final = stages(path)[-1]
    assert [h for h in final.args("HEALTHCHECK") if " CMD " in f" {h} "], "no HEALTHCHECK ... CMD"
    users = final.args("USER")
    assert users, "runs as root (no USER)"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0"), users[-1]
    assert final.args("ENTRYPOINT")


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.parent.name)
def test_what_the_build_copies_is_in_its_context(path: Path) -> None:
    """.dockerignore excludes everything but what it names: a file it leaves out fails the build."""
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    assert "*" in ignore
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    for stage in stages(path):
        for copy in stage.args("COPY"):
            if copy.startswith("--from="):
                continue
            *sources, _ = copy.split()
            for source in sources:
                assert source.rstrip("/") in allowed, f"{source} is not in the build context (.dockerignore)"
                assert (ROOT / source).exists(), source


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.parent.name)
def test_base_images_are_pinned_by_digest_or_listed_with_how_to_pin_them(path: Path) -> None:
    baseline = json.loads((ROOT / "deploy" / "checkov-baseline.json").read_text())
    listed = {(entry["image"], file) for entry in baseline["unpinned_base_images"] for file in entry["dockerfiles"]}
    for entry in baseline["unpinned_base_images"]:
        assert entry["why"].strip() and entry["pin_with"].startswith("docker buildx imagetools inspect ")
    built = stages(path)
    names = {s.name for s in built if s.name}
    relative = str(path.relative_to(ROOT))
    for stage in built:
        if stage.image in names or DIGEST.search(stage.image):
            continue
        assert ":" in stage.image and not stage.image.endswith(":latest"), stage.image
        assert (stage.image, relative) in listed, f"{stage.image} in {relative}: pin its digest or list it"
    for image, file in listed:  # an entry that no longer applies goes
        if file == relative:
            assert any(s.image == image for s in built), f"{image} is listed for {file} but not used there"


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        requirement = line.split("#", 1)[0].strip()
        if "==" in requirement:
            name, version = requirement.split("==", 1)
            pins[re.sub(r"\[.*\]", "", name).strip().lower().replace("_", "-")] = version.strip()
    return pins


def test_requirements_name_the_constraints_that_pin_every_indirect_dependency() -> None:
    """The Cloud Functions buildpack runs `pip install --requirement requirements.txt`: the
    `-c constraints.txt` line in it is what pins the indirect dependencies there (pip reads
    the path relative to requirements.txt), and every direct pin agrees with the constraints."""
    requirements = ROOT / "requirements.txt"
    assert "-c constraints.txt" in [line.strip() for line in requirements.read_text().splitlines()]
    constraints = _pins(ROOT / "constraints.txt")
    for name, version in _pins(requirements).items():
        assert constraints.get(name) == version, (
            f"{name}=={version} in requirements.txt, {constraints.get(name)} in constraints.txt"
        )


def test_the_functions_source_archive_ships_the_constraints() -> None:
    yaml = pytest.importorskip("yaml")
    build = yaml.safe_load((ROOT / "cloudbuild.yaml").read_text())
    archive = next(step for step in build["steps"] if step["id"] == "source-archive")
    zipped = next(line for line in " ".join(archive["args"]).splitlines() if "zipfile -c" in line)
    assert " requirements.txt " in zipped and " constraints.txt " in zipped
    gcloudignore = (ROOT / ".gcloudignore").read_text().splitlines()
    assert "constraints.txt" not in gcloudignore and "requirements.txt" not in gcloudignore
