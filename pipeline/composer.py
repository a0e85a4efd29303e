"""The composer: turns downloaded clips into the final 9:16 ad with ffmpeg.

Each SVD clip (25 frames at 7 fps ≈ 3.6 s) is normalised as soon as it arrives — retimed to its
scene's planned duration at a constant frame rate, cover-cropped to the output size, captioned —
with identical H.264 settings for every clip. The final join is then a stream copy (a second or
so), and only re-encodes when the result must fit an upload limit it overshoots.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from PIL import Image, ImageDraw

from pipeline import end_card as ec
from pipeline import typography as ty
from pipeline.atomic_files import atomic_path, replace_durably, scratch_path
from pipeline.audio_mix import mix_soundtrack
from pipeline.brand import BrandKit, EndCardStyle
from pipeline.brand_style import caption_style
from pipeline.captions import DEFAULT_STYLE, CaptionMode, build_ass
from pipeline.errors import ComposeError, DoesNotFit
from pipeline.ffmpeg import MediaInfo, ProgressCallback, avc_decoder_config, probe, run_ffmpeg
from pipeline.speech_timing import WordTiming
from pipeline.watermark import place_watermark

# Below ~0.011 bits per pixel per frame H.264 turns a product shot into blocks: 250 kb/s at
# 720x1280x24 is that line. An ad that looks broken does more harm than a clear "does not fit"
# message with the full-quality file kept on disk, so we stop there.
MIN_BITS_PER_PIXEL = 0.011
MIN_VIDEO_BITRATE = 250_000
# Re-encodes are sized for a 720x1280 output at most; bigger outputs step down to it when the
# bitrate the limit allows would starve them (a sharp 720p ad beats a smeared 1080p one).
FALLBACK_WIDTH = 720
# MP4 index and headers: ~12 bytes per frame in stts/stsz/stco/ctts plus fixed boxes.
CONTAINER_OVERHEAD_BYTES = 32 * 1024
MAX_FIT_ENCODES = 3
# What x264 may skip for a clip on the critical path (the one the finished ad waits for): most of
# its motion analysis (sub-pixel refinement level 1, diamond search). That is analysis only and
# never reaches the stream headers (SPS/PPS), so an urgent clip's decoder config is identical to
# the others' and the join still stream-copies (join checks it). Measured on a 6 s scene at
# 1080x1920: about a quarter faster for 0.001-0.003 SSIM; turning off lookahead and mb-tree as
# well saves little more and costs 3-5x the quality (benchmarks/README.md).
URGENT_X264_PARAMS = "subme=1:me=dia"
# Clips whose description the composer keeps for the join (a few hundred ads in flight at most).
MADE_REMEMBERED = 2048


def target_bitrate(duration_s: float, byte_limit: int, *, safety: float = 0.92, audio_bps: int = 0) -> int:
    """Video bits/s for an ad of `duration_s` to land under `byte_limit` bytes.

    `safety` absorbs the encoder's overshoot (single-pass x264 ABR lands within a few percent);
    the container's overhead is reserved separately, and so is the audio track's `audio_bps`
    (the soundtrack is copied as is, so the video gets what is left). 0 when nothing fits.
    """
    if duration_s <= 0:
        raise ValueError(f"duration must be positive (got {duration_s})")
    if byte_limit <= 0:
        raise ValueError(f"byte limit must be positive (got {byte_limit})")
    if not 0 < safety <= 1:
        raise ValueError(f"safety must be in (0, 1] (got {safety})")
    if audio_bps < 0:
        raise ValueError(f"audio bitrate must not be negative (got {audio_bps})")
    usable = byte_limit * safety - CONTAINER_OVERHEAD_BYTES
    return max(0, int(usable * 8 / duration_s) - audio_bps)


def min_bitrate(width: int, height: int, fps: float) -> int:
    """The lowest bitrate we accept for this output size (never below MIN_VIDEO_BITRATE)."""
    return max(MIN_VIDEO_BITRATE, round(MIN_BITS_PER_PIXEL * width * height * fps))


def fit_size(width: int, height: int, fps: float, bitrate: int) -> tuple[int, int]:
    """Output size for a re-encode at `bitrate`: the original, or FALLBACK_WIDTH wide if starved."""
    if width <= FALLBACK_WIDTH or bitrate >= min_bitrate(width, height, fps):
        return width, height
    h = round(height * FALLBACK_WIDTH / width / 2) * 2
    return FALLBACK_WIDTH, h


# The VBV buffer for capped clips, in seconds at the cap; x264 starts it 90 % full (vbv-init).
CLIP_VBV_SECONDS = 0.5
VBV_INIT = 0.9


def clip_maxrate(max_bitrate: int, duration_s: float) -> int:
    """The -maxrate that keeps a clip's *average* at or under `max_bitrate`.

    VBV lets an encoder spend its initially full buffer on top of the rate, so a clip can weigh
    maxrate·(duration + VBV_INIT·buffer). Capping each clip at target_bitrate(total, limit) then
    really does make the stream-copied join fit, instead of landing a few percent over.
    """
    return int(max_bitrate * duration_s / (duration_s + VBV_INIT * CLIP_VBV_SECONDS))


Framing = Literal["cover", "blur-fill"]
# The blurred fill is blurred at this fraction of the frame and scaled up: a box blur at full
# 1920x1080 costs more than the whole encode, one at a tenth of the size next to nothing, and
# upscaling a tiny picture blurs it further. Dimmed so the sharp picture in front reads as the subject.
BLUR_FILL_SCALE, BLUR_FILL_RADIUS, BLUR_FILL_DIM = 0.1, 6, -0.12


def _framing(framing: Framing, w: int, h: int) -> list[str]:
    """The filters that bring a picture of any shape to exactly `w`x`h` (see normalize_clip)."""
    cover = [f"scale={w}:{h}:force_original_aspect_ratio=increase:flags=lanczos", f"crop={w}:{h}"]
    if framing == "cover":
        return cover
    if framing != "blur-fill":
        raise ValueError(f"unknown framing {framing!r}")
    bw, bh = max(2, round(w * BLUR_FILL_SCALE / 2) * 2), max(2, round(h * BLUR_FILL_SCALE / 2) * 2)
    # One chain element holding a small graph: split, blurred background, picture fitted inside, overlay.
    return [
        "split[fill_in][fill_fg];"
        f"[fill_in]scale={bw}:{bh}:force_original_aspect_ratio=increase,crop={bw}:{bh},"
        f"boxblur={BLUR_FILL_RADIUS}:2,eq=brightness={BLUR_FILL_DIM},scale={w}:{h}:flags=bilinear[fill_bg];"
        f"[fill_fg]scale={w}:{h}:force_original_aspect_ratio=decrease:force_divisible_by=2:flags=lanczos[fill_pic];"
        "[fill_bg][fill_pic]overlay=(W-w)/2:(H-h)/2"
    ]


def _h264_level(width: int, height: int, fps: float) -> str:
    macroblocks = math.ceil(width / 16) * math.ceil(height / 16)
    if macroblocks <= 8192 and macroblocks * fps <= 245_760:
        return "4.1"
    return "5.1"


def concat_line(path: Path) -> str:
    """One `file '…'` line of an ffmpeg concat list, quoted per ffmpeg's rules (' → '\\'')."""
    text = str(path)
    if "\n" in text or "\r" in text:
        raise ComposeError(f"cannot join a clip whose path contains a line break: {text!r}")
    return "file '" + text.replace("'", "'\\''") + "'\n"


