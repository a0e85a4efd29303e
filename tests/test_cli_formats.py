"""Formats after the fact from a terminal: `jant formats JOB_ID LIST` cuts a finished ad (made through
the emulators) into the shapes it lacks without a new prediction, and refuses in so many words what it
cannot do: the ad itself, a shape already made, a job still running, media deleted by retention."""

from __future__ import annotations

import asyncio
import os
from datetime import timedelta

import pytest

from pipeline.action_rules import FORMATS_MEDIA_GONE
from pipeline.ffmpeg import probe
from pipeline.models import JobStatus, utcnow
from pipeline.retention import purge_old_media
from tests.test_rerender import Made, jant, jant_refusal, made  # noqa: F401  (`made` is the fixture: one finished ad)


async def test_jant_formats_adds_a_shape_for_free_and_refuses_clearly(
    made: Made,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    data_dir = made.settings.storage.data_dir
    job_id = made.job.id
    paid = made.rep.counts.total_creates

    done = await asyncio.to_thread(jant, "formats", job_id, "1x1", data_dir=data_dir)
    assert done.returncode == 0, done.stderr
    square = made.directory / "final-1x1.mp4"
    assert f"1:1: {square}" in done.stdout
    info = await probe(square)
    assert info.width == info.height and f"{info.width}x{info.height})" in done.stdout
    assert made.rep.counts.total_creates == paid  # the same clips and soundtrack: nothing created
    stored = await made.store.get(job_id)
    assert stored is not None and stored.request.formats == ("9:16", "1:1")

    # The refusals run in this process (the CLI's entry point, no interpreter start), on the same data dir.
    assert os.environ["JANT_DATA_DIR"] == str(data_dir)
    code, err = await jant_refusal(capsys, "formats", job_id, "1:1,16:9")
    assert code == 2
    assert err.strip() == f"error: The 1:1 version of job {job_id} is already made; still to make: 4:5, 16:9."
    code, err = await jant_refusal(capsys, "formats", job_id, "9:16")
    assert code == 2
    assert err.strip() == "error: 9:16 is the ad itself; choose among the other formats: 4:5, 16:9."

    running = made.job.model_copy(update={"status": JobStatus.RUNNING})
    assert await made.orch.formats_problem(running) == (
        f"Nothing to reformat: job `{job_id}` was already approved and is being generated; only a finished ad "
        "(done or partial) can be cut into other formats."
    )

    await made.store.update(made.job, finished_at=utcnow() - timedelta(days=30))
    assert await purge_old_media(made.store, data_dir, 14) == [job_id]
    code, err = await jant_refusal(capsys, "formats", job_id)
    assert code == 2
    assert err.strip() == "error: " + FORMATS_MEDIA_GONE.format(job_id=job_id).replace("`", "")
