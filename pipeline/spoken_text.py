"""Rules for words that a voice will read aloud, and the English spoken form of what breaks them.

A TTS voice reads "lumen.example" as "lumenexample" or letter by letter, "$49" as "dollar forty-nine"
and "24/7" as "twenty-four slash seven". So a voiceover line is written the way a person says it; the
exact address and price stay in the scene's on-screen text. Pure functions, no I/O.
"""

from __future__ import annotations

import math
import re
import unicodedata

WORDS_PER_SECOND = 2.6  # brisk ad read; a line longer than this cannot be said in its scene
CJK_CHARS_PER_WORD = 2  # Japanese/Chinese have no spaces: two characters take about one word's time

_URL = re.compile(
    r"(?:https?://|www\.)\S+"  # an explicit address
    r"|\b[\w-]+(?:\.[\w-]+)*\.[a-z]{2,24}\b(?:/\S*)?"  # lumen.example, shop.lumen.co/pro
    r"|\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b",  # an e-mail address
)
_CURRENCY_SYMBOLS = "$€£¥₹₽₩₺₴₪฿"
_CURRENCY_CODES = ("USD", "EUR", "GBP", "JPY", "CHF", "CAD", "AUD", "RUB", "UAH", "INR", "CNY")
_PRICE = re.compile(
    rf"[{_CURRENCY_SYMBOLS}]\s?\d[\d,.]*|\d[\d,.]*\s?(?:[{_CURRENCY_SYMBOLS}]|(?:{'|'.join(_CURRENCY_CODES)})\b)"
)
# Characters a voice reads out by name, skips unpredictably, or that break captions downstream.
_BAD_CHARS = set("#@/\\*&%_{}[]|<>~^`=+") | set(_CURRENCY_SYMBOLS)
_ALLOWED_SYMBOLS = set("〜～")  # the Japanese wave dash is read as a pause, not as a symbol


def _is_cjk(ch: str) -> bool:
    cp = ord(ch)
    return 0x3040 <= cp <= 0x30FF or 0x3400 <= cp <= 0x4DBF or 0x4E00 <= cp <= 0x9FFF or 0xF900 <= cp <= 0xFAFF


def spoken_word_count(text: str) -> int:
    """Words as a voice says them: space-separated words, plus CJK characters two to a word."""
    cjk = sum(1 for ch in text if _is_cjk(ch))
    words = sum(1 for token in text.split() if any(ch.isalnum() and not _is_cjk(ch) for ch in token))
    return words + math.ceil(cjk / CJK_CHARS_PER_WORD)


def max_spoken_words(duration: float) -> int:
    """How many words fit a scene of `duration` seconds (rounded first: 2.6 × 5 is 13.000000000000002)."""
    return math.ceil(round(WORDS_PER_SECOND * duration, 6))


def _bad_symbols(text: str) -> list[str]:
    found = []
    for ch in text:
        if ch in _ALLOWED_SYMBOLS:
            continue
        if ch in _BAD_CHARS or unicodedata.category(ch) in ("Sc", "Sm", "Sk", "So"):
            if ch not in found:
                found.append(ch)
    return found


def voiceover_problem(text: str, duration: float) -> str | None:
    """Why `text` cannot be this scene's spoken line, or None. The caller names the scene."""
    if not text.strip():
        return "the voiceover line is empty: write the words spoken in this scene"
    if m := _URL.search(text):
        return (
            f"the voiceover line contains the web address “{m.group(0)}”: write it as it is said "
            "(“lumen dot example”) and keep the exact address in on_screen_text"
        )
    if m := _PRICE.search(text):
        return (
            f"the voiceover line contains the price “{m.group(0).strip()}”: write it in words "
            "(“forty-nine dollars”) and keep the figure in on_screen_text"
        )
    if bad := _bad_symbols(text):
        shown = " ".join(f"“{ch}”" for ch in bad[:5])
        return f"the voiceover line contains {shown}, which a voice reads badly: write it in words"
    words, limit = spoken_word_count(text), max_spoken_words(duration)
    if words > limit:
        return (
            f"the voiceover line has {words} words; at most {limit} can be said in {duration:g} s "
            f"({WORDS_PER_SECOND:g} words a second): shorten it or lengthen the scene"
        )
    return None


# -- the English spoken form ---------------------------------------------------------------------------

