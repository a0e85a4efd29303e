"""Formats after the fact from a terminal: `jant formats JOB_ID LIST` cuts a finished ad (made through
the emulators) into the shapes it lacks without a new prediction, and refuses in so many words what it
cannot do: the ad itself, a shape already made, a job still running, media deleted by retention."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from pipeline.action_rules import FORMATS_MEDIA_GONE
from pipeline.ffmpeg import probe
from pipeline.models import JobStatus, utcnow
from pipeline.retention import purge_old_media
from tests.test_rerender import Made, jant, made  # noqa: F401  (`made` is the fixture: one finished ad)


async def test_jant_formats_adds_a_shape_for_free_and_refuses_clearly(made: Made) -> None:  # noqa: F811
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

    again = await asyncio.to_thread(jant, "formats", job_id, "1:1,16:9", data_dir=data_dir)
    assert again.returncode == 2
    assert again.stderr.strip() == (
        f"error: The 1:1 version of job {job_id} is already made; still to make: 4:5, 16:9."
    )
    master = await asyncio.to_thread(jant, "formats", job_id, "9:16", data_dir=data_dir)
    assert master.returncode == 2
    assert master.stderr.strip() == "error: 9:16 is the ad itself; choose among the other formats: 4:5, 16:9."

    running = made.job.model_copy(update={"status": JobStatus.RUNNING})
    assert await made.orch.formats_problem(running) == (
        f"Nothing to reformat: job `{job_id}` was already approved and is being generated; only a finished ad "
        "(done or partial) can be cut into other formats."
    )

    await made.store.update(made.job, finished_at=utcnow() - timedelta(days=30))
    assert await purge_old_media(made.store, data_dir, 14) == [job_id]
    gone = await asyncio.to_thread(jant, "formats", job_id, data_dir=data_dir)
    assert gone.returncode == 2
    assert gone.stderr.strip() == "error: " + FORMATS_MEDIA_GONE.format(job_id=job_id).replace("`", "")
