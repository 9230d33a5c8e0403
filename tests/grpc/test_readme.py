"""The README's gRPC snippet, run as written against `whispr-messaging dev` in its own process
(only the port changed: tests never take the fixed 9090)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from shared.devtools.postgres import free_port
from tests.support import ROOT, service_env, service_process


def _snippet() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Calling the gRPC shim", 1)[1].split("\n## ", 1)[0]
    return section.split("<<'EOF'\n", 1)[1].split("\nEOF\n", 1)[0]


def test_the_readme_snippet_works_against_the_local_run(pg_url: str, key_path: str, tmp_path: Path) -> None:
    http_port, grpc_port = free_port(), free_port()
    env = service_env(pg_url, key_path, http_port, WHISPR_GRPC_PORT=str(grpc_port))
    code = _snippet().replace("127.0.0.1:9090", f"127.0.0.1:{grpc_port}")
    with service_process(env, http_port, tmp_path / "dev.log"):
        done = subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
        )
    assert done.returncode == 0, done.stderr
    words = done.stdout.split()
    assert words[0] == "conversation" and words[2:] == ["created", "True", "notice", "seq", "1"], done.stdout