def _audio_bps(audio: Path, duration: float) -> int:
    """The soundtrack's real bits/s over the ad (its file size: AAC at 128 kb/s runs a little over)."""
    return int(os.path.getsize(audio) * 8 / max(duration, 0.001))


def filter_value(text: str) -> str:
    """`text` as one filter option value inside a filtergraph: escaped for the option parser
    (\\ ' :) and then for the graph parser (\\ ' [ ] , ;), ffmpeg's two levels."""
    once = "".join("\\" + c if c in "\\':" else c for c in text)
    return "".join("\\" + c if c in "\\'[],;" else c for c in once)


class _BrandLayers:
    """The filtergraph of one clip as the brand adds to it: the logo watermark and the end card
    over `[base]`, their stills as extra ffmpeg inputs, and the card's text for the ASS script."""

    def __init__(self, graph: str, inputs: list[str]) -> None:
        self.graph, self.inputs = graph, inputs
        self.card_events: list[str] = []
        self.card_start: float | None = None

    def _input(self, path: Path) -> int:
        self.inputs += ["-i", str(path)]
        return len(self.inputs) // 2 - 1

    async def add(
        self,
        brand: BrandKit,
        cta: str | None,
        note: str | None,
        w: int,
        h: int,
        fps: int,
        frames: int,
        card_frames: int,
        scratch: contextlib.ExitStack,
        dst: Path,
    ) -> None:
        # Reads the logo and measures text with the font files: off the event loop.
        text = await asyncio.to_thread(ec.card_text, brand, cta, note)
        if card_frames and not text.empty:
            self.card_start = (frames - card_frames) / fps
        wm_png = scratch.enter_context(scratch_path(dst, ".logo.png"))
        placed = await asyncio.to_thread(place_watermark, brand.logo_path, brand.logo_corner, w, h, wm_png)
        if placed is not None:
            index = self._input(placed.path)
            # Hidden under the end card, which shows the logo large.
            enable = f":enable='lt(t,{self.card_start:.6f})'" if self.card_start is not None else ""
            self.graph += f";[{index}:v]format=rgba[wm];[base][wm]overlay={placed.x}:{placed.y}{enable}[base]"
        if self.card_start is None:
            return
        card_png = scratch.enter_context(scratch_path(dst, ".card.png"))
        plan = await asyncio.to_thread(ec.plan_card, brand, text, w, h, self.card_start, frames / fps + 1)
        self.card_events = plan.events
        await asyncio.to_thread(ec.draw_card, brand, plan, w, h, card_png)
        self.graph += _card_graph(brand.end_card, self._input(card_png), w, h, fps, self.card_start, card_frames)


