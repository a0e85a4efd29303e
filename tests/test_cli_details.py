"""The small promises of the command line: limits that make sense, the product-text limit the README
states, and `jant show` listing the files a job has on disk."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from bot.cli import main as cli_main
from bot.cli import show_job
from pipeline.config import Settings
from pipeline.models import PRODUCT_MAX_CHARS, AdRequest
from pipeline.runtime import Runtime
from tests.test_cli import job_rows


@pytest.mark.parametrize("limit", ["0", "-3"])
def test_jobs_refuses_a_limit_below_one(tmp_path: Path, capsys: pytest.CaptureFixture[str], limit: str) -> None:
    data = tmp_path / "data"  # JANT_DATA_DIR (conftest)
    code = cli_main(["jobs", "--limit", limit])  # the CLI's entry point in this process: no interpreter start
    assert code == 2
    assert capsys.readouterr().err.strip() == f"error: --limit must be 1 or more (got {limit})"
    assert job_rows(data) == []


def test_the_product_text_limit_is_the_one_the_readme_states() -> None:
    assert PRODUCT_MAX_CHARS == 2000
    assert AdRequest(product="x" * 2000).product == "x" * 2000  # "at most 2,000 are accepted"
    with pytest.raises(ValidationError, match="2001 characters; use at most 2000"):
        AdRequest(product="x" * 2001)
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert "at most 2,000 are accepted" in readme


async def test_show_lists_the_files_that_exist_in_pipeline_order(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    runtime = await Runtime.open(settings)
    try:
        job = await runtime.orchestrator.create_job(AdRequest(product="Lumen desk lamp"))
        await runtime.orchestrator.plan(job)
    finally:
        await runtime.close()
    directory = job.directory(settings.data_dir)
    directory.mkdir(parents=True, exist_ok=True)
    names = ["contact-sheet.png", "final.mp4", "final-1.mp4", "scene-2.mp4", "scene-10.mp4", "clip-1.mp4",
             "seed-2.png", "seed-1.png", "storyboard.json"]  # fmt: skip
    for name in names:
        (directory / name).write_bytes(b"x" * 3000)
    (directory / ".final.1a2b3c4d.mp4").write_bytes(b"partial")  # an encode in progress
    (directory / "storyboard.json.tmp").write_bytes(b"{")

    assert await show_job(settings, job.id) == 0
    out = capsys.readouterr().out
    listed = [line.split()[0] for line in out.splitlines() if line.startswith("  ") and "KiB" in line]
    assert listed == ["storyboard.json", "seed-1.png", "seed-2.png", "clip-1.mp4", "scene-2.mp4", "scene-10.mp4",
                      "final.mp4", "final-1.mp4", "contact-sheet.png"]  # fmt: skip
    assert "3 KiB" in out and ".final" not in out and ".tmp" not in out
