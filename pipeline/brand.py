"""A team's brand kit: the name, colours, font, call to action, URL, logo and sound choices that
every ad of one Discord server (or one `brand.toml`) is drawn with.

Everything here is applied by our own rendering (captions, headline, watermark, end card), so a
brand never costs a prediction. The kit is validated where it enters (a slash command, a TOML
file) and then trusted: colours are `#rrggbb`, text has no mentions and no ASS override syntax
survives into the captions (the composer escapes it again anyway), URLs are http(s).

A job records the kit as it was at approval (`Job.brand`): a kit changed while a job runs applies
to the next ad, or to this one through a re-render.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from pipeline.captions import CaptionMode
from pipeline.moods import Mood

HEX_COLOUR = re.compile(r"^#?([0-9a-fA-F]{6})$")
# Discord mention syntax (<@id>, <@!id>, <@&role>, <#channel>) and the two mass pings.
_MENTION = re.compile(r"<(?:@[!&]?|#)\d+>|@(?:everyone|here)\b")

_URL = re.compile(r"^https?://[^\s/?#@]+\.[^\s/?#@]+(?:[/?#]\S*)?$", re.IGNORECASE)

NAME_MAX = 40
CTA_MAX = 60
URL_MAX = 120


class LogoCorner(StrEnum):
    TOP_LEFT = "top-left"
    TOP_RIGHT = "top-right"
    NONE = "none"


class EndCardStyle(StrEnum):
    COLOUR = "colour"  # the brand's primary colour
    BLUR = "blur"  # the CTA scene's last frame, blurred and darkened


# Bundled font choices: key (what /brand set font: and brand.toml say) → the font family libass
# and Pillow draw it with. Each family's files live in pipeline/fonts/ with their licence.
BRAND_FONTS: dict[str, str] = {
    "noto-sans": "Noto Sans",  # humanist sans, the default
    "noto-serif": "Noto Serif",  # a serif for a classic or premium look
    "bebas-neue": "Bebas Neue",  # condensed display capitals (lowercase is drawn as capitals)
    "league-spartan": "League Spartan",  # geometric, wide and heavy
}
DEFAULT_FONT = "noto-sans"


class BrandError(ValueError):
    """A brand value a user gave that cannot be used; the message says which and what to give."""


def normalise_colour(value: str, *, field: str) -> str:
    m = HEX_COLOUR.match(value.strip())
    if not m:
        raise BrandError(f"{field} must be a hex colour like #1a2b3c or 1a2b3c (got {value.strip()[:20]!r}).")
    return "#" + m.group(1).lower()


def check_text(value: str, *, field: str, limit: int) -> str:
    text = " ".join(value.split())
    if not text:
        raise BrandError(f"{field} is empty; give some text or reset it.")
    if len(text) > limit:
        raise BrandError(f"{field} is {len(text)} characters; at most {limit} fit on the end card.")
    if _MENTION.search(text):
        raise BrandError(f"{field} cannot contain mentions (@everyone, @here, <@…>); write the name instead.")
    return text


def check_url(value: str) -> str:
    url = value.strip()
    if not _URL.match(url):
        raise BrandError(f"url must start with http:// or https:// and name a site (got {url[:40]!r}).")
    if len(url) > URL_MAX:
        raise BrandError(f"url is {len(url)} characters; at most {URL_MAX} fit on the end card.")
    return url


class BrandKit(BaseModel):
    """One server's brand. Every field is optional but the colours, font and corner, whose
    defaults make an unbranded ad look like today's."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str | None = None
    primary: str = "#111827"
    accent: str = "#f59e0b"
    font: str = DEFAULT_FONT
    cta: str | None = None
    url: str | None = None
    voice: str | None = None  # a voice id of the configured voice provider
    music: str | None = None  # a mood name, or "none"; None: the ad's own mood
    captions: CaptionMode | None = None  # None: the process setting (JANT_CAPTIONS)
    logo_corner: LogoCorner = LogoCorner.TOP_RIGHT
    end_card: EndCardStyle = EndCardStyle.COLOUR
    # The validated, re-encoded PNG under the data directory (never a user's original file).
    logo_path: str | None = None

    @field_validator("primary", "accent", mode="before")
    @classmethod
    def _colour(cls, v: Any, info: Any) -> Any:
        return normalise_colour(v, field=info.field_name) if isinstance(v, str) else v

    @field_validator("name")
    @classmethod
    def _name(cls, v: str | None) -> str | None:
        return None if v is None else check_text(v, field="name", limit=NAME_MAX)

    @field_validator("cta")
    @classmethod
    def _cta(cls, v: str | None) -> str | None:
        return None if v is None else check_text(v, field="cta", limit=CTA_MAX)

    @field_validator("url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        return None if v is None else check_url(v)

    @field_validator("music")
    @classmethod
    def _music(cls, v: str | None) -> str | None:
        # Checked here, where the kit enters: a job must never meet a bed mood it cannot compose.
        if v is None:
            return None
        name = v.strip().lower()
        if name != "none" and name not in {m.value for m in Mood}:
            moods = ", ".join(m.value for m in Mood)
            raise BrandError(f"music must be a mood ({moods}) or none (got {v.strip()[:30]!r}).")
        return name

    @field_validator("font")
    @classmethod
    def _font(cls, v: str) -> str:
        if v not in BRAND_FONTS:
            raise BrandError(f"font must be one of {', '.join(sorted(BRAND_FONTS))} (got {v[:30]!r}).")
        return v

    @property
    def font_family(self) -> str:
        return BRAND_FONTS[self.font]

    @property
    def is_default(self) -> bool:
        return self == BrandKit()


class GuildPolicy(BaseModel):
    """What one server allows and may spend; set with /brand set by Manage Server or the approver
    role. None everywhere means the process settings apply."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    approver_role_id: int | None = None  # overrides JANT_APPROVER_ROLE for this server
    budget_daily_usd: float | None = Field(default=None, ge=0)
    budget_monthly_usd: float | None = Field(default=None, ge=0)
    allowed_video_models: tuple[str, ...] | None = None  # overrides JANT_ALLOWED_VIDEO_MODELS
