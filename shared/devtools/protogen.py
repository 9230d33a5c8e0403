"""Generate the Python modules of protos/ into shared/protogen/ (committed), or check them.

Why committed rather than generated at install: the Cloud Functions archive, the images and a
fresh clone all import them without grpcio-tools (a development tool, not a runtime one), and a
reviewer sees in the diff what a contract change does to the code. `--check` (run by
tests/infra/test_protos.py) regenerates into a temporary directory and fails if anything
differs, so the committed copy cannot drift from protos/.

The protos are mapped under the virtual path `shared/protogen` (protoc's `VIRTUAL=DIR` include),
so the generated imports read `from shared.protogen.whispr.messaging.v1 import messaging_pb2`
without any rewriting. Typed: `--pyi_out` is replaced by mypy-protobuf's `--mypy_out` and
`--mypy_grpc_out` (stubs for the messages and for the async/sync stubs and servicers).

    python -m shared.devtools.protogen          # write shared/protogen/
    python -m shared.devtools.protogen --check  # exit 1 if shared/protogen/ is not current
"""

from __future__ import annotations

import argparse
import filecmp
import os
import shutil
import sys
import tempfile
from importlib import resources
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROTOS = ROOT / "protos"
PACKAGE = "shared/protogen"
TARGET = ROOT / PACKAGE

_INIT = '"""Generated from protos/ by `python -m shared.devtools.protogen`: do not edit."""\n'


def proto_files() -> list[str]:
    return sorted(str(p.relative_to(PROTOS)) for p in PROTOS.rglob("*.proto"))


def generate(out_root: Path) -> Path:
    """Generate every proto into `out_root`/shared/protogen; return that directory."""
    from grpc_tools import protoc  # development dependency (requirements-dev.txt)

    well_known = resources.files("grpc_tools") / "_proto"
    args = [
        "grpc_tools.protoc",
        f"--proto_path={PACKAGE}={PROTOS}",
        f"--proto_path={well_known}",
        f"--python_out={out_root}",
        f"--grpc_python_out={out_root}",
        f"--mypy_out={out_root}",
        f"--mypy_grpc_out={out_root}",
        *(f"{PACKAGE}/{name}" for name in proto_files()),
    ]
    # mypy-protobuf's plugins (protoc-gen-mypy, protoc-gen-mypy_grpc) sit beside this interpreter
    bin_dir = str(Path(sys.executable).parent)
    if bin_dir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")
    if protoc.main(args) != 0:
        raise RuntimeError("protoc failed (its errors are on stderr)")
    package = out_root / PACKAGE
    for directory in [package, *(p for p in package.rglob("*") if p.is_dir())]:
        (directory / "__init__.py").write_text(_INIT, encoding="utf-8")
    return package


def _differences(left: Path, right: Path) -> list[str]:
    def walk(cmp: filecmp.dircmp[str], prefix: str) -> list[str]:
        out = [f"{prefix}{n}" for n in (*cmp.left_only, *cmp.right_only, *cmp.diff_files, *cmp.funny_files)]
        for name, sub in cmp.subdirs.items():
            out.extend(walk(sub, f"{prefix}{name}/"))
        return out

    return walk(filecmp.dircmp(left, right, ignore=["__pycache__"]), "")


def check() -> list[str]:
    """What differs between shared/protogen/ and a fresh generation (empty: current)."""
    with tempfile.TemporaryDirectory() as tmp:
        fresh = generate(Path(tmp))
        if not TARGET.is_dir():
            return [str(TARGET)]
        return _differences(fresh, TARGET)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shared.devtools.protogen", description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if shared/protogen is stale")
    args = parser.parse_args(argv)
    if args.check:
        stale = check()
        if stale:
            print("shared/protogen is out of date (run python -m shared.devtools.protogen):", *stale, sep="\n  ")
            return 1
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        fresh = generate(Path(tmp))
        shutil.rmtree(TARGET, ignore_errors=True)
        shutil.copytree(fresh, TARGET)
    print(f"wrote {TARGET.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
