"""User text made safe to show: markdown escaped, mentions defused, length capped.

Every message already goes out with `AllowedMentions.none()`, so nothing pings; this is the second
belt: `@everyone` in a product description must not even *look* like a mention, and `**` or `[x](y)`
in it must not restyle the embed.
"""

from __future__ import annotations

import re

import discord

ELLIPSIS = "…"
# Sends inherit the bot-wide default; edits must pass it explicitly (discord.py only merges the default
# into an edit that changes `content`), so every edit uses this.
NO_PINGS = discord.AllowedMentions.none()


def cap(text: str, limit: int) -> str:
    """Cut to `limit` characters, marking the cut."""
    if limit <= 0:
        return ""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + ELLIPSIS


# The characters Discord's markdown gives a meaning to anywhere, and the ones that only count at the start
# of a line (headings, quotes, lists). discord.py's `escape_markdown` escapes a masked link `[x](y)` with
# one backslash in front of a greedy match, which leaves `**bold**` and a second link inside that match
# live; escaping each character on its own leaves nothing to interpret. A backslash before punctuation is
# invisible once rendered.
_INLINE_MARKUP = re.compile(r"([\\*_~|`\[\]()<])")
_LINE_MARKUP = re.compile(r"^(\s*)([-#>+])", re.MULTILINE)
_NUMBERED_LIST = re.compile(r"^(\s*\d+)\.", re.MULTILINE)


def escape_markdown(text: str) -> str:
    text = _INLINE_MARKUP.sub(r"\\\1", text)
    text = _LINE_MARKUP.sub(r"\1\\\2", text)
    return _NUMBERED_LIST.sub(r"\1\\.", text)


def shown(text: str | None, limit: int) -> str:
    """User-supplied text for an embed or message: escaped, mention-free, at most `limit` characters."""
    if not text:
        return ""
    # Cap before escaping so an escape is never cut in half, then cap again for the added backslashes.
    safe = discord.utils.escape_mentions(escape_markdown(cap(text, limit)))
    return cap(safe, limit)


def duration(seconds: float) -> str:
    """'45 s', '2 min 05 s', '1 h 02 min'."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def mib(size: int) -> str:
    return f"{size / 1_048_576:.1f} MiB"
