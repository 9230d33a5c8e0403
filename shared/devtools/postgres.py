"""A throwaway PostgreSQL cluster for tests, benchmarks and `cloud-local`.

PostgreSQL refuses to run as root, and CI runs as root: then the cluster runs as a dedicated
system user (`whispr-pg`, created if missing). It listens on 127.0.0.1 on a free port, trusts
local connections, and is deleted on stop.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass

PG_USER = "whispr-pg"


def find_pg_bin() -> str:
    override = os.environ.get("WHISPR_PG_BIN")
    candidates = [override] if override else sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    for path in candidates:
        if path and os.path.exists(os.path.join(path, "initdb")):
            return path
    found = shutil.which("initdb")
    if found:
        return os.path.dirname(found)
    raise RuntimeError("PostgreSQL server binaries (initdb) not found; install postgresql or set WHISPR_PG_BIN")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ensure_user() -> tuple[int, int] | None:
    """The uid/gid to run as: ours if we are not root, else the dedicated user's."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(PG_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", PG_USER],
            check=True,
        )
        entry = pwd.getpwnam(PG_USER)
    return entry.pw_uid, entry.pw_gid


@dataclass
class PostgresCluster:
    root: str
    port: int
    bin_dir: str
    owner: tuple[int, int] | None
    database: str = "whispr"
    user: str = "whispr"
    options: str = ""  # the server's command-line options (pg_ctl -o), kept for `start_server`

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/{self.database}"

    def _run(self, *args: str) -> subprocess.CompletedProcess[bytes]:
        cmd = [os.path.join(self.bin_dir, args[0]), *args[1:]]
        if self.owner is not None:
            cmd = ["runuser", "-u", PG_USER, "--", *cmd]
        return subprocess.run(cmd, check=True, capture_output=True, cwd=self.root)

    def postmaster_pid(self) -> int | None:
        """The server's main process (its backends are its children), while it runs."""
        try:
            with open(os.path.join(self.root, "data", "postmaster.pid")) as handle:
                return int(handle.readline().strip())
        except (OSError, ValueError):
            return None

    @property
    def data_dir(self) -> str:
        return os.path.join(self.root, "data")

    def start_server(self) -> None:
        """Start the server on its port with its options (after `stop_server`): the same data."""
        self._run(
            "pg_ctl",
            "-D",
            self.data_dir,
            "-l",
            os.path.join(self.root, "log"),
            "-o",
            self.options,
            "-w",
            "-t",
            "60",
            "start",
        )

    def stop_server(self, mode: str = "immediate") -> None:
        """Stop the server and keep its data (`immediate`: as a crash, no shutdown checkpoint;
        `fast`: clients are disconnected cleanly)."""
        self._run("pg_ctl", "-D", self.data_dir, "stop", "-m", mode, "-w")

    def stop(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._run("pg_ctl", "-D", os.path.join(self.root, "data"), "stop", "-m", "immediate", "-w")
        shutil.rmtree(self.root, ignore_errors=True)


def start_cluster(*, durable: bool = False) -> PostgresCluster:
    """initdb + start + create the database. `durable=False` turns fsync off (tests only)."""
    bin_dir = find_pg_bin()
    owner = _ensure_user()
    root = tempfile.mkdtemp(prefix="whispr-pg-")
    os.chmod(root, 0o755)
    if owner is not None:
        os.chown(root, *owner)
    cluster = PostgresCluster(root=root, port=free_port(), bin_dir=bin_dir, owner=owner)
    data = cluster.data_dir
    try:
        cluster._run("initdb", "-D", data, "-U", cluster.user, "-A", "trust", "-E", "UTF8", "--locale=C.UTF-8")
        options = f"-p {cluster.port} -k {root} -c listen_addresses=127.0.0.1 -c max_connections=200"
        if not durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        cluster.options = options
        cluster.start_server()
        for _ in range(50):
            try:
                cluster._run("createdb", "-h", root, "-p", str(cluster.port), "-U", cluster.user, cluster.database)
                break
            except subprocess.CalledProcessError:
                time.sleep(0.2)
        else:
            raise RuntimeError("could not create the test database")
    except BaseException:
        cluster.stop()
        raise
    return cluster
