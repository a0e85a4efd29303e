"""The OpenAI and Replicate emulators as Jant sees them: a storyboard the fake GPT-4o writes, the
environment that points the real `openai` and `replicate` clients (and the media downloader) at them,
and a runtime that composes small (`open_small_runtime`) for tests that do not look at the ad's size."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.composer import Composer
from pipeline.config import Settings
from pipeline.runtime import Runtime
from tests.emulators.fake_openai import FakeOpenAI
from tests.emulators.fake_replicate import FakeReplicate

SDXL, SVD = "stability-ai/sdxl", "stability-ai/stable-video-diffusion"
# A small 9:16 for tests that do not look at the ad's size: a quarter of the dev profile's pixels to
# encode. The CLI tests (tests/made_ads.py) make the profile's own 720x1280.
SMALL_W, SMALL_H = 360, 640


async def open_small_runtime(settings: Settings) -> Runtime:
    """`Runtime.open`, its orchestrator composing with the real composer at SMALL_W x SMALL_H."""
    rt = await Runtime.open(settings)
    rt.orchestrator.composer = Composer(SMALL_W, SMALL_H)
    return rt


def draft(durations: tuple[float, ...] = (4, 6, 7, 7, 6)) -> dict[str, Any]:
    """What the fake GPT-4o answers: a five-scene storyboard whose prompts name their scene (SCENE-n)."""
    beats = ["hook", "intro", *["feature"] * (len(durations) - 3), "cta"]
    return {
        "title": "Lumen: light that knows the time",
        "scenes": [
            {"beat": b, "duration_seconds": d, "description": f"Lumen {b} scene {i}",
             "visual_prompt": f"SCENE-{i} Lumen desk lamp on an oak desk, {b} shot",
             "on_screen_text": "Get Lumen" if b == "cta" else None,
             "voiceover": "Get Lumen today." if b == "cta" else f"Lumen, scene {i}.",
             "shows_product": b in ("intro", "cta")}
            for i, (b, d) in enumerate(zip(beats, durations, strict=True), start=1)
        ],
    }  # fmt: skip


def service_env(oai: FakeOpenAI, rep: FakeReplicate, data_dir: Path) -> dict[str, str]:
    return {
        "OPENAI_API_KEY": FakeOpenAI.API_KEY, "OPENAI_BASE_URL": oai.base_url,
        "REPLICATE_API_TOKEN": FakeReplicate.API_TOKEN, "REPLICATE_BASE_URL": rep.base_url,
        "JANT_ALLOWED_MEDIA_HOSTS": "127.0.0.1", "JANT_DATA_DIR": str(data_dir),
        "JANT_POLL_INTERVAL_S": "0.02", "JANT_RETRY_BACKOFF_S": "0.05",
        "JANT_SEED_DEADLINE_S": "10", "JANT_CLIP_DEADLINE_S": "3",
    }  # fmt: skip
