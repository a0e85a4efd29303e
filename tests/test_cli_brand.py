"""`jant makead … --brand brand.toml` (issue 13): a bad file is refused in one line, exit 2, before
any job exists or any logo is stored; the sample kit in examples/ makes an ad; the kit's captions
and music choices show in the ad's frames and sound; `jant show` prints the kit a job was made with."""

from __future__ import annotations

import importlib.util
import io
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image, ImageChops

from bot.cli import main as cli_main
from pipeline.providers.replicate_voice import minimax_voices
from pipeline.uploaded_images import LOGO_MAX_BYTES, LOGO_MIN_SHORT_SIDE, validate_image
from tests.made_ads import AD_TIMEOUT_S, QUIET_KIT, MadeAd
from tests.test_ad_speaks import _ffmpeg, loudness
from tests.test_cli import PRODUCT, jant, job_rows

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
HINT = " Fix the file and run `jant brand check` on it."


def _png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGBA", (width, height), (250, 160, 10, 255)).save(out, "PNG")
    return out.getvalue()


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('primary = "red"', "brand.toml: primary must be a hex colour like #1a2b3c or 1a2b3c (got 'red')." + HINT),
        (
            'url = "ftp://lumen.example"',
            "brand.toml: url must start with http:// or https:// and name a site (got 'ftp://lumen.example')." + HINT,
        ),
        (
            'cta = "Order now @everyone"',
            "brand.toml: cta cannot contain mentions (@everyone, @here, <@…>); write the name instead." + HINT,
        ),
        (
            'colour = "#ffffff"',
            "brand.toml: unknown key(s) colour; the keys are name, primary, accent, font, cta, url, voice, music, "
            "captions, logo_corner, end_card, logo." + HINT,
        ),
        ('logo = "gone.png"', "brand.toml: the logo 'gone.png' cannot be read (looked at {tmp}/gone.png)." + HINT),
        (
            'logo = "small.png"',
            "brand.toml: The logo is 100x100; its short side must be at least 128 px. Upload a larger image." + HINT,
        ),
        (
            'music = "jazz"',
            "brand.toml: music must be a mood (energetic, luxury, playful, minimal, cinematic, tech) or none "
            "(got 'jazz')." + HINT,
        ),
        # What the user typed is shown as typed, never read as terminal markup.
        (
            'accent = "[bold]gold"',
            "brand.toml: accent must be a hex colour like #1a2b3c or 1a2b3c (got '[bold]gold')." + HINT,
        ),
    ],
    ids=["colour", "url", "mention", "unknown-key", "missing-logo", "small-logo", "music", "markup"],
)
def test_a_bad_brand_file_is_one_line_exit_2_and_nothing_is_made(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], toml: str, message: str
) -> None:
    (tmp_path / "logo.png").write_bytes(_png(256, 256))
    (tmp_path / "small.png").write_bytes(_png(100, 100))
    # A good logo beside the bad line: it must not be stored for a file that is refused.
    logo = "" if toml.startswith("logo") else 'logo = "logo.png"\n'
    (tmp_path / "brand.toml").write_text(f'name = "Lumen"\n{logo}{toml}\n', encoding="utf-8")
    data = tmp_path / "data"  # JANT_DATA_DIR, and the working directory (conftest)
    # In this process (the CLI's own entry point, what `jant` runs): eight cases, no interpreter starts.
    code = cli_main(["makead", PRODUCT, "--yes", "--brand", "brand.toml"])
    out, err = capsys.readouterr()
    assert code == 2, err + out
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines == ["error: " + message.format(tmp=tmp_path.resolve())]
    assert job_rows(data) == [] and not (data / "brand").exists()


def test_a_brand_file_that_is_not_there_is_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli_main(["makead", PRODUCT, "--yes", "--brand", "nowhere.toml"])  # in this process, as above
    assert code == 2
    assert capsys.readouterr().err.strip() == "error: No brand file at nowhere.toml. Check the path given to --brand."


def _show(ad: MadeAd, tmp_path: Path) -> tuple[str, Path]:
    """What `jant show` prints of the made ad (it only reads it), and the ad's job directory."""
    shown = jant("show", ad.job_id, cwd=tmp_path, env={"JANT_DATA_DIR": str(ad.data_dir), "COLUMNS": "200"})
    assert shown.returncode == 0, shown.stderr
    return shown.stdout, ad.job_dir


def _frame(video: Path, at: float, dest: Path) -> Image.Image:
    _ffmpeg("-ss", f"{at:.3f}", "-i", str(video), "-frames:v", "1", "-y", str(dest))
    with Image.open(dest) as frame:
        return frame.convert("L")


def _changed_pixels(a: Image.Image, b: Image.Image, top: float, bottom: float) -> int:
    """How many pixels between `top` and `bottom` (fractions of the height) differ by more than the
    encoder's noise (a grey level of 60: same-source frames differ by at most ~25)."""
    w, h = a.size
    box = (0, int(h * top), w, int(h * bottom))
    return ImageChops.difference(a.crop(box), b.crop(box)).point(lambda p: 255 if p > 60 else 0).histogram()[255]


