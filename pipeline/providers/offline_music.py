"""A music bed synthesised by ffmpeg: royalty-free by construction, deterministic per seed.

Each mood's `MusicStyle` (tempo, key, chord progression, timbre) is turned into one `aevalsrc`
expression: a soft-attack pad playing the chord of each bar, plucked chord tones on the beat
subdivisions, a bass note per beat. Every note's envelope starts and ends at zero, so there are no
clicks where the chords change; a low-pass, a Haas delay for width and a short echo for room
finish it. It is generated at 24 kHz (everything sits under 4 kHz) and resampled to 48 kHz:
half the expression evaluations. Nothing is downloaded and no sample is reused from anywhere.

The seed varies the voicing, where the progression starts and the pluck pattern, so two jobs of
the same mood do not share a bed while a re-run of one job gets the same bed back.
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

from pipeline.atomic_files import replace_durably, scratch_path
from pipeline.config import Settings
from pipeline.ffmpeg import run_ffmpeg
from pipeline.moods import MusicStyle, music_style
from pipeline.providers.base import MusicGenerator, MusicRequest, StageContext, StageResult
from pipeline.providers.replicate_media import AccountLimits

SYNTH_RATE = 24_000
OUTPUT_RATE = 48_000
FADE_IN_S = 1.0
FADE_OUT_S = 2.0
RELEASE_S = 0.06  # every note ramps to zero over its last RELEASE_S: no click at the next onset
PAD_LEVEL, PLUCK_LEVEL, BASS_LEVEL = 0.16, 0.10, 0.20
DEFAULT_SEED = 7


def midi_hz(note: float) -> float:
    return 440.0 * 2 ** ((note - 69) / 12)


def _select(index_var: str, values: list[float]) -> str:
    """An expression worth values[i] when the stored index is i (nested ifs; ffmpeg has no arrays)."""
    expr = f"{values[-1]:.4f}"
    for i in range(len(values) - 2, -1, -1):
        expr = f"if(eq({index_var},{i}),{values[i]:.4f},{expr})"
    return expr


def _tone(freq: str, harmonics: tuple[float, ...]) -> str:
    """A note of `freq` Hz with the style's partials, normalised to peak ~1."""
    total = sum(harmonics) or 1.0
    terms = [f"{w / total:.4f}*sin(2*PI*{h + 1}*{freq}*t)" for h, w in enumerate(harmonics) if w > 0]
    return "(" + "+".join(terms) + ")"


def bed_expression(style: MusicStyle, seed: int) -> str:
    """The aevalsrc expression (mono) for one bed in `style`, varied by `seed`."""
    rng = random.Random(seed)
    beat = 60.0 / style.bpm
    bar = 4 * beat
    chords = list(style.progression)
    start = rng.randrange(len(chords))
    chords = chords[start:] + chords[:start]
    # Voicing: lift one chord tone an octave, so the pad's shape differs between seeds.
    lift = rng.randrange(len(chords[0]))
    voiced = [[n + (12 if i == lift else 0) for i, n in enumerate(ch)] for ch in chords]
    n_tones = min(len(ch) for ch in voiced)
    root = style.root_midi
    pattern = [rng.randrange(n_tones) for _ in range(8)]
    # ffmpeg keeps 10 registers: 0..2 the chord index, time in bar, time in beat; 3.. the chord
    # tones' Hz, then the bass note's; 8 the plucked tone.
    setup = [f"st(0,mod(floor(t/{bar:.6f}),{len(voiced)}))", f"st(1,mod(t,{bar:.6f}))", f"st(2,mod(t,{beat:.6f}))"]
    for k in range(n_tones):
        setup.append(f"st({3 + k},{_select('ld(0)', [midi_hz(root + 12 + ch[k]) for ch in voiced])})")
    bass_reg = 3 + n_tones
    setup.append(f"st({bass_reg},{_select('ld(0)', [midi_hz(root - 12 + ch[0] % 12) for ch in chords])})")

    # Pad: swells in over pad_attack_s, holds, releases at the bar's end; breathes over the cycle.
    pad_env = (
        f"(1-exp(-ld(1)/{style.pad_attack_s:.3f}))*min(1,({bar:.6f}-ld(1))/{RELEASE_S * 3:.3f})"
        f"*(0.85+0.15*sin(2*PI*t/{len(voiced) * bar:.6f}))"
    )
    pad = "+".join(_tone(f"ld({3 + k})", style.harmonics) for k in range(n_tones))
    parts = [f"{PAD_LEVEL / n_tones:.4f}*({pad})*{pad_env}"]

    if style.pulse:
        step = beat / style.pulse
        # The pluck's note index within the bar picks a chord tone through the seed's pattern.
        pick = f"mod(floor(ld(1)/{step:.6f}),{len(pattern)})"
        which = _select(pick, [float(p) for p in pattern])
        freq = f"ld({3 + n_tones - 1})"
        for k in range(n_tones - 2, -1, -1):
            freq = f"if(eq(ld(8),{k}),ld({3 + k}),{freq})"
        u = f"mod(t,{step:.6f})"
        env = (
            f"(1-exp(-{u}/0.006))*exp(-{u}/{style.pluck_decay_s:.3f})"
            f"*min(1,({step:.6f}-{u})/{min(RELEASE_S, step / 4):.4f})"
        )
        # An octave up, so at most three partials: the rest would fold back above 12 kHz at 24 kHz.
        pluck = _tone(f"2*{freq}", style.harmonics[:3])
        parts.append(f"st(8,{which})*0+{PLUCK_LEVEL:.4f}*{pluck}*{env}")
    if style.bass:
        env = f"(1-exp(-ld(2)/0.012))*exp(-ld(2)/{beat * 0.9:.4f})*min(1,({beat:.6f}-ld(2))/{RELEASE_S:.3f})"
        parts.append(f"{BASS_LEVEL:.4f}*(sin(2*PI*ld({bass_reg})*t)+0.25*sin(4*PI*ld({bass_reg})*t))*{env}")
    return ";".join(setup) + ";" + "+".join(parts)


