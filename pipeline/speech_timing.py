"""When each spoken word starts and ends, relative to the start of its line.

Providers that give word timings return them; for the others the measured length of the line is
split across its words in proportion to their length (never a speech-recognition model).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class WordTiming:
    word: str
    start: float  # seconds from the start of the line
    end: float


def proportional_word_timings(text: str, duration: float, *, lead_in: float = 0.0) -> tuple[WordTiming, ...]:
    """Spread `duration` seconds over the words of `text`, each in proportion to its length.

    A word's weight is its letters plus one (the gap after it), so short words still get time.
    """
    words = text.split()
    if not words or duration <= 0:
        return ()
    weights = [len(w) + 1 for w in words]
    total = sum(weights)
    span = max(0.0, duration - lead_in)
    timings: list[WordTiming] = []
    t = lead_in
    for word, weight in zip(words, weights, strict=True):
        length = span * weight / total
        timings.append(WordTiming(word, round(t, 3), round(t + length, 3)))
        t += length
    return tuple(timings)