@pytest.mark.timeout(2 * AD_TIMEOUT_S)
def test_the_sample_kit_makes_an_ad_and_its_caption_and_music_choices_show_in_it(
    music_only_ad: MadeAd, silent_ad: MadeAd, tmp_path: Path
) -> None:
    """Two ads of the same request without a voice (offline frames are reproducible), made once for the
    session (tests/made_ads.py): the sample kit (karaoke captions, the mood's music), `music_only_ad`,
    and the same kit with captions = "off" and music = "none", `silent_ad`."""
    assert "--brand" in music_only_ad.result.args and "--brand" in silent_ad.result.args
    assert 'captions = "off"' in QUIET_KIT and 'captions = "karaoke"' not in QUIET_KIT and 'music = "none"' in QUIET_KIT
    sample_out, sample_dir = _show(music_only_ad, tmp_path)
    quiet_out, quiet_dir = _show(silent_ad, tmp_path)

    # `jant show` prints the kit each job was made with, and why the second has no music.
    assert (
        "brand:" in sample_out and re.search(r"name +Lumen", sample_out) and re.search(r"captions +karaoke", sample_out)
    )
    assert re.search(r"logo +\S+/data/brand/logo-\w+\.png \(top-right\)", sample_out), sample_out
    assert re.search(r"captions +off", quiet_out) and re.search(r"music +none", quiet_out)
    assert "music bed: music off (the brand kit says music = none)" in quiet_out
    assert "The ad has no music: the brand kit says music = none." in quiet_out

    # Music: the sample ad has a bed at the platforms' loudness; the other never made one.
    assert (sample_dir / "music.wav").exists() and not (quiet_dir / "music.wav").exists()
    sample_lufs, _ = loudness(sample_dir / "final.mp4")
    quiet_lufs, _ = loudness(quiet_dir / "final.mp4")
    assert -16.0 <= sample_lufs <= -12.0 and quiet_lufs <= -60.0, (sample_lufs, quiet_lufs)

    # Captions: the same frames, except where the karaoke captions are drawn: a second into each of
    # the first scenes that has a line (no voice, so each line is spread over its planned scene).
    storyboard = json.loads((sample_dir / "storyboard.json").read_text(encoding="utf-8"))["storyboard"]
    starts, start = [], 0.0
    for scene in storyboard["scenes"]:
        if scene.get("voiceover"):
            starts.append(start)
        start += scene["duration"]
    assert len(starts) >= 3
    for at in (t + 1.0 for t in starts[:3]):
        sample = _frame(sample_dir / "final.mp4", at, tmp_path / f"sample-{at}.png")
        quiet = _frame(quiet_dir / "final.mp4", at, tmp_path / f"quiet-{at}.png")
        above, band = _changed_pixels(sample, quiet, 0.0, 0.40), _changed_pixels(sample, quiet, 0.45, 0.80)
        assert above == 0 and band > 1000, (at, above, band)


def test_the_sample_logo_is_what_its_script_draws_and_passes_the_logo_checks() -> None:
    spec = importlib.util.spec_from_file_location("draw_logo", EXAMPLES / "draw_logo.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with Image.open(EXAMPLES / "logo.png") as committed:
        assert committed.tobytes() == module.draw_logo().tobytes()  # re-run the script after changing it
    data = (EXAMPLES / "logo.png").read_bytes()
    checked = validate_image(data, what="The logo", max_bytes=LOGO_MAX_BYTES, min_short_side=LOGO_MIN_SHORT_SIDE)
    assert checked.has_alpha and (checked.width, checked.height) == (512, 512)


@pytest.mark.skipif(shutil.which("make") is None, reason="no make on this machine")
@pytest.mark.parametrize(("brand", "expected"), [("", None), ("examples/brand.toml", '--brand "examples/brand.toml"')])
def test_make_demo_passes_the_brand_only_when_one_is_given(brand: str, expected: str | None) -> None:
    make = shutil.which("make")
    assert make is not None
    dry = subprocess.run(
        [make, "-n", "-C", str(EXAMPLES.parent), "demo", f"DEMO_BRAND={brand}"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert dry.returncode == 0, dry.stderr
    [command] = [line for line in dry.stdout.splitlines() if "jant makead" in line]
    assert command.endswith(f" --yes {expected}" if expected else " --yes"), command


def test_a_kit_voice_the_voice_provider_lacks_is_refused_before_any_job_exists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "brand.toml").write_text('voice = "Nobody_Here"\n', encoding="utf-8")
    data = tmp_path / "data"  # JANT_DATA_DIR, and the working directory (conftest)
    env = {"REPLICATE_API_TOKEN": "r8_fake_token_for_tests_only", "JANT_VOICE": "replicate",
           "REPLICATE_BASE_URL": "http://127.0.0.1:9"}  # fmt: skip  # nothing may be asked of it
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    code = cli_main(["makead", PRODUCT, "--yes", "--brand", "brand.toml"])  # in this process
    out, err = capsys.readouterr()
    assert code == 2, err + out
    last = [line for line in err.splitlines() if line.strip()][-1]
    assert last == (
        "error: --brand brand.toml: The brand kit's voice 'Nobody_Here' is not one of the voices of "
        f"replicate-minimax-tts; set voice to one of: {', '.join(minimax_voices())}."
    )
    assert job_rows(data) == []
