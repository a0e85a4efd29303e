"""Jant processes of the durable-engine benchmarks (JANT_ENGINE=dbos): benchmark workers and real `jant`
commands started with their output in a log file, a throwaway Postgres, and reading Jant's tables from
outside, as another process would.

A log file, not a pipe: a process that runs for minutes and that nobody reads must never block on a
full pipe.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sqlite3
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from benchmarks.services import REPO


class BenchProcess:
    """A child process whose stdout and stderr go to `log`."""

    def __init__(self, proc: asyncio.subprocess.Process, log: Path, out: Path | None = None) -> None:
        self.proc, self.log, self.out = proc, log, out

    @classmethod
    async def spawn(cls, argv: list[str], env: dict[str, str], log: Path, out: Path | None = None) -> BenchProcess:
        with log.open("wb") as sink:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                cwd=REPO,
                env=env,
                stdout=sink,
                stderr=asyncio.subprocess.STDOUT,
                stdin=asyncio.subprocess.DEVNULL,
            )
        return cls(proc, log, out)

    @classmethod
    async def worker(cls, mode: str, spec: dict[str, Any], env: dict[str, str], tmp: Path, name: str) -> BenchProcess:
        """`python -m benchmarks.worker MODE` (its result in `out` once it exits)."""
        spec_path, out = tmp / f"{name}-spec.json", tmp / f"{name}-out.json"
        await asyncio.to_thread(spec_path.write_text, json.dumps(spec))
        argv = [sys.executable, "-m", "benchmarks.worker", mode, str(spec_path), str(out)]
        return await cls.spawn(argv, env, tmp / f"{name}.log", out)

    @classmethod
    async def jant(cls, env: dict[str, str], log: Path, *args: str) -> BenchProcess:
        """A real `jant` command line."""
        return await cls.spawn([sys.executable, "-m", "bot.cli", *args], env, log)

    def tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    async def wait(self, limit_s: float) -> int:
        try:
            return await asyncio.wait_for(self.proc.wait(), limit_s)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
            raise RuntimeError(f"{self.log.stem} did not exit within {limit_s:g} s:\n{self.tail()}") from None

    async def result(self, limit_s: float) -> dict[str, Any]:
        """The benchmark worker's result, once it has exited."""
        code = await self.wait(limit_s)
        assert self.out is not None
        raw = await asyncio.to_thread(lambda: self.out.read_text() if self.out and self.out.exists() else None)
        if code != 0 or raw is None:
            raise RuntimeError(f"{self.log.stem} failed ({code}):\n{self.tail()}")
        result: dict[str, Any] = json.loads(raw)
        return result

    async def stop(self, limit_s: float = 30) -> None:
        """SIGTERM, as a supervisor stops a worker."""
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        await self.wait(limit_s)

    def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()


async def until(check: Any, *, limit_s: float, what: str, every: float = 0.05) -> Any:
    """Poll `check()` (sync or async) until it returns something truthy; that value."""
    deadline = time.monotonic() + limit_s
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {limit_s:g} s for {what}")
        await asyncio.sleep(every)


async def wait_ready(workers: list[BenchProcess], ready: list[Path], limit_s: float = 120) -> None:
    """Until every benchmark worker has written its ready file (it is launched and dequeues)."""

    def check() -> bool:
        for w in workers:
            if w.proc.returncode is not None:
                raise RuntimeError(f"{w.log.stem} exited ({w.proc.returncode}) before it was ready:\n{w.tail()}")
        return all(p.exists() for p in ready)

    await until(check, limit_s=limit_s, what="the workers to launch", every=0.1)


# -- Postgres --------------------------------------------------------------------------------------------


def postgres_available() -> bool:
    """Debian's server binaries and the postgres extra (asyncpg) are installed."""
    try:
        import asyncpg  # noqa: F401

        from tests.postgres_server import find_bin_dir
    except ImportError:
        return False
    return find_bin_dir() is not None


@contextlib.asynccontextmanager
async def postgres() -> AsyncIterator[Any]:
    """A throwaway PostgreSQL server (tests/postgres_server.py's: trusted local connections, no fsync)."""
    from tests.postgres_server import PostgresServer, find_bin_dir

    bin_dir = find_bin_dir()
    if bin_dir is None:
        raise RuntimeError("no PostgreSQL server is installed (`apt-get install postgresql`)")
    server = await asyncio.to_thread(PostgresServer.start, bin_dir)
    try:
        yield server
    finally:
        await asyncio.to_thread(server.stop)


async def rows(database: Path | str, sql: str, *params: object) -> list[tuple[object, ...]]:
    """Jant's rows read from outside: the SQLite file, or the Postgres database at the URL (`?` placeholders)."""
    if isinstance(database, str):
        from tests.postgres_server import pg_rows

        try:
            return await pg_rows(database, sql, *params)
        except Exception as exc:  # the tables are not made yet
            if type(exc).__name__ == "UndefinedTableError":
                return []
            raise

    def read() -> list[tuple[object, ...]]:
        try:
            conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5)
        except sqlite3.OperationalError:  # not made yet
            return []
        try:
            return conn.execute(sql, params).fetchall()
        except sqlite3.OperationalError:  # its tables are not made yet
            return []
        finally:
            conn.close()

    return await asyncio.to_thread(read)
