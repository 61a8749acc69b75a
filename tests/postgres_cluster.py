"""A PostgreSQL cluster of a test's own: initdb in a temporary folder, its own port, stopped and
started at will. Tests of database outages use it, so they never restart the machine's PostgreSQL
(other test runs, a developer's own databases) or one they did not start.
"""

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.servers import free_port


def _bin_dir() -> Path | None:
    """The server's programs: Debian keeps them beside its version (/usr/lib/postgresql/15/bin)."""
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda path: int(path.parts[-3]))
    return versions[-1].parent if versions else None


BIN = _bin_dir()
MISSING = "" if BIN else "PostgreSQL's server programs (initdb, pg_ctl) are not installed here"


class PostgresCluster:
    """initdb'd on creation; `start`, `stop`, `restart` as a person would with pg_ctl; `destroy`
    stops it and removes its files."""

    def __init__(self):
        assert BIN, MISSING
        # initdb refuses to run as root: then the cluster belongs to the postgres user, in a
        # folder that user can reach (pytest's tmp_path is private to root).
        self.as_postgres = os.geteuid() == 0
        self.folder = Path(tempfile.mkdtemp(prefix="imgsearch-test-pg-"))
        if self.as_postgres:
            shutil.chown(self.folder, "postgres")
        self.data = self.folder / "data"
        self.port = free_port()
        self._run("initdb", "-D", self.data, "-A", "trust", "-U", "postgres", "--no-sync")

    def _run(self, program: str, *args) -> None:
        command = [str(BIN / program), *map(str, args)]
        if self.as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", self.data, "-o", options, "-l", self.folder / "server.log", "-w", "start")

    def stop(self) -> None:
        """What a crash or a failover does to clients: every connection dropped at once."""
        self._run("pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop")

    def restart(self) -> None:
        self.stop()
        self.start()

    def createdb(self, name: str) -> None:
        import psycopg

        with psycopg.connect(
            host="127.0.0.1", port=self.port, user="postgres", dbname="postgres", autocommit=True
        ) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')

    def log(self) -> str:
        path = self.folder / "server.log"
        return path.read_text()[-3000:] if path.exists() else ""

    def destroy(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.folder, ignore_errors=True)
