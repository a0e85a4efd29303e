"""Which language an ad speaks: ISO 639-1 codes, their names, and a small offline detector.

The detector is deliberately plain (no downloaded model, no network): the Unicode script of the
letters settles most non-Latin languages, and counts of short function words ("the", "le", "der",
"el", "il", "o", "het") separate the common Latin-script ones. It only has to be right for product
descriptions of a sentence or more; anything it cannot place is English, which is what a user who
typed "Lumen 3000" would expect.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter, defaultdict

DEFAULT_LANGUAGE = "en"

# ISO 639-1 code → (English name, native name). The languages a marketing team plausibly writes in and
# that current TTS models speak; a code outside the table is refused with the list, not guessed at.
LANGUAGES: dict[str, tuple[str, str]] = {
    "af": ("Afrikaans", "Afrikaans"),
    "ar": ("Arabic", "العربية"),
    "bg": ("Bulgarian", "български"),
    "bn": ("Bengali", "বাংলা"),
    "ca": ("Catalan", "català"),
    "cs": ("Czech", "čeština"),
    "da": ("Danish", "dansk"),
    "de": ("German", "Deutsch"),
    "el": ("Greek", "Ελληνικά"),
    "en": ("English", "English"),
    "es": ("Spanish", "español"),
    "et": ("Estonian", "eesti"),
    "fa": ("Persian", "فارسی"),
    "fi": ("Finnish", "suomi"),
    "fr": ("French", "français"),
    "he": ("Hebrew", "עברית"),
    "hi": ("Hindi", "हिन्दी"),
    "hr": ("Croatian", "hrvatski"),
    "hu": ("Hungarian", "magyar"),
    "id": ("Indonesian", "Bahasa Indonesia"),
    "it": ("Italian", "italiano"),
    "ja": ("Japanese", "日本語"),
    "ko": ("Korean", "한국어"),
    "lt": ("Lithuanian", "lietuvių"),
    "lv": ("Latvian", "latviešu"),
    "ms": ("Malay", "Bahasa Melayu"),
    "nb": ("Norwegian Bokmål", "norsk bokmål"),
    "nl": ("Dutch", "Nederlands"),
    "no": ("Norwegian", "norsk"),
    "pl": ("Polish", "polski"),
    "pt": ("Portuguese", "português"),
    "ro": ("Romanian", "română"),
    "ru": ("Russian", "русский"),
    "sk": ("Slovak", "slovenčina"),
    "sl": ("Slovenian", "slovenščina"),
    "sr": ("Serbian", "српски"),
    "sv": ("Swedish", "svenska"),
    "sw": ("Swahili", "Kiswahili"),
    "ta": ("Tamil", "தமிழ்"),
    "th": ("Thai", "ไทย"),
    "tl": ("Tagalog", "Tagalog"),
    "tr": ("Turkish", "Türkçe"),
    "uk": ("Ukrainian", "українська"),
    "ur": ("Urdu", "اردو"),
    "vi": ("Vietnamese", "Tiếng Việt"),
    "zh": ("Chinese", "中文"),
}


def language_name(code: str) -> str:
    """'fr' → 'French'; an unknown code is shown as itself."""
    return LANGUAGES.get(code, (code, code))[0]


def lines_language_note(asked: str | None, written: str | None) -> str | None:
    """Said when a storyboard's lines are not in the language the request asked for (the offline
    writer's English fallback); None when they are, or when either is unknown."""
    if asked is None or written is None or asked == written:
        return None
    return (
        f"Lines are in {language_name(written)}: the storyboard writer has no {language_name(asked)} lines; "
        "edit a scene to write one yourself."
    )


def normalise_language(value: str) -> str:
    """A user's way of naming a language → its ISO 639-1 code ('FR', 'fr-CA', 'pt_BR', 'French', 'français')."""
    text = value.strip()
    head = re.split(r"[-_\s]", text, maxsplit=1)[0].lower() if text else ""
    if head in LANGUAGES:
        return head
    folded = text.casefold()
    for code, (english, native) in LANGUAGES.items():
        if folded in (english.casefold(), native.casefold()):
            return code
    raise ValueError(f"unknown language {value.strip()!r}: use a two-letter ISO 639-1 code such as en, fr, de, es, ja")


# -- detection --------------------------------------------------------------------------------------

