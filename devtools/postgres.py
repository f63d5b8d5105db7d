"""A real PostgreSQL server for tests and benchmarks: initdb + pg_ctl on 127.0.0.1, a private data dir."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
from pathlib import Path
from typing import List

from .apiserver import free_port


def bindir() -> str:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if not found:
        raise RuntimeError("PostgreSQL is not installed (Debian package postgresql; run scripts/setup.sh)")
    return os.path.dirname(found[-1])


class Postgres:
    """One cluster; as root it runs as the `postgres` user (initdb refuses root)."""

    def __init__(self, base: Path) -> None:
        self.base = base.resolve()
        self.data = self.base / "data"
        self.port = free_port()
        self.bin = bindir()
        self.as_user: List[str] = []
        if os.geteuid() == 0:
            self.as_user = ["runuser", "-u", "postgres", "--"]

    def _run(self, *argv: str) -> None:
        subprocess.run([*self.as_user, *argv], check=True, capture_output=True, timeout=120)

    def start(self) -> Postgres:
        self.base.mkdir(parents=True)
        os.chmod(self.base, 0o755)
        if self.as_user:
            user = pwd.getpwnam("postgres")
            os.chown(self.base, user.pw_uid, user.pw_gid)
        self._run(f"{self.bin}/initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.base} -c max_connections=200 -c fsync=off"
        self._run(
            f"{self.bin}/pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.base / "log"), "-w", "start"
        )
        return self

    def create_database(self, name: str) -> str:
        self._run(f"{self.bin}/createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", name)
        return self.url(name)

    def url(self, name: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        if self.data.exists():
            subprocess.run([*self.as_user, f"{self.bin}/pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop"],
                           capture_output=True, timeout=60)  # fmt: skip
        shutil.rmtree(self.base, ignore_errors=True)
