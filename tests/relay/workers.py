"""Which worker process of `whispr-messaging dev --workers N` serves a client socket, read from
/proc (Linux): the kernel spreads connections between the workers (`SO_REUSEPORT`), so a test
that needs a socket on a given worker opens sockets until one lands there."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from tests import procfs


def children(pid: int) -> list[int]:
    """The live child processes of `pid`."""
    found = []
    for child in procfs.pids():
        fields = procfs.stat_fields(child)
        if fields is not None and int(fields[1]) == pid and fields[0] != "Z":
            found.append(child)
    return sorted(found)


def _server_inode(client_port: int, server_port: int) -> int | None:
    """The inode of the server's end of a loopback TCP connection (IPv4)."""
    lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
    for line in lines:
        fields = line.split()
        local, remote, inode = fields[1], fields[2], int(fields[9])
        if int(local.split(":")[1], 16) == server_port and int(remote.split(":")[1], 16) == client_port:
            return inode
    return None


def worker_of(client: socket.socket | int, server_port: int, workers: list[int]) -> int | None:
    """The worker (pid) holding the server's end of `client`'s connection (the socket, or its
    local port for a client in another process), if found."""
    client_port = client if isinstance(client, int) else client.getsockname()[1]
    inode = _server_inode(client_port, server_port)
    if inode is None:
        return None
    target = f"socket:[{inode}]"
    for pid in workers:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                    return pid
            except OSError:
                continue
    return None
