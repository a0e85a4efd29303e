"""Offline ads made by `jant makead` once per test session and shared by every test that looks at them.

A whole offline ad costs about 20 CPU-seconds (five scenes animated and encoded, a voice, a music
bed, the mix), and many tests only look at one aspect of the same kind of ad: its length and
streams, its loudness, a frame, what the command printed. Each kind is a `Recipe`; `made_ad` makes
it the first time any test asks for it and hands every later asker the same finished ad, across
pytest-xdist workers too (a file lock under the session's temporary root: the first worker makes it,
the others wait for it and read it).

A made ad is shared: look at it, never change it (no re-render, no purge, no new job in its data
directory). A test that needs to change an ad makes its own.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pipeline.config import SECRET_NAMES

REPO = Path(__file__).resolve().parents[1]
AD_TIMEOUT_S = 300  # one offline ad is ~25 s alone; the machine is shared
# What the environment of the test run must not hand to a made ad: keys, endpoints and settings.
_NOT_INHERITED = ("JANT_", "OPENAI_", "REPLICATE_", "DISCORD_")


@dataclass(frozen=True)
class Recipe:
    """How one kind of ad is made: `jant <args>` run in a fresh directory (the data directory is its
    `data/`), with these variables on top of a clean environment, and `.env.example` copied to its
    `.env` when `dotenv` is set (a new user's first minute). `files`: written there first, each a
    path relative to the directory and its text, or a file of the repository to copy."""

    name: str
    args: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)
    dotenv: bool = False
    files: tuple[tuple[str, str | Path], ...] = ()


@dataclass(frozen=True)
class MadeAd:
    """A finished `jant makead`: what it printed, its job's row and stage rows, and its files."""

    result: subprocess.CompletedProcess[str]
    cwd: Path
    job: dict[str, Any]
    stages: list[dict[str, Any]]

    @property
    def data_dir(self) -> Path:
        return self.cwd / "data"

    @property
    def job_id(self) -> str:
        return str(self.job["id"])

    @property
    def job_dir(self) -> Path:
        return self.data_dir / "jobs" / self.job_id

    @property
    def final(self) -> Path:
        return self.cwd / self.job["final_path"]  # stored relative when JANT_DATA_DIR is (./data in .env)

    @property
    def notes(self) -> list[str]:
        return list(json.loads(self.job["notes_json"]))

    @property
    def timing(self) -> dict[str, Any]:
        return dict(json.loads(self.job["timing_json"]))

    def voices(self) -> dict[int, dict[str, Any]]:
        return {s["scene_index"]: s for s in self.stages if s["stage"] == "voice"}

    def scene_window(self, index: int) -> tuple[float, float]:
        durations = self.timing["durations"]
        start = sum(durations[: index - 1])
        return start, start + durations[index - 1]


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any key, endpoint or Jant setting, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if k not in SECRET_NAMES and not k.startswith(_NOT_INHERITED)}
    return {**env, "COLUMNS": "120", **extra}


def run_recipe(recipe: Recipe, cwd: Path) -> MadeAd:
    """Make the ad now, in `cwd` (no sharing): for a test that changes what it made."""
    cwd.mkdir(parents=True, exist_ok=True)
    if recipe.dotenv:
        shutil.copy(REPO / ".env.example", cwd / ".env")
    for name, content in recipe.files:
        (cwd / name).parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, Path):
            shutil.copy(content, cwd / name)
        else:
            (cwd / name).write_text(content, encoding="utf-8")
    env = clean_env(**recipe.env)
    if not recipe.dotenv:
        env["JANT_DATA_DIR"] = str(cwd / "data")  # what .env.example says, for the same layout
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", *recipe.args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=AD_TIMEOUT_S, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    (cwd / "result.json").write_text(json.dumps([result.args, result.returncode, result.stdout, result.stderr]))
    return _read(cwd)