# Function words, lower-case. Words shared by several lists count for each of them, split evenly.
_STOP_WORDS: dict[str, frozenset[str]] = {
    "en": frozenset(
        "the and of to is a in that it for with you your on are this be at by from or an will can our "
        "its it's all more just into has have who what when every".split()
    ),
    "fr": frozenset(
        "le la les des du un une et est en pour que qui dans sur avec pas vous votre vos nous ce cette "
        "au aux plus son sa ses il elle mais ou tout très sans chaque l' d' c'est".split()
    ),
    "de": frozenset(
        "der die das und ist nicht ein eine einen mit für auf den dem zu von sich auch ihr ihre sie wir es "
        "im ins am aus bei nach oder wie dein deine jeden jede mehr über".split()
    ),
    "es": frozenset(
        "el la los las de y que en un una es por para con su sus del al se lo como más tu tus muy sin "
        "cada nuestro nuestra pero está son".split()
    ),
    "it": frozenset(
        "il lo la gli le di e che è un una per con non del della delle dei sono ti tuo tua più anche nel "
        "nella alla al ogni senza molto questo questa".split()
    ),
    "pt": frozenset(
        "o a os as de e que em um uma é para com não do da dos das no na seu sua você mais ao pelo pela "
        "cada sem muito este esta seus suas".split()
    ),
    "nl": frozenset(
        "de het een en van is dat op te in voor met niet zijn je jouw ook maar bij naar die dit deze "
        "elke zonder meer wij onze uw".split()
    ),
}
_SHARED: Counter[str] = Counter(w for words in _STOP_WORDS.values() for w in words)

# Letters that only some Latin-script languages use: a small nudge when function words tie.
_LETTER_HINTS: dict[str, str] = {
    "ñ": "es", "¿": "es", "¡": "es", "ã": "pt", "õ": "pt", "ß": "de", "ä": "de", "ö": "de", "ü": "de",
    "ç": "fr", "œ": "fr", "è": "fr", "ê": "fr", "à": "fr", "ù": "it", "ì": "it", "ò": "it", "ĳ": "nl",
}  # fmt: skip

_WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)?")


def _script(ch: str) -> str | None:
    """The writing system of one letter, coarse: enough to tell languages apart, nothing more."""
    cp = ord(ch)
    if 0x3040 <= cp <= 0x30FF or 0x31F0 <= cp <= 0x31FF or 0xFF66 <= cp <= 0xFF9F:
        return "kana"
    if 0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0xF900 <= cp <= 0xFAFF:
        return "han"
    if 0xAC00 <= cp <= 0xD7AF or 0x1100 <= cp <= 0x11FF or 0x3130 <= cp <= 0x318F:
        return "hangul"
    if not ch.isalpha():
        return None
    name = unicodedata.name(ch, "")
    for script in ("LATIN", "CYRILLIC", "GREEK", "ARABIC", "HEBREW", "THAI", "DEVANAGARI", "BENGALI", "TAMIL"):
        if name.startswith(script):
            return script.lower()
    return "other"


def _cyrillic_language(text: str) -> str:
    lowered = text.lower()
    if any(ch in lowered for ch in "іїєґ"):
        return "uk"
    if any(ch in lowered for ch in "ђћџљњ"):
        return "sr"
    return "ru"


def _arabic_language(text: str) -> str:
    if any(ch in text for ch in "ٹڈڑںےھ"):
        return "ur"
    if any(ch in text for ch in "پچژگکی"):
        return "fa"
    return "ar"


def _latin_language(text: str) -> str:
    words = [w.lower().replace("’", "'") for w in _WORD.findall(text)]
    scores: defaultdict[str, float] = defaultdict(float)
    for word in words:
        for code, stop in _STOP_WORDS.items():
            if word in stop:
                scores[code] += 1.0 / _SHARED[word]
    for ch in text.lower():
        if hinted := _LETTER_HINTS.get(ch):
            scores[hinted] += 0.25
    if not scores:
        return DEFAULT_LANGUAGE
    best, score = max(scores.items(), key=lambda kv: (kv[1], kv[0] == DEFAULT_LANGUAGE))
    return best if score >= 1.0 else DEFAULT_LANGUAGE


def detect_language(text: str) -> str:
    """The ISO 639-1 code of the language `text` is most likely written in (English when unsure)."""
    counts: Counter[str] = Counter(s for ch in text if (s := _script(ch)))
    if not counts:
        return DEFAULT_LANGUAGE
    # Product names are often Latin inside other scripts ("Lumen — умная лампа"): the other script wins
    # as soon as it carries a real share of the letters.
    letters = sum(counts.values())
    non_latin = [(n, s) for s, n in counts.items() if s != "latin"]
    if non_latin:
        cjk = counts["kana"] + counts["han"] + counts["hangul"]
        if counts["kana"] and cjk >= letters * 0.25:  # any kana among CJK text means Japanese
            return "ja"
        if counts["hangul"] and cjk >= letters * 0.25:
            return "ko"
        if counts["han"] and cjk >= letters * 0.25:
            return "zh"
        n, script = max(non_latin)
        if n >= letters * 0.3:
            return {
                "cyrillic": _cyrillic_language(text), "greek": "el", "arabic": _arabic_language(text),
                "hebrew": "he", "thai": "th", "devanagari": "hi", "bengali": "bn", "tamil": "ta",
            }.get(script, DEFAULT_LANGUAGE)  # fmt: skip
    return _latin_language(text)