def _codec_args(dest: Path) -> list[str]:
    suffix = dest.suffix.lower()
    if suffix == ".wav":
        return ["-c:a", "pcm_s16le", "-f", "wav"]
    if suffix == ".flac":
        return ["-c:a", "flac", "-f", "flac"]
    if suffix == ".mp3":
        return ["-c:a", "libmp3lame", "-b:a", "192k", "-f", "mp3"]
    return ["-c:a", "aac", "-b:a", "192k", "-movflags", "+faststart", "-f", "mp4"]


def bed_args(style: MusicStyle, seed: int, duration: float, dest: Path) -> list[str]:
    """The ffmpeg arguments that write one bed of exactly `duration` seconds to `dest`."""
    expr = bed_expression(style, seed).replace("'", "")
    # The progression repeats every cycle_s and every note ends at zero on a bar line, so one cycle
    # is synthesised and looped seamlessly: a quarter of the work for a 30 s ad.
    cycle_s = len(style.progression) * 4 * 60.0 / style.bpm
    cycle = round(cycle_s * SYNTH_RATE)
    fade_in = min(FADE_IN_S, duration / 4)
    fade_out = min(FADE_OUT_S, duration / 3)
    chain = ",".join([
        f"aloop=loop=-1:size={cycle}",
        f"lowpass=f={style.lowpass_hz}:p=2",
        "highpass=f=45",
        f"aresample={OUTPUT_RATE}",
        "pan=stereo|c0=c0|c1=c0",
        "adelay=delays=0|11",  # Haas delay: width without phase trouble in mono
        "aecho=in_gain=0.9:out_gain=0.8:delays=71|113:decays=0.22|0.14",
        f"atrim=end={duration:.6f}",
        f"afade=t=in:d={fade_in:.3f}",
        f"afade=t=out:st={duration - fade_out:.6f}:d={fade_out:.3f}",
        "alimiter=limit=0.7:level=disabled",
    ])  # fmt: skip
    src = f"aevalsrc=exprs='{expr}':s={SYNTH_RATE}:d={cycle / SYNTH_RATE:.6f}"
    return ["-f", "lavfi", "-i", src, "-filter:a", chain, "-t", f"{duration:.6f}", *_codec_args(dest), str(dest)]


async def synthesize_bed(style: MusicStyle, seed: int, duration: float, dest: Path, *, timeout: float = 120) -> Path:  # noqa: ASYNC109
    """Write the bed to `dest` atomically (ffmpeg runs in its own process: the loop never waits on it)."""
    if duration <= 0:
        raise ValueError(f"duration must be positive (got {duration})")
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with scratch_path(dest) as tmp:
        await run_ffmpeg(bed_args(style, seed, duration, tmp), timeout=timeout)
        await asyncio.to_thread(replace_durably, tmp, dest)
    return dest


class OfflineMusicGenerator:
    """The `offline` music provider: a synthesised bed in the mood's style, free and instant."""

    name = "offline-music"
    offline = True

    async def compose(self, request: MusicRequest, ctx: StageContext) -> StageResult:
        seed = request.seed if request.seed is not None else DEFAULT_SEED
        await ctx.progress(5.0, "writing the music bed")
        style = music_style(request.mood.mood)
        path = await synthesize_bed(style, seed, request.duration, request.dest)
        await ctx.progress(100.0, None)
        return StageResult(path=path, seed=seed, duration=request.duration, cost_usd=0.0)

    async def cancel(self, prediction_id: str) -> None:
        return None


# -- choosing the music provider --------------------------------------------------------------------

MUSIC_CHOICES = ("auto", "replicate", "offline", "none")


def build_music_provider(
    settings: Settings, *, limits: AccountLimits | None = None
) -> tuple[MusicGenerator | None, str | None]:
    """The music provider `JANT_MUSIC` asks for, and a notice to show when it is not the real one.

    `auto`: Replicate when its token is set (and JANT_OFFLINE is not), else the offline bed.
    """
    choice = settings.audio.music
    if choice == "none":
        return None, "JANT_MUSIC=none: ads are made without a music bed."
    if choice == "replicate" and settings.media.offline:
        return OfflineMusicGenerator(), "JANT_OFFLINE is set: music beds are synthesised offline."
    if choice == "replicate" or (choice == "auto" and settings.media_live):
        if settings.replicate.api_token is None:
            return OfflineMusicGenerator(), (
                "JANT_MUSIC=replicate but REPLICATE_API_TOKEN is not set: music beds are synthesised offline."
            )
        from pipeline.providers.replicate_music import ReplicateMusicGenerator

        return ReplicateMusicGenerator(settings, limits=limits), None
    why = "JANT_OFFLINE is set" if settings.media.offline else settings.unset_reason("REPLICATE_API_TOKEN")
    if choice == "offline":
        why = "JANT_MUSIC=offline"
    return OfflineMusicGenerator(), f"{why}: music beds are synthesised offline (royalty-free, not a music model)."
