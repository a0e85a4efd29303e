"""The `jant` command line, end to end, offline — what a new user runs first. The ad itself is
the session's `first_ad` (tests/conftest.py), which other tests look at too."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from bot.cli import main as cli_main
from pipeline.ffmpeg import has_faststart, probe
from tests.made_ads import AD_TIMEOUT_S, PRODUCT, MadeAd


def jant(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 240) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "COLUMNS": "120", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def job_rows(data_dir: Path) -> list[tuple[str, str]]:
    db = data_dir / "jant.db"
    if not db.exists():
        return []
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT id, status FROM jobs").fetchall()


@pytest.mark.timeout(AD_TIMEOUT_S)
async def test_makead_offline_makes_a_30_second_vertical_ad(first_ad: MadeAd) -> None:
    result, data, job_id, job_dir = first_ad.result, first_ad.data_dir, first_ad.job_id, first_ad.job_dir
    assert first_ad.result.args[-7:] == ["--mood", "cinematic", "--cta", "Order at lumen.example", "--yes",
                                         "--formats", "9:16,16:9"]  # fmt: skip
    assert "offline" in result.stderr.lower()  # says loudly that it is a preview
    assert f"jobs/{job_id}/final.mp4" in result.stdout.replace("\n", "")
    final = job_dir / "final.mp4"
    info = await probe(final)
    assert 29.0 <= (info.duration_s or 0) <= 31.0
    assert (info.width, info.height) == (720, 1280)  # dev profile, 9:16
    assert info.fps == pytest.approx(24, abs=0.01)
    assert (info.codec, info.pix_fmt) == ("h264", "yuv420p")
    assert has_faststart(final)
    assert (job_dir / "contact-sheet.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for n in range(1, 6):
        assert (job_dir / f"seed-{n}.png").exists() and (job_dir / f"clip-{n}.mp4").exists()
    assert (job_dir / "storyboard.json").exists()
    assert job_rows(data) == [(job_id, "completed")]
    # The landscape version asked for with --formats: printed with its path, size and aspect.
    wide = job_dir / "final-16x9.mp4"
    assert (await probe(wide)).width == 1280
    printed = re.search(r"16:9: (\S+)\s+\(([\d.]+) MiB, (\d+x\d+), 16:9\)", result.stdout.replace("\n", ""))
    assert printed is not None, result.stdout
    assert printed.group(1).endswith(f"{job_id}/final-16x9.mp4") and printed.group(3) == "1280x720"
    assert float(printed.group(2)) == pytest.approx(wide.stat().st_size / 1_048_576, abs=0.06)

    listed = jant("jobs", cwd=first_ad.cwd, env={"JANT_DATA_DIR": str(data)})
    assert listed.returncode == 0 and job_id in listed.stdout and "completed" in listed.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["makead", "", "--yes"], "product description is empty"),
        (["makead", "x" * 2001, "--yes"], "use at most 2000"),
        (["makead", PRODUCT, "--mood", "grumpy", "--yes"], "unknown mood 'grumpy'"),
        (["makead", PRODUCT], "pass --yes"),
        (["makead", PRODUCT, "--language", "klingon", "--yes"], "unknown language 'klingon'"),
        (["makead", PRODUCT, "--formats", "9:16,3:2", "--yes"], "unknown format '3:2'; choose among 9:16, 4:5"),
    ],
)
def test_bad_input_is_one_clear_line_exit_2_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    data = tmp_path / "data"  # JANT_DATA_DIR (conftest)
    # In this process (the CLI's own entry point, what `jant` runs), so the six cases cost no interpreter
    # starts; test_doctor_reports_offline_providers_and_ffmpeg and first_ad run the real command.
    code = cli_main(args)
    _, err = capsys.readouterr()
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], err
    assert job_rows(data) == []


def test_a_data_dir_that_cannot_be_written_is_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("JANT_DATA_DIR", str(blocker / "data"))
    code = cli_main(["makead", PRODUCT, "--yes"])  # in this process, as above
    _, err = capsys.readouterr()
    assert code == 2
    assert "cannot be written" in err and "JANT_DATA_DIR" in err
    assert not (blocker.parent / "data").exists()


def test_doctor_reports_offline_providers_and_ffmpeg(tmp_path: Path) -> None:
    result = jant("doctor", cwd=tmp_path, env={"JANT_DATA_DIR": str(tmp_path / "data")})
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "offline" in out and "OPENAI_API_KEY is not set" in out and "ffmpeg" in out


async def test_show_prints_what_each_scene_says_in_the_chosen_language(tmp_path: Path) -> None:
    from pipeline.config import Settings
    from pipeline.models import AdRequest
    from pipeline.runtime import Runtime

    data = tmp_path / "data"
    runtime = await Runtime.open(Settings(JANT_DATA_DIR=data))
    try:
        request = AdRequest(product=PRODUCT, cta="Order at lumen.example [today]", language="fr")
        job = await runtime.orchestrator.create_job(request)
        await runtime.orchestrator.plan(job)
    finally:
        await runtime.close()
    assert job.storyboard is not None
    result = jant("show", job.id, cwd=tmp_path, env={"JANT_DATA_DIR": str(data), "COLUMNS": "400"})
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "says" in out and "lines in French" in out
    for scene in job.storyboard.scenes:
        assert scene.voiceover and scene.voiceover in out
    assert "Order at lumen.example [today]" in out  # printed as written, not eaten as markup


def test_brand_check_validates_the_file_and_renders_its_preview(tmp_path: Path) -> None:
    from PIL import Image

    Image.new("RGBA", (300, 150), (230, 30, 200, 255)).save(tmp_path / "logo.png")
    (tmp_path / "brand.toml").write_text(
        'name = "Lumen"\nprimary = "#0e7490"\naccent = "facc15"\nfont = "bebas-neue"\ncta = "Shop the lamp"\n'
        'url = "https://lumen.example"\nlogo = "logo.png"\n',
        encoding="utf-8",
    )
    result = jant("brand", "check", "brand.toml", cwd=tmp_path, env={"JANT_DATA_DIR": str(tmp_path / "data")})
    assert result.returncode == 0, result.stderr + result.stdout
    preview = Path(result.stdout.split("Preview:", 1)[1].split()[0])
    assert preview == tmp_path / "brand-preview.png"
    with Image.open(preview) as im:
        card = im.convert("RGB").crop((588, 24, 1128, 984))
    # The end card panel is the primary colour (#0e7490) where nothing is drawn on it.
    assert card.getpixel((20, 20)) == pytest.approx((14, 116, 144), abs=6)


def test_brand_check_refuses_a_bad_file_with_the_loaders_words(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "brand.toml").write_text('primary = "teal"\n', encoding="utf-8")
    code = cli_main(["brand", "check", "brand.toml"])  # in this process (conftest: cwd and JANT_DATA_DIR)
    err = capsys.readouterr().err
    assert code == 2
    assert "brand.toml: primary must be a hex colour like #1a2b3c or 1a2b3c (got 'teal')." in err
    assert "jant brand check" in err
    assert not (tmp_path / "brand-preview.png").exists()
