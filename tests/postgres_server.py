"""A real PostgreSQL server for the tests: Debian's server binaries (`apt-get install postgresql`, which
`.ci/run` does on a fresh machine), a throwaway cluster in a temporary directory, on a free port.

Postgres refuses to run as root, and the tests may run as root: then every server command runs as the
`postgres` system user the package creates (`runuser -u postgres --`), in a directory that user owns.
The cluster trusts local connections (`postgresql://postgres@127.0.0.1:PORT/DB`, no password) and
skips fsync: it holds test data only. Its unix socket lives in the temporary directory, so it never
meets a system server's. Each test gets a database of its own (`create_database`), so tests never
see each other's rows.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import asyncpg

from storage.dialect import numbered_placeholders

BIN_GLOB = "/usr/lib/postgresql/*/bin"
SERVER_USER = "postgres"


def find_bin_dir() -> Path | None:
    """The newest installed server version's bin directory (the one with initdb), or None."""
    found = [p for p in Path("/").glob(BIN_GLOB.lstrip("/")) if (p / "initdb").exists()]

    def version(p: Path) -> tuple[int, ...]:
        return tuple(int(x) for x in re.findall(r"\d+", p.parent.name)) or (0,)

    return max(found, key=version) if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresServer:
    def __init__(self, bin_dir: Path, root: Path, port: int, as_user: list[str]) -> None:
        self.bin_dir = bin_dir
        self.root = root
        self.port = port
        self._as_user = as_user
        self._names = itertools.count(1)

    @property
    def data(self) -> Path:
        return self.root / "data"

    def _run(self, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([*self._as_user, *argv], capture_output=True, text=True, timeout=timeout, check=False)
        if result.returncode != 0:
            log = self.root / "server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{' '.join(argv)} failed ({result.returncode}): {result.stderr}{result.stdout}{tail}")
        return result

    @classmethod
    def start(cls, bin_dir: Path) -> PostgresServer:
        root = Path(tempfile.mkdtemp(prefix="jant-pg-"))
        as_user: list[str] = []
        if os.geteuid() == 0:
            entry = pwd.getpwnam(SERVER_USER)
            os.chown(root, entry.pw_uid, entry.pw_gid)
            as_user = ["runuser", "-u", SERVER_USER, "--"]
        server = cls(bin_dir, root, _free_port(), as_user)
        try:
            server._run(
                str(bin_dir / "initdb"), "-D", str(server.data), "-U", "postgres", "--auth=trust",
                "--encoding=UTF8", "--no-locale", "--no-sync",
            )  # fmt: skip
            options = (
                f"-p {server.port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
                " -c synchronous_commit=off -c full_page_writes=off -c max_connections=300"
            )
            server._run(str(bin_dir / "pg_ctl"), "-D", str(server.data), "-l", str(root / "server.log"),
                        "-o", options, "-w", "-t", "30", "start")  # fmt: skip
        except BaseException:
            server.stop()
            raise
        return server

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    async def create_database(self) -> str:
        """A new, empty database; its URL."""
        name = f"t{os.getpid()}_{next(self._names)}"
        conn = await asyncpg.connect(self.url())
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        return self.url(name)

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            if (self.data / "postmaster.pid").exists():
                self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)


async def pg_rows(url: str, sql: str, *params: object) -> list[tuple[object, ...]]:
    """Read a database from outside, as another process would; `?` placeholders, as the repository's SQL."""
    conn = await asyncpg.connect(url)
    try:
        return [tuple(r) for r in await conn.fetch(numbered_placeholders(sql), *params)]
    finally:
        await conn.close()
