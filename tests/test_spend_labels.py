"""`/spend` names what a server paid for the way a marketer knows it: clips by the video model the job
chose, seeds, voice and music by the model their setting names; rows of one name are summed."""

from __future__ import annotations

from pipeline.config import Settings
from pipeline.providers.openai_voice import OpenAICompatibleVoiceGenerator
from pipeline.providers.replicate_media import ReplicateImageGenerator, ReplicateVideoGenerator
from pipeline.providers.replicate_music import ReplicateMusicGenerator
from pipeline.providers.replicate_voice import ReplicateVoiceGenerator
from pipeline.spend_labels import model_label, spend_by_model


def test_each_prediction_is_named_by_its_model() -> None:
    settings = Settings(JANT_SDXL_MODEL="acme/sdxl-lightning", JANT_MUSIC_MODEL="meta/musicgen")
    video = ReplicateVideoGenerator.name
    assert model_label("clip", video, "kling-v2.1", settings) == "Kling 2.1 (kling-v2.1)"
    assert model_label("clip", video, None, settings) == "Stable Video Diffusion (svd)"  # before the registry
    assert model_label("clip", video, "veo-9", settings) == "veo-9"  # a model a newer jant added
    assert model_label("seed", ReplicateImageGenerator.name, None, settings) == "acme/sdxl-lightning (seed images)"
    assert model_label("music", ReplicateMusicGenerator.name, None, settings) == "meta/musicgen (music bed)"
    assert model_label("voice", ReplicateVoiceGenerator.name, None, settings) == "minimax/speech-02-turbo (voice)"
    assert model_label("voice", OpenAICompatibleVoiceGenerator.name, None, settings) == "tts-1 (voice)"
    assert model_label("seed", "someone-elses", None, settings) == "someone-elses (seed images)"


def test_two_video_models_are_two_rows_and_one_model_is_one_row() -> None:
    rows = [
        ("clip", "replicate-video", "wan-2.2-i2v-fast", 0.32, 2),
        ("clip", "replicate-video", None, 0.10, 2),
        ("clip", "replicate-svd", "svd", 0.05, 1),  # the same model through another provider name
        ("seed", "replicate-sdxl", None, 0.01, 3),
    ]
    assert spend_by_model(rows, Settings()) == [
        ("Wan 2.2 i2v fast (wan-2.2-i2v-fast)", 0.32, 2),
        ("Stable Video Diffusion (svd)", 0.15, 3),
        ("stability-ai/sdxl (seed images)", 0.01, 3),
    ]
