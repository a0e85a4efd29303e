"""Languages by ISO 639-1 code: the names people read, and the names MiniMax's `language_boost` takes."""

from __future__ import annotations

LANGUAGE_NAMES: dict[str, str] = {
    "ar": "Arabic", "bg": "Bulgarian", "cs": "Czech", "da": "Danish", "de": "German", "el": "Greek",
    "en": "English", "es": "Spanish", "fa": "Persian", "fi": "Finnish", "fr": "French", "he": "Hebrew",
    "hi": "Hindi", "hr": "Croatian", "hu": "Hungarian", "id": "Indonesian", "it": "Italian", "ja": "Japanese",
    "ko": "Korean", "ms": "Malay", "nl": "Dutch", "no": "Norwegian", "pl": "Polish", "pt": "Portuguese",
    "ro": "Romanian", "ru": "Russian", "sk": "Slovak", "sv": "Swedish", "th": "Thai", "tr": "Turkish",
    "uk": "Ukrainian", "vi": "Vietnamese", "yue": "Cantonese", "zh": "Chinese",
}  # fmt: skip

# The `language_boost` choices of minimax/speech-02-turbo on Replicate besides "None" and "Automatic".
MINIMAX_LANGUAGE_BOOSTS: dict[str, str] = {
    "zh": "Chinese", "yue": "Chinese,Yue", "en": "English", "ar": "Arabic", "ru": "Russian", "es": "Spanish",
    "fr": "French", "pt": "Portuguese", "de": "German", "tr": "Turkish", "nl": "Dutch", "uk": "Ukrainian",
    "vi": "Vietnamese", "id": "Indonesian", "ja": "Japanese", "it": "Italian", "ko": "Korean", "th": "Thai",
    "pl": "Polish", "ro": "Romanian", "el": "Greek", "cs": "Czech", "fi": "Finnish", "hi": "Hindi",
}  # fmt: skip


def base_language(code: str) -> str:
    """ "pt-BR" → "pt", "EN" → "en"; "zh-yue"/"zh-HK" stay Cantonese."""
    code = code.strip().lower().replace("_", "-")
    if code in ("zh-yue", "zh-hk", "yue"):
        return "yue"
    return code.split("-", 1)[0]


def language_name(code: str) -> str:
    return LANGUAGE_NAMES.get(base_language(code), code)


def minimax_language_boost(code: str) -> str:
    """The boost for the request's language; "Automatic" (let the model detect) for any other."""
    return MINIMAX_LANGUAGE_BOOSTS.get(base_language(code), "Automatic")
