"""Start many `jant` commands at the same instant, as separate processes, round after round.

Run as a script: `python tests/simultaneous_start.py SPEC.json`. The spec is
`{"rounds": [{"data_dir": "...", "commands": [["jobs"], ["doctor"], ...]}, ...], "logs": "..."}`.

Importing `bot.cli` costs about half a CPU second, so a fresh interpreter per command would make
160 starts take minutes on a small machine. Instead this process imports it once and forks one child
per command: every child is its own OS process with its own SQLite connection, its own file
descriptors and its own exit status, exactly as separate `jant` invocations are. The children block
on a pipe until all of them exist; closing the pipe's write end releases them together (EOF reaches
every reader at once), so they all open the data directory at the same moment.

Prints one JSON line: for each round, `[[argv, exit_status, stderr], ...]`.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path

import bot.cli


def _child(argv: list[str], data_dir: str, log: Path, go: int) -> None:
    """In the forked child: wait for the release, run the command, leave with its exit status."""
    status = 70  # EX_SOFTWARE: the command raised instead of returning a status
    try:
        out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(out, 1)
        os.dup2(out, 2)
        os.close(out)
        os.environ["JANT_DATA_DIR"] = data_dir
        os.read(go, 1)  # returns b"" when the parent closes the write end: the starting gun
        os.close(go)
        status = bot.cli.main(argv)
    except SystemExit as exc:
        status = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)


def run_round(data_dir: str, commands: list[list[str]], logs: Path) -> list[tuple[list[str], int, str]]:
    go_read, go_write = os.pipe()
    children: list[tuple[int, list[str], Path]] = []
    for n, argv in enumerate(commands):
        log = logs / f"{Path(data_dir).name}-{n}.log"
        pid = os.fork()
        if pid == 0:
            os.close(go_write)
            _child(argv, data_dir, log, go_read)
        children.append((pid, argv, log))
    os.close(go_read)
    os.close(go_write)  # release every child at once
    results = []
    for pid, argv, log in children:
        _, wait_status = os.waitpid(pid, 0)
        results.append((argv, os.waitstatus_to_exitcode(wait_status), log.read_text(errors="replace")))
    return results


def main(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    logs = Path(spec["logs"])
    logs.mkdir(parents=True, exist_ok=True)
    report = [run_round(r["data_dir"], r["commands"], logs) for r in spec["rounds"]]
    print(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1])
