"""What /proc says about processes (Linux), for tests that start, kill and count process trees."""

from __future__ import annotations

from pathlib import Path


def stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command's name (state, ppid, pgrp, ...), or None
    once the process is gone. The name is skipped by its last ')': it may hold spaces and ')'."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    return raw[raw.rindex(")") + 2 :].split()


def running(pid: int) -> bool:
    """The process exists and is not a zombie (a zombie holds nothing but its pid)."""
    fields = stat_fields(pid)
    return fields is not None and fields[0] != "Z"


def name(pid: int) -> str:
    """The command's name as the kernel keeps it (its first 15 bytes); empty once gone."""
    try:
        return Path(f"/proc/{pid}/comm").read_text(encoding="utf-8", errors="replace").rstrip("\n")
    except OSError:
        return ""


def pids() -> list[int]:
    return [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()]


def command_lines() -> dict[int, str]:
    """Every process's command line, its arguments joined by spaces."""
    found = {}
    for pid in pids():
        try:
            found[pid] = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
    return found
