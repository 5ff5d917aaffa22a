"""A throwaway PostgreSQL server for the tests: initdb + pg_ctl on a temp directory and a free port.

`CHATBOT_TEST_POSTGRES` (a `postgresql://` URL of a server whose user may create databases) uses an
existing server instead. Without either, `why_unavailable()` says what is missing and the PostgreSQL
tests skip with that reason (`make test` installs Debian's `postgresql` package first when it can).
"""
from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path


def _bindir() -> Path | None:
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name),
                            reverse=True):
        if (Path(candidate) / "initdb").exists():
            return Path(candidate)
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Postgres:
    """One server for the test session; `database()` gives each test a fresh, empty database's URL."""

    def __init__(self) -> None:
        self.url: str | None = os.environ.get("CHATBOT_TEST_POSTGRES") or None
        self.bindir = _bindir()
        self.dir: Path | None = None
        self._as: list[str] = []

    def why_unavailable(self) -> str | None:
        if self.url:
            return None
        if self.bindir is None:
            return ("PostgreSQL server binaries (initdb, pg_ctl) not found: `make test` installs Debian's "
                    "postgresql package as root with apt-get; or set CHATBOT_TEST_POSTGRES to a server's URL")
        if os.geteuid() == 0:
            import pwd
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                return "running as root, and initdb refuses root: no postgres user to run it as"
            if shutil.which("runuser") is None:
                return "running as root, and initdb refuses root: runuser is needed to run it as the postgres user"
        return None

    def start(self) -> str:
        if self.url:
            return self.url
        assert self.bindir is not None
        self.dir = Path(tempfile.mkdtemp(prefix="chatbot-pg-"))
        if os.geteuid() == 0:  # initdb refuses root: the server runs as the postgres user
            shutil.chown(self.dir, "postgres", "postgres")
            self._as = ["runuser", "-u", "postgres", "--"]
        port = _free_port()
        data = self.dir / "data"
        self._run(str(self.bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
                  "--no-sync", "--no-instructions")
        options = (f"-p {port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off"
                   " -c full_page_writes=off -c max_connections=200")
        self._run(str(self.bindir / "pg_ctl"), "-D", str(data), "-l", str(self.dir / "server.log"),
                  "-o", options, "-w", "-t", "60", "start")
        self.url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        return self.url

    def _run(self, *argv: str) -> None:
        proc = subprocess.run([*self._as, *argv], capture_output=True, text=True, timeout=120)
        if proc.returncode:
            raise RuntimeError(f"{Path(argv[0]).name} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")

    def stop(self) -> None:
        if self.dir is None:
            return
        try:
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.dir / "data"), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    async def database(self) -> str:
        """A new empty database on the server; its URL."""
        import asyncpg

        name = f"t_{uuid.uuid4().hex[:12]}"
        con = await asyncpg.connect(self.url)
        try:
            await con.execute(f'CREATE DATABASE "{name}"')
        finally:
            await con.close()
        return self.url.rsplit("/", 1)[0] + "/" + name