_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
         "sixteen seventeen eighteen nineteen").split()  # fmt: skip
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = ((1_000_000_000, "billion"), (1_000_000, "million"), (1_000, "thousand"))
_CURRENCY_WORDS = {
    "$": ("dollar", "dollars", "cent", "cents"), "USD": ("dollar", "dollars", "cent", "cents"),
    "CAD": ("dollar", "dollars", "cent", "cents"), "AUD": ("dollar", "dollars", "cent", "cents"),
    "€": ("euro", "euros", "cent", "cents"), "EUR": ("euro", "euros", "cent", "cents"),
    "£": ("pound", "pounds", "penny", "pence"), "GBP": ("pound", "pounds", "penny", "pence"),
    "¥": ("yen", "yen", "sen", "sen"), "JPY": ("yen", "yen", "sen", "sen"),
    "₹": ("rupee", "rupees", "paisa", "paise"), "INR": ("rupee", "rupees", "paisa", "paise"),
    "₽": ("ruble", "rubles", "kopek", "kopeks"), "RUB": ("ruble", "rubles", "kopek", "kopeks"),
    "CHF": ("franc", "francs", "centime", "centimes"), "CNY": ("yuan", "yuan", "fen", "fen"),
    "₩": ("won", "won", "jeon", "jeon"), "₺": ("lira", "lira", "kuruş", "kuruş"),
    "₴": ("hryvnia", "hryvnias", "kopiyka", "kopiykas"), "UAH": ("hryvnia", "hryvnias", "kopiyka", "kopiykas"),
    "₪": ("shekel", "shekels", "agora", "agorot"), "฿": ("baht", "baht", "satang", "satang"),
}  # fmt: skip
_SYMBOL_WORDS = {"&": " and ", "%": " percent", "+": " plus ", "@": " at ", "=": " equals ", "/": " slash "}


def number_words(n: int) -> str:
    """12 → 'twelve', 1049 → 'one thousand forty-nine' (English, non-negative)."""
    if n < 20:
        return _ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _TENS[tens] + (f"-{_ONES[ones]}" if ones else "")
    if n < 1000:
        hundreds, rest = divmod(n, 100)
        return f"{_ONES[hundreds]} hundred" + (f" {number_words(rest)}" if rest else "")
    for scale, name in _SCALES:
        if n >= scale:
            head, rest = divmod(n, scale)
            return f"{number_words(head)} {name}" + (f" {number_words(rest)}" if rest else "")
    raise AssertionError("unreachable")


def _spoken_price(match: re.Match[str]) -> str:
    token = match.group(0).strip()
    unit = next((c for c in _CURRENCY_CODES if token.endswith(c)), None) or next(
        ch for ch in token if ch in _CURRENCY_SYMBOLS
    )
    digits = re.sub(r"[^\d.,]", "", token).rstrip(".,")
    # "1,299.99" / "1.299,99" / "49,99": the last separator followed by exactly two digits is the decimal one.
    whole, cents = digits, ""
    if m := re.fullmatch(r"(.*)[.,](\d{2})", digits):
        whole, cents = m.group(1), m.group(2)
    amount = int(re.sub(r"\D", "", whole) or "0")
    one, many, sub_one, sub_many = _CURRENCY_WORDS[unit]
    words = f"{number_words(amount)} {one if amount == 1 else many}"
    if cents and int(cents):
        c = int(cents)
        words += f" {number_words(c)} {sub_one if c == 1 else sub_many}"
    return f" {words} "


def _spoken_address(match: re.Match[str]) -> str:
    address = re.sub(r"^(?:https?://)?(?:www\.)?", "", match.group(0)).rstrip("/.")
    address = address.replace("@", " at ").replace(".", " dot ").replace("/", " slash ")
    address = address.replace("-", " dash ").replace("_", " underscore ")
    return f" {address} "


def _spoken_number(match: re.Match[str]) -> str:
    text = match.group(0).replace(",", "")
    if "." in text:
        whole, frac = text.split(".", 1)
        return f"{number_words(int(whole))} point {' '.join(_ONES[int(d)] for d in frac)}"
    return number_words(int(text))


def spoken_form(text: str, language: str = "en") -> str:
    """`text` rewritten so a voice reads it right: in English addresses, prices, percentages and symbols
    become words ("lumen.example" → "lumen dot example", "$49" → "forty-nine dollars"); in any other
    language those tokens are left out (we do not know how to say them there), the rest kept."""
    english = language == "en"
    text = _URL.sub(_spoken_address if english else " ", text)
    text = _PRICE.sub(_spoken_price if english else " ", text)
    if english:
        text = re.sub(r"(\d)\s*%", r"\1 percent", text)
        text = re.sub(r"(\d+)/(\d+)", lambda m: f"{m.group(1)} {m.group(2)}", text)  # 24/7 → twenty-four seven
        text = re.sub(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?", _spoken_number, text)
        for symbol, words in _SYMBOL_WORDS.items():
            text = text.replace(symbol, words)
    kept = "".join(" " if ch in _BAD_CHARS or ch in _bad_symbols(ch) else ch for ch in text)
    kept = re.sub(r"\s+([,.!?;:])", r"\1", " ".join(kept.split()))
    return kept.strip()
