"""Every difference between the SQL Jant sends to SQLite and to Postgres, in one place.

The repository writes one SQL text for both: `?` placeholders, `ON CONFLICT … DO UPDATE`, `RETURNING`,
`json_patch` (a function the Postgres migrations define with SQLite's meaning), `substr`, `COALESCE`.
What cannot be written the same way is a method here; the placeholders are rewritten to Postgres'
`$1, $2, …` by `numbered_placeholders` when a statement is sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

DialectName = Literal["sqlite", "postgres"]


@dataclass(frozen=True)
class Dialect:
    name: DialectName

    def greatest(self, a: str, b: str) -> str:
        """The larger of two values (SQLite's two-argument MAX is Postgres' GREATEST)."""
        return f"{'GREATEST' if self.name == 'postgres' else 'MAX'}({a}, {b})"

    def same(self, column: str) -> str:
        """`column` equals the next parameter, NULL equal to NULL (the command line's budget is NULL)."""
        return f"{column} IS NOT DISTINCT FROM ?" if self.name == "postgres" else f"{column} IS ?"

    def json_text(self, column: str, key: str) -> str:
        """A top-level string of a JSON text column, NULL when absent."""
        if not key.isidentifier():
            raise ValueError(f"not a plain JSON key: {key!r}")
        if self.name == "postgres":
            return f"(({column})::jsonb ->> '{key}')"
        return f"json_extract({column}, '$.{key}')"

    def epoch_now(self) -> str:
        """Seconds since the epoch, by the database's clock, as a float (every process on the database
        reads the same clock). SQLite's 'now' has millisecond resolution and is fixed within a statement."""
        if self.name == "postgres":
            return "CAST(EXTRACT(EPOCH FROM clock_timestamp()) AS DOUBLE PRECISION)"
        return "((julianday('now') - 2440587.5) * 86400.0)"

    def skip_locked(self) -> str:
        """Appended to a sub-SELECT that picks a row to update: on Postgres, rows another transaction is
        updating are passed over instead of waited for (SQLite writes one statement at a time anyway)."""
        return " FOR UPDATE SKIP LOCKED" if self.name == "postgres" else ""


SQLITE = Dialect("sqlite")
POSTGRES = Dialect("postgres")


@lru_cache(maxsize=512)
def numbered_placeholders(sql: str) -> str:
    """`?` → `$1`, `$2`, … in order, leaving `?` inside '…' strings, "…" names and comments alone."""
    out: list[str] = []
    n = 0
    i = 0
    while i < len(sql):
        ch = sql[i]
        if ch in "'\"":
            end = sql.find(ch, i + 1)
            while end != -1 and sql[end + 1 : end + 2] == ch:  # a doubled quote is an escaped one
                end = sql.find(ch, end + 2)
            end = len(sql) - 1 if end == -1 else end
            out.append(sql[i : end + 1])
            i = end + 1
        elif sql.startswith("--", i):
            end = sql.find("\n", i)
            end = len(sql) if end == -1 else end
            out.append(sql[i:end])
            i = end
        elif ch == "?":
            n += 1
            out.append(f"${n}")
            i += 1
        else:
            out.append(ch)
            i += 1
    return "".join(out)
