"""How one attempt at a stage ended, as the orchestrator's attempt loop (`Orchestrator.run_stage`) reads it.

The durable engine checkpoints each attempt's create and wait steps with this as their result, so it
has a plain record form (`record`/`from_record`: str and float values only) that a later build can
read back when it recovers a run: a pickled class would tie every pending run to this module's layout.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class AttemptOutcome:
    """`path`: the stage is made. `retry_in`: it failed and is worth another attempt after that many
    seconds. `created`: (a create step only) the prediction is created and its id recorded; waiting for
    it is the next step. None of them: it failed for good (the stage says why)."""

    path: Path | None = None
    retry_in: float | None = None
    created: str | None = None

    def record(self) -> dict[str, str | float | None]:
        return {
            "path": str(self.path) if self.path is not None else None,
            "retry_in": self.retry_in,
            "created": self.created,
        }

    @classmethod
    def from_record(cls, record: dict[str, str | float | None]) -> AttemptOutcome:
        path, retry_in, created = record.get("path"), record.get("retry_in"), record.get("created")
        return cls(
            path=Path(str(path)) if path is not None else None,
            retry_in=float(retry_in) if retry_in is not None else None,
            created=str(created) if created is not None else None,
        )