def _read(cwd: Path) -> MadeAd:
    args, code, out, err = json.loads((cwd / "result.json").read_text())
    result = subprocess.CompletedProcess(args, code, out, err)
    assert code == 0, err + out
    found = re.search(r"Job (\w{8}) completed", out)
    assert found is not None, out
    with sqlite3.connect(cwd / "data" / "jant.db") as conn:
        conn.row_factory = sqlite3.Row
        job = dict(conn.execute("SELECT * FROM jobs WHERE id = ?", (found.group(1),)).fetchone())
        stages = [dict(r) for r in conn.execute("SELECT * FROM stages WHERE job_id = ?", (found.group(1),))]
    return MadeAd(result, cwd, job, stages)


def shared_root(factory: pytest.TempPathFactory) -> Path:
    """A directory every xdist worker of this session sees (the session's temporary root)."""
    base = factory.getbasetemp()
    root = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "made-ads"
    root.mkdir(parents=True, exist_ok=True)
    return root


def made_ad(factory: pytest.TempPathFactory, recipe: Recipe) -> MadeAd:
    """The recipe's ad, made once per test session whatever the number of workers."""
    root = shared_root(factory)
    cwd = root / recipe.name
    with (root / f"{recipe.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, even if making it fails
        if not (cwd / "result.json").exists():
            shutil.rmtree(cwd, ignore_errors=True)  # a half-made attempt
            run_recipe(recipe, cwd)
    return _read(cwd)


# -- The recipes ------------------------------------------------------------------------------------

PRODUCT = "Lumen — a smart desk lamp that follows your circadian rhythm, dims itself at night and charges your phone"
SPOKEN_PRODUCT = "Lumen, a smart desk lamp that follows your circadian rhythm and dims itself at night"
FRENCH_PRODUCT = "Lumen, une lampe de bureau intelligente qui suit votre rythme circadien et baisse sa lumière le soir"
CTA = "Order at lumen.example"

# A new user's first ad: `cp .env.example .env` (every key empty), then `jant makead` with a mood,
# a call to action and a landscape version. Offline, with the offline voice when jant[voice] is
# installed and the offline music bed.
FIRST_AD = Recipe(
    "first-ad",
    ("makead", PRODUCT, "--mood", "cinematic", "--cta", CTA, "--yes", "--formats", "9:16,16:9"),
    dotenv=True,
)
# The ads below are looked at for their sound: their offline clips are SVD's 14 frames, not SVD-XT's 25
# (the scenes last as long; the clips' animation costs about half as much: ~2 CPU-s an ad).
_OFFLINE = {"JANT_OFFLINE": "1", "JANT_ENV": "dev", "JANT_SVD_VIDEO_LENGTH": "14_frames_with_svd"}
VOICE_ONLY_AD = Recipe("voice-only", ("makead", SPOKEN_PRODUCT, "--yes"), {**_OFFLINE, "JANT_MUSIC": "none"})
# The sample brand kit's ad and the same kit with captions = "off" and music = "none", both without a
# voice: tests/test_cli_brand.py compares the two (the kit's choices in frames and sound); the first is
# also the ad with music alone, the second the ad with no voice and no music (a silent track).
SAMPLE_KIT = REPO / "examples" / "brand.toml"
QUIET_KIT = (
    re.sub(r'(?m)^captions = "karaoke".*$', 'captions = "off"', SAMPLE_KIT.read_text(encoding="utf-8"))
    + 'music = "none"\n'
)
_KIT_AD = ("makead", PRODUCT, "--mood", "tech", "--yes", "--brand")
MUSIC_ONLY_AD = Recipe("music-only", (*_KIT_AD, str(SAMPLE_KIT)), {**_OFFLINE, "JANT_VOICE": "none"})
SILENT_AD = Recipe(
    "silent",
    (*_KIT_AD, "kit/brand.toml"),
    {**_OFFLINE, "JANT_VOICE": "none"},
    files=(("kit/logo.png", REPO / "examples" / "logo.png"), ("kit/brand.toml", QUIET_KIT)),
)
FRENCH_AD = Recipe("french", ("makead", FRENCH_PRODUCT, "--yes"), _OFFLINE)
