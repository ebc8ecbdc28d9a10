"""A throwaway PostgreSQL server for tests and benchmarks: the real server binaries, a fresh cluster in a
temporary folder, listening on loopback only. Never assumes one is already running.

The binaries are found on PATH, in HYPERSCOPE_PG_BIN, or under /usr/lib/postgresql/*/bin (Debian's
postgresql-15 package; `scripts/test` installs it when it can).
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

# tuned for tests and benchmarks on a small machine: no fsync (a crash loses the cluster, which is thrown
# away anyway), enough connections for several server processes
SETTINGS = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "200",
    "shared_buffers": "256MB",
    "max_wal_size": "4GB",
    "listen_addresses": "'127.0.0.1'",
    "unix_socket_directories": "''",
    "logging_collector": "off",
}


def find_bin() -> Path | None:
    """The folder holding initdb and pg_ctl, or None."""
    candidates = [os.environ.get("HYPERSCOPE_PG_BIN", "")]
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(str(Path(initdb).resolve().parent))
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    for folder in candidates:
        if folder and (Path(folder) / "initdb").exists() and (Path(folder) / "pg_ctl").exists():
            return Path(folder)
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresServer:
    """initdb + pg_ctl start in `root` (a new temporary folder by default); `url(db)` names a database."""

    def __init__(self, root: Path | None = None, settings: dict[str, str] | None = None) -> None:
        folder = find_bin()
        if folder is None:
            raise RuntimeError(
                "PostgreSQL server binaries not found (initdb, pg_ctl): install Debian's postgresql-15 "
                "(scripts/test does when it can) or set HYPERSCOPE_PG_BIN"
            )
        self.bin = folder
        self.root = root or Path(tempfile.mkdtemp(prefix="hyperscope-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self.user = "hyperscope"
        self.settings = {**SETTINGS, **(settings or {})}

    def _run(self, *args: str) -> None:
        # PostgreSQL refuses to run as root: as root, the cluster belongs to the `postgres` user (Debian's
        # package makes it) or else `nobody`
        user = None
        if os.geteuid() == 0:
            import pwd

            names = {p.pw_name for p in pwd.getpwall()}
            user = "postgres" if "postgres" in names else "nobody"
            shutil.chown(self.root, user)
        try:
            subprocess.run(
                [str(self.bin / args[0]), *args[1:]],
                check=True,
                capture_output=True,
                timeout=120,
                user=user,
                cwd=self.root,
            )
        except subprocess.CalledProcessError as e:
            raise RuntimeError(f"{args[0]} failed: {e.stderr.decode(errors='replace').strip()}") from e

    def start(self) -> PostgresServer:
        self._run("initdb", "-D", str(self.data), "-U", self.user, "-A", "trust", "-E", "UTF8", "--no-sync")
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(f"port = {self.port}\n")
            conf.writelines(f"{k} = {v}\n" for k, v in self.settings.items())
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"), "-w", "-t", "60", "start")
        return self

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as con:
            con.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def halt(self) -> None:
        """Stop the server at once, as a crash would (`-m immediate`); `resume` starts it again, same port."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def resume(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"), "-w", "-t", "60", "start")

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
