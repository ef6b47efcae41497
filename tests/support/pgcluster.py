"""A throwaway PostgreSQL cluster of our own, for tests that stop and start the database server.

The shared server on 5432 serves every other test running in parallel, so it is
never stopped; this one lives in a temporary directory on a free port and is
gone at the end. initdb refuses to run as root, so as root every command runs
as the `postgres` user (the Debian package creates it), in a directory it owns.
"""
import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from sqlalchemy import create_engine, text

from tests.support.databases import normalised
from tests.support.servers import free_port


def binaries() -> Path | None:
    """The newest Debian PostgreSQL bin directory holding initdb and pg_ctl, if any."""
    found = [Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")
             if Path(p).with_name("pg_ctl").exists()]
    return max(found, key=lambda path: int(path.parent.name), default=None) if found else None


class PostgresCluster:
    """initdb + pg_ctl on a free loopback port; `stop()` and `start()` as often as a test likes."""

    def __init__(self, bin_dir: Path):
        self.bin_dir = bin_dir
        self.port = free_port()
        # Not under pytest's tmp_path: that is private to root, and the server runs as postgres.
        self.root = Path(tempfile.mkdtemp(prefix="gateway-pg-"))
        self.data, self.log = self.root / "data", self.root / "server.log"
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/gateway"

    def _run(self, *argv: str, timeout: float = 60) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        result = subprocess.run([*prefix, *argv], capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            raise RuntimeError(f"{Path(argv[0]).name} failed ({result.returncode}): {result.stderr}{self.server_log()}")

    def create(self) -> "PostgresCluster":
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        self._run(str(self.bin_dir / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
                  "-E", "UTF8", "--no-sync", "--no-instructions")
        self.start()
        engine = create_engine(normalised(f"postgresql://postgres@127.0.0.1:{self.port}/postgres"),
                               isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.execute(text("CREATE DATABASE gateway"))
        engine.dispose()
        return self

    def start(self) -> None:
        # fsync off: the data is thrown away, and an immediate stop must not cost a flush.
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.log), "-w", "start")

    def stop(self, mode: str = "immediate") -> None:
        self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def server_log(self) -> str:
        return self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""

    def destroy(self) -> None:
        if self.running():
            self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
