"""A real PostgreSQL server for the test session (issue 16 step 2).

``pg_cluster`` (session scope, started lazily: only when a test asks for it) runs
``initdb`` of a throwaway cluster in a temp dir as the unprivileged ``postgres`` system
user (we may run as root, which PostgreSQL refuses), listens on a free loopback port with
its unix socket in the temp dir, and is stopped with ``pg_ctl stop -m immediate`` at the
end of the session, also when tests fail. ``pg_url`` gives each test a fresh database.

Without PostgreSQL (no ``initdb`` under /usr/lib/postgresql/*/bin) the tests that need it
are skipped with the reason, except when ``CI=true``: CI must not silently skip them
(``.ci/install-postgresql.sh`` installs it).
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

__all__ = ["PgCluster", "find_pg_bin", "pg_cluster", "pg_url"]

_UNPRIVILEGED = "postgres"
_counter = itertools.count(1)


def find_pg_bin() -> Path | None:
    """The newest /usr/lib/postgresql/N/bin holding initdb, else None."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: (
            int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0
        ),
    )
    return Path(found[-1]).parent if found else None


@attrs.frozen
class PgCluster:
    bin: Path
    data: Path
    socket_dir: Path
    port: int

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run ``sql`` with psql as the superuser; its output (tuples only)."""
        done = subprocess.run(
            [str(self.bin / "psql"), "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1",
             "-h", str(self.socket_dir), "-p", str(self.port), "-U", "postgres",
             "-d", database, "-c", sql],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"psql failed: {done.stderr.strip()}")
        return done.stdout.strip()

    def create_database(self, template: str = "template0") -> str:
        """A new database, a copy of ``template`` (default: empty); its URL."""
        name = f"t{os.getpid()}_{next(_counter)}"
        self.psql(f"CREATE DATABASE {name} TEMPLATE {template} STRATEGY FILE_COPY")
        return self.url(name)

    def terminate(self, application_name: str) -> int:
        """pg_terminate_backend every connection named ``application_name``; how many."""
        out = self.psql(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            f"WHERE application_name = '{application_name}'"
        )
        return int(out or 0)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_user(argv: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return argv
    return ["runuser", "-u", _UNPRIVILEGED, "--", *argv]


def _start(bin_dir: Path, root: Path) -> PgCluster:
    data, sockets = root / "data", root / "sock"
    sockets.mkdir()
    if os.geteuid() == 0:
        user = pwd.getpwnam(_UNPRIVILEGED)
        for path in (root, sockets):
            os.chown(path, user.pw_uid, user.pw_gid)
    run = dict(capture_output=True, text=True, timeout=120, check=False)
    init = subprocess.run(
        _as_user([str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres",
                  "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"]),
        **run,  # type: ignore[call-overload]
    )  # fmt: skip
    if init.returncode != 0:
        raise RuntimeError(f"initdb failed: {init.stderr.strip()}")
    port = _free_port()
    options = (
        f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off "
        "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
    )
    start = subprocess.run(
        _as_user([str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-w", "-t", "60",
                  "-l", str(root / "server.log"), "start"]),
        **run,  # type: ignore[call-overload]
    )  # fmt: skip
    if start.returncode != 0:
        log = (root / "server.log").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"pg_ctl start failed: {start.stderr.strip()} {log}")
    return PgCluster(bin=bin_dir, data=data, socket_dir=sockets, port=port)


def _stop(cluster: PgCluster) -> None:
    subprocess.run(
        _as_user([str(cluster.bin / "pg_ctl"), "-D", str(cluster.data), "-m", "immediate",
                  "-w", "stop"]),
        capture_output=True, timeout=60, check=False,
    )  # fmt: skip


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """A running throwaway PostgreSQL cluster (see the module docstring)."""
    bin_dir = find_pg_bin()
    if bin_dir is None:
        reason = "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI must run the PostgreSQL tests (.ci/install-postgresql.sh)")
        pytest.skip(reason)
    root = Path(tempfile.mkdtemp(prefix="appserver-pg-"))
    try:
        cluster = _start(bin_dir, root)
        try:
            yield cluster
        finally:
            _stop(cluster)
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def pg_url(pg_cluster: PgCluster) -> str:
    """The URL of a new, empty database of the session's cluster."""
    return pg_cluster.create_database()
