"""Why the database cannot be used as it is. `str(err)` is one complete sentence naming the cause;
the pipeline adds what the user should do next."""

from __future__ import annotations

from pathlib import Path


class SchemaError(Exception):
    """The database's schema and this code's migrations disagree, or could not be brought in line."""


class MigrationFailed(SchemaError):
    def __init__(self, db_path: Path | str, name: str, version: int, reason: str) -> None:
        super().__init__(
            f"Migration {name} failed, so the database {db_path} was left unchanged at version {version}: {reason}"
        )
        self.name = name
        self.version = version
        self.reason = reason


class DatabaseTooNew(SchemaError):
    def __init__(self, db_path: Path | str, db_version: int, code_version: int) -> None:
        super().__init__(
            f"The database {db_path} is at schema version {db_version}, but this jant only knows versions up to"
            f" {code_version}: it was written by a newer jant, and an older one must not run against it."
        )
        self.db_version = db_version
        self.code_version = code_version


class DatabaseLocked(SchemaError):
    def __init__(self, db_path: Path | str, waited_s: float) -> None:
        super().__init__(
            f"The database {db_path} stayed locked by another process for {waited_s:g} s, so its schema could"
            " not be checked."
        )


class DatabaseUnavailable(Exception):
    """The database server could not be reached or refused us (Postgres; a SQLite file is always there)."""

    def __init__(self, where: str, reason: str) -> None:
        super().__init__(f"Could not open the database {where}: {reason}.")
        self.reason = reason