def _card_graph(style: EndCardStyle, index: int, w: int, h: int, fps: int, start: float, frames: int) -> str:
    """Filtergraph text that lays the end card (input `index`, one RGBA still) over `[base]` from
    `start` s for its last `frames` frames, faded in; for the blurred variant the scene's own
    frames from `start` are blurred first. The still is decoded once and repeated by `loop`."""
    graph = ""
    if style is EndCardStyle.BLUR:
        sw, sh = max(2, w // ec.BLUR_SHRINK // 2 * 2), max(2, h // ec.BLUR_SHRINK // 2 * 2)
        graph += (
            f";[base]split[keep][tail];[tail]trim=start={start:.6f},scale={sw}:{sh},"
            f"gblur=sigma={ec.BLUR_SIGMA},scale={w}:{h}:flags=bilinear[soft];"
            "[keep][soft]overlay=eof_action=pass[base]"
        )
    return graph + (
        # A second more than the card needs: the still's timestamps are rounded to its own time
        # base, and a card that ran out one frame early would show the scene again at the end.
        f";[{index}:v]format=rgba,loop=loop={frames + fps}:size=1:start=0,"
        f"setpts=N/({fps}*TB)+{start:.6f}/TB,fade=t=in:st={start:.6f}:d={ec.CARD_FADE_S}:alpha=1[card];"
        "[base][card]overlay=0:0:eof_action=pass[base]"
    )


def _file_key(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


@dataclass(frozen=True)
class ComposeResult:
    path: Path
    bytes: int
    duration_s: float
    encodes: int  # re-encodes the join needed (0: a pure stream copy)


class Composer:
    """Normalises clips to one format, joins them and fits the result under an upload limit."""

    def __init__(
        self,
        width: int,
        height: int,
        fps: int = 24,
        interpolate: bool = False,
        preset: str = "veryfast",
        crf: int = 23,
        *,
        timeout: float = 900,
    ) -> None:
        if width % 2 or height % 2 or width <= 0 or height <= 0:
            raise ValueError(f"output size must be positive and even for yuv420p (got {width}x{height})")
        if fps <= 0:
            raise ValueError(f"fps must be positive (got {fps})")
        self.width, self.height, self.fps = width, height, fps
        self.interpolate = interpolate
        self.preset, self.crf = preset, crf
        self.timeout = timeout
        # Clips this composer wrote: path -> ((size, mtime), MediaInfo, avcC); and its recipe's avcC.
        self._made: dict[Path, tuple[tuple[int, int], MediaInfo, bytes | None]] = {}
        self._config: bytes | None = None

    # -- encoding settings -------------------------------------------------------------------

    def _h264_args(
        self,
        *,
        max_bitrate: int | None = None,
        bitrate: int | None = None,
        size: tuple[int, int] | None = None,
        urgent: bool = False,
        copy_audio: bool = False,
    ) -> list[str]:
        """The one H.264 recipe: every clip gets the same codec parameters, so joins stream-copy.

        `urgent` trades a little quality for speed in analysis only (URGENT_X264_PARAMS): the
        stream headers stay the same.
        """
        w, h = size or (self.width, self.height)
        audio = ["-c:a", "copy"] if copy_audio else ["-an"]
        args = [
            "-map_metadata", "-1", *audio, "-sn", "-dn",
            "-c:v", "libx264", "-preset", self.preset,
            "-profile:v", "high", "-level:v", _h264_level(w, h, self.fps), "-pix_fmt", "yuv420p",
            "-g", str(2 * self.fps), "-r", str(self.fps),
            "-video_track_timescale", str(self.fps * 512),
        ]  # fmt: skip
        if urgent:
            args += ["-x264-params", URGENT_X264_PARAMS]
        if bitrate is not None:
            # Capped at the target too: with headroom above it, x264's one-pass ABR overshoots
            # high-detail content by 5–10 % (measured), which costs a second encode.
            args += ["-b:v", str(bitrate), "-maxrate", str(bitrate), "-bufsize", str(bitrate)]
        else:
            args += ["-crf", str(self.crf)]
            if max_bitrate is not None:
                bufsize = int(max_bitrate * CLIP_VBV_SECONDS)
                args += ["-maxrate", str(max_bitrate), "-bufsize", str(bufsize)]
        return [*args, "-movflags", "+faststart", "-f", "mp4"]

    def _matches(self, info: MediaInfo) -> bool:
        return (
            info.codec == "h264"
            and info.pix_fmt == "yuv420p"
            and (info.width, info.height) == (self.width, self.height)
            and info.fps is not None
            and abs(info.fps - self.fps) < 0.01
            and not info.has_audio
        )

    # -- per clip ----------------------------------------------------------------------------

    async def normalize_clip(
        self,
        src: Path,
        dst: Path,
        duration: float,
        *,
        caption: str | None = None,
        words: Sequence[WordTiming] | None = None,
        captions: CaptionMode | str = CaptionMode.KARAOKE,
        language: str = "en",
        max_bitrate: int | None = None,
        urgent: bool = False,
        background: bool = False,
        progress: ProgressCallback | None = None,
        retime: bool = True,
        brand: BrandKit | None = None,
        end_card_s: float = 0.0,
        cta: str | None = None,
        card_note: str | None = None,
        framing: Framing = "cover",
    ) -> Path:
        """Retime `src` to exactly `duration` s at the composer's fps and size; text optional.

        `retime=False` (every video model but SVD): the clip plays at its own frame rate and is cut
        at `duration`, never stretched; a clip shorter than the scene holds its last frame.

        Every source frame gets an equal share of the duration (setpts on the frame index), then
        frames are duplicated (or motion-interpolated) up to the constant output rate. The scene
        stays exactly `duration` long whatever the clip's own length, so the ad keeps its plan.

        `max_bitrate` caps the clip's average bits/s (VBV burst included): pass
        target_bitrate(ad duration, upload limit) and the stream-copied join will fit the limit.
        Without it, quality is constant (CRF) and size follows the content.

        `urgent`: the finished ad is waiting on this clip alone, so x264 spends less on analysis
        (same stream headers, slightly lower quality; see URGENT_X264_PARAMS). `background`: nobody
        waits for this cut yet (an early cut of another format), so ffmpeg runs at low priority.

        `caption` is the scene's headline (on_screen_text). `words` are the spoken words' times
        from the scene's start: captions 2–3 words at a time, the spoken one highlighted
        (`captions="karaoke"`), the same groups unlit ("plain"), or none ("off", or no words).
        Both are burned by libass with the bundled font (pipeline/captions.py); text the font
        lacks is left out (captions.uncovered_scripts says which). `language` is the text's
        language; the one bundled font covers every language we caption, so it only documents
        the call for now.

        `brand`: the text in the kit's font and colours, and its logo as a watermark in its
        corner. `end_card_s` > 0 (the ad's last scene): its last `end_card_s` s become the end
        card (pipeline/end_card.py), within `duration`, saying the kit's CTA or else `cta`, and
        `card_note` in small print at its foot (an offline preview says so there).
        Without a brand the text looks as it always has and there is no logo or card.

        `framing` is how a picture of another shape fills the frame: "cover" crops it centred,
        "blur-fill" shows it whole, centred, over a blurred, dimmed copy of itself (see `_framing`).
        """
        src, dst = Path(src), Path(dst)
        if duration <= 0:
            raise ValueError(f"duration must be positive (got {duration})")
        info = await probe(src, count_frames=True, timeout=self.timeout)
        frames_in = info.frames or (round(info.duration_s * info.fps) if info.duration_s and info.fps else 0)
        if frames_in < 1 or info.width is None:
            raise ComposeError(f"The clip {src.name} has no video frames.")
        frames_out = max(1, round(duration * self.fps))
        per_frame = frames_out / self.fps / frames_in  # seconds each source frame stays on screen
        if not retime and info.fps:
            per_frame = 1 / info.fps
        maxrate = clip_maxrate(max_bitrate, frames_out / self.fps) if max_bitrate else None

        w, h, fps = self.width, self.height, self.fps
        chain = [f"setpts=N*{per_frame:.9f}/TB"]
        if self.interpolate and frames_in > 1:
            # Interpolate before scaling: mci costs per pixel and SVD clips are smaller than output.
            chain.append(f"minterpolate=fps={fps}:mi_mode=mci:mc_mode=aobmc:me_mode=bidir:vsbmc=1")
        chain += [
            *_framing(framing, w, h),
            "setsar=1",
            f"fps={fps}",
            # The last source frame must last its full share too; -frames:v trims the excess.
            "tpad=stop_mode=clone:stop_duration=2",
        ]
        dst.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.ExitStack() as scratch:
            tmp = scratch.enter_context(scratch_path(dst, ".mp4"))
            ass_path = scratch.enter_context(scratch_path(dst, ".ass"))
            inputs = ["-i", str(src)]
            seconds = frames_out / fps
            style = caption_style(brand) if brand is not None else DEFAULT_STYLE
            layers = _BrandLayers(f"[0:v]{','.join(chain)}[base]", inputs)
            if brand is not None:
                card_frames = min(frames_out, round(max(0.0, end_card_s) * fps))
                await layers.add(brand, cta, card_note, w, h, fps, frames_out, card_frames, scratch, dst)
            script = await asyncio.to_thread(
                build_ass, w, h, seconds, headline=caption, words=words, mode=captions, style=style,
                until=layers.card_start, extra=layers.card_events,
            )  # fmt: skip
            ass = ""
            if script is not None:
                await asyncio.to_thread(ass_path.write_text, script, encoding="utf-8")
                # libass blends straight into the yuv420p frames (no RGB round trip), and only
                # ever with the bundled fonts: fontsdir, no system fonts.
                ass = f",ass=filename={filter_value(str(ass_path))}:fontsdir={filter_value(str(ty.FONTS_DIR))}"
            graph = f"{layers.graph};[base]null{ass},format=yuv420p[v]"
            # fontconfig then knows only the bundled folder: no system font, even as a fallback.
            env = {"FONTCONFIG_FILE": str(ty.FONTS_CONFIG)} if script is not None else None
            await run_ffmpeg(
                [
                    *inputs,
                    "-filter_complex", graph, "-map", "[v]",
                    "-frames:v", str(frames_out),
                    *self._h264_args(max_bitrate=maxrate, urgent=urgent),
                    str(tmp),
                ],
                timeout=self.timeout,
                progress=progress,
                duration_s=duration,
                env=env,
                background=background,
            )  # fmt: skip
            await asyncio.to_thread(replace_durably, tmp, dst)
        # What we just wrote, so the join need not ask ffmpeg again (it checks the file is unchanged).
        made = MediaInfo(frames_out / fps, w, h, float(fps), "h264", "yuv420p", frames_out)
        key, config = await asyncio.to_thread(lambda: (_file_key(dst), avc_decoder_config(dst)))
        if key is not None:
            self._made.pop(dst, None)
            self._made[dst] = (key, made, config)
            while len(self._made) > MADE_REMEMBERED:  # a bot runs for weeks: forget the oldest
                del self._made[next(iter(self._made))]
        if config is not None and self._config is None:
            self._config = config
        return dst

    async def _describe(self, path: Path) -> tuple[MediaInfo, bytes | None]:
        """A clip's MediaInfo and avcC: remembered when this composer made it and it is unchanged,
        else read from the file."""
        known = self._made.get(path)
        if known is not None and known[0] == await asyncio.to_thread(_file_key, path):
            return known[1], known[2]
        info, config = await asyncio.gather(
            probe(path, timeout=self.timeout), asyncio.to_thread(avc_decoder_config, path)
        )
        return info, config

    async def _decoder_config(self, near: Path) -> bytes | None:
        """The avcC this composer's recipe produces (one tiny encode beside `near` the first time)."""
        if self._config is None:
            with scratch_path(near, ".recipe.mp4") as tmp:
                await run_ffmpeg(
                    [
                        "-f", "lavfi", "-i", f"color=c=black:s={self.width}x{self.height}:r={self.fps}",
                        "-frames:v", "1", *self._h264_args(), str(tmp),
                    ],
                    timeout=self.timeout,
                )  # fmt: skip
                self._config = await asyncio.to_thread(avc_decoder_config, tmp)
        return self._config

    # -- the whole ad ------------------------------------------------------------------------

    async def join(
        self,
        clips: list[Path],
        dst: Path,
        *,
        byte_limit: int | None = None,
        progress: ProgressCallback | None = None,
        audio: Path | None = None,
    ) -> ComposeResult:
        """Concatenate normalised clips into `dst` (stream copy), re-encoding only to fit `byte_limit`.

        A clip that doesn't match this composer's format (say, normalised under another profile)
        is re-normalised first, keeping its length; that counts as an encode. Raises DoesNotFit
        when the limit would need less than the lowest acceptable bitrate.

        `audio` (the soundtrack from `mix_audio`) is muxed in as it is, cut to the video's length;
        its bytes count against `byte_limit`, so a re-encode gives the video only what is left.
        """
        if not clips:
            raise ComposeError("There are no clips to join.")
        clips = [Path(c) for c in clips]
        dst = Path(dst)
        dst.parent.mkdir(parents=True, exist_ok=True)
        described = await asyncio.gather(*(self._describe(c) for c in clips))
        want = await self._decoder_config(dst)
        encodes = 0
        with contextlib.ExitStack() as stack:
            parts: list[Path] = []
            for i, (clip, (info, config)) in enumerate(zip(clips, described, strict=True)):
                # Same format AND same SPS/PPS: a stream copy decodes every clip with the first's.
                if self._matches(info) and (want is None or config == want):
                    parts.append(clip)
                    continue
                if not info.duration_s:
                    raise ComposeError(f"The clip {clip.name} has no readable duration.")
                fixed = stack.enter_context(scratch_path(dst, f".part{i}.mp4"))
                await self.normalize_clip(clip, fixed, info.duration_s)
                encodes += 1
                parts.append(fixed)

            listing = stack.enter_context(scratch_path(dst, ".concat.txt"))
            text = "".join(concat_line(p.absolute()) for p in parts)
            await asyncio.to_thread(listing.write_text, text, encoding="utf-8")
            joined = stack.enter_context(scratch_path(dst, ".mp4"))
            sound: list[str] = []
            if audio is not None:
                # Cut at the video's planned length: the copy can only stop on a packet (~21 ms).
                planned = sum(info.duration_s or 0.0 for info, _ in described)
                cut = ["-t", f"{planned:.6f}"] if planned > 0 else []
                sound = [*cut, "-i", str(audio)]
            await run_ffmpeg(
                [
                    "-f", "concat", "-safe", "0", "-i", str(listing), *sound,
                    "-map", "0:v:0", *(["-map", "1:a:0"] if audio is not None else []),
                    "-c", "copy", "-map_metadata", "-1",
                    "-movflags", "+faststart", "-f", "mp4", str(joined),
                ],
                timeout=self.timeout,
            )  # fmt: skip
            info = await probe(joined, count_frames=True, timeout=self.timeout)
            duration = info.frames / self.fps if info.frames else (info.duration_s or 0.0)
            size = await asyncio.to_thread(os.path.getsize, joined)
            final = joined
            if byte_limit is not None and size > byte_limit:
                audio_bps = await asyncio.to_thread(_audio_bps, audio, duration) if audio is not None else 0
                final, size, n = await self._fit(
                    joined, dst, duration, byte_limit, stack, progress, audio_bps=audio_bps
                )
                encodes += n
            await asyncio.to_thread(replace_durably, final, dst)
        if progress is not None:
            await progress(1.0)
        return ComposeResult(path=dst, bytes=size, duration_s=round(duration, 3), encodes=encodes)

    async def _fit(
        self,
        src: Path,
        dst: Path,
        duration: float,
        byte_limit: int,
        stack: contextlib.ExitStack,
        progress: ProgressCallback | None,
        *,
        audio_bps: int = 0,
    ) -> tuple[Path, int, int]:
        """Re-encode `src`'s video at the bitrate the limit allows (its audio, if any, is copied),
        stepping down if x264 overshoots."""
        bitrate = target_bitrate(duration, byte_limit, audio_bps=audio_bps)
        size = await asyncio.to_thread(os.path.getsize, src)
        for attempt in range(1, MAX_FIT_ENCODES + 1):
            if bitrate < MIN_VIDEO_BITRATE:
                # Don't spend an encode on a picture we would refuse to send. The size reported
                # is what the lowest acceptable quality would weigh (or the last real attempt).
                at_floor = int(((MIN_VIDEO_BITRATE + audio_bps) * duration / 8 + CONTAINER_OVERHEAD_BYTES) / 0.92)
                raise DoesNotFit(max(at_floor, byte_limit + 1) if attempt == 1 else size, byte_limit)
            w, h = fit_size(self.width, self.height, self.fps, bitrate)
            scale = ["-vf", f"scale={w}:{h}:flags=lanczos,setsar=1"] if (w, h) != (self.width, self.height) else []
            out = stack.enter_context(scratch_path(dst, f".fit{attempt}.mp4"))
            await run_ffmpeg(
                [
                    "-i",
                    str(src),
                    "-map",
                    "0:v:0",
                    "-map",
                    "0:a?",
                    *scale,
                    *self._h264_args(bitrate=bitrate, size=(w, h), copy_audio=audio_bps > 0),
                    str(out),
                ],
                timeout=self.timeout,
                progress=progress,
                duration_s=duration,
            )
            size = await asyncio.to_thread(os.path.getsize, out)
            if size <= byte_limit:
                return out, size, attempt
            # Overshoot: scale the video by how far off we were, and at least 15 % lower.
            audio_bytes = audio_bps * duration / 8
            bitrate = int(bitrate * min(0.85, (byte_limit * 0.92 - audio_bytes) / max(1.0, size - audio_bytes)))
        raise DoesNotFit(size, byte_limit)

    # -- the soundtrack -----------------------------------------------------------------------

    async def mix_audio(
        self,
        voice: Sequence[tuple[Path, float]],
        music: Path | None,
        duration: float,
        dest: Path,
    ) -> Path:
        """The ad's soundtrack: each voice file at its start second, the music ducked under them,
        faded, mastered to −14 LUFS / ≤ −1 dBTP, AAC-LC 48 kHz stereo, exactly `duration` s.

        Either side may be empty; with neither, the track is silence. See `pipeline.audio_mix`.
        """
        return await mix_soundtrack(voice, music, duration, Path(dest), timeout=self.timeout)

    # -- review aid --------------------------------------------------------------------------

    async def contact_sheet(self, images: list[Path], labels: list[str], dst: Path, *, title: str) -> Path:
        """A PNG grid of the scenes' seed images, numbered and labelled, under the ad's title.

        A missing image (its scene failed) gets a placeholder tile, so the sheet still shows
        the whole storyboard.
        """
        if len(labels) != len(images):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        dst = Path(dst)
        dst.parent.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(_draw_contact_sheet, [Path(p) for p in images], labels, dst, title)
        return dst


# -- Pillow work (runs in threads) -------------------------------------------------------------

SHEET_THUMB_W, SHEET_THUMB_H = 270, 480
SHEET_GAP = 24
SHEET_LABEL_H = 92
SHEET_TITLE_H = 96


def sheet_layout(count: int) -> tuple[int, int, int, int]:
    """(columns, rows, width, height) of a contact sheet for `count` images: two rows up to 8."""
    cols = max(1, min(4, math.ceil(count / 2))) if count <= 8 else 4
    rows = max(1, math.ceil(count / cols))
    width = cols * SHEET_THUMB_W + (cols + 1) * SHEET_GAP
    height = SHEET_TITLE_H + rows * (SHEET_THUMB_H + SHEET_LABEL_H) + (rows + 1) * SHEET_GAP
    return cols, rows, width, height


def _cover(img: Image.Image, w: int, h: int) -> Image.Image:
    scale = max(w / img.width, h / img.height)
    resized = img.resize(
        (max(w, round(img.width * scale)), max(h, round(img.height * scale))), Image.Resampling.LANCZOS
    )
    left, top = (resized.width - w) // 2, (resized.height - h) // 2
    return resized.crop((left, top, left + w, top + h))


def _draw_contact_sheet(images: list[Path], labels: list[str], dst: Path, title: str) -> None:
    cols, _, width, height = sheet_layout(len(images))
    bg, ink, dim = (18, 19, 24), (240, 240, 245), (150, 152, 165)
    sheet = Image.new("RGB", (width, height), bg)
    draw = ImageDraw.Draw(sheet)
    head = ty.fit_text(title or "Untitled ad", width - 2 * SHEET_GAP, size=44, min_size=24, max_lines=1)
    ty.draw_block(draw, head, x=SHEET_GAP, y=(SHEET_TITLE_H + SHEET_GAP - head.height) // 2, fill=ink,
                  align="left", weight=1)  # fmt: skip
    number_font = ty.font(26)
    for i, (path, label) in enumerate(zip(images, labels, strict=True)):
        col, row = i % cols, i // cols
        x = SHEET_GAP + col * (SHEET_THUMB_W + SHEET_GAP)
        y = SHEET_TITLE_H + SHEET_GAP + row * (SHEET_THUMB_H + SHEET_LABEL_H + SHEET_GAP)
        try:
            with Image.open(path) as im:
                thumb = _cover(im.convert("RGB"), SHEET_THUMB_W, SHEET_THUMB_H)
            sheet.paste(thumb, (x, y))
        except (OSError, ValueError):
            draw.rectangle((x, y, x + SHEET_THUMB_W - 1, y + SHEET_THUMB_H - 1), fill=(34, 35, 42), outline=dim)
            missing = ty.fit_text("no image", SHEET_THUMB_W - 20, size=24, min_size=16, max_lines=1)
            ty.draw_block(draw, missing, x=x + SHEET_THUMB_W / 2, y=y + SHEET_THUMB_H / 2 - 12, fill=dim)
        # Scene number in a badge, the label beside it.
        badge = str(i + 1)
        by = y + SHEET_THUMB_H + 12
        bw = max(38, round(number_font.getlength(badge)) + 22)
        draw.rounded_rectangle((x, by, x + bw, by + 38), radius=19, fill=(235, 236, 242))
        draw.text(
            (x + bw / 2, by + 19),
            badge,
            font=number_font,
            fill=bg,
            anchor="mm",
            stroke_width=1,
            stroke_fill=bg,
        )
        text = ty.fit_text(label or f"Scene {i + 1}", SHEET_THUMB_W - bw - 10, size=22, min_size=16, max_lines=3)
        ty.draw_block(draw, text, x=x + bw + 10, y=by + 6, fill=ink, align="left")
    with atomic_path(dst, ".png") as tmp:
        sheet.save(tmp, format="PNG", optimize=False)
