"""Voiceover lines the offline storyboard writer can say, per language, and fitting them to a scene.

Templates exist for English, French, German, Spanish, Russian and Japanese. For any other language
the writer falls back to English templates filled with the product's own words, and the storyboard
records that its lines are English (`Storyboard.language`), which the storyboard card shows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pipeline.spoken_text import max_spoken_words, spoken_form, voiceover_problem


@dataclass(frozen=True)
class LineTemplates:
    hooks: tuple[str, ...]
    intros: tuple[str, ...]  # {name}, {what}
    features: tuple[str, ...]  # {name}, {feat}, {Feat}
    ctas: tuple[str, ...]  # {name}: used when the request has no call to action we can say
    generic_features: tuple[str, ...]
    clause_split: str  # where one feature phrase ends and the next begins
    lead: str  # what comes between the name and the first phrase ("is a", "est une", "は、")
    meet: str  # the intro's on-screen text
    cjk: bool = False


LINES: dict[str, LineTemplates] = {
    "en": LineTemplates(
        meet="Meet {name}",
        hooks=("Still putting up with the old way?", "What if {name} changed everything?",
               "Stop scrolling: meet {name}.", "You have never seen {name} like this."),
        intros=("Meet {name}: {what}.", "This is {name}: {what}.", "Say hello to {name}: {what}."),
        features=("{Feat}.", "{Feat}, thanks to {name}.", "And yes: {feat}.", "With {name}: {feat}."),
        ctas=("Get {name} today.", "Try {name} now.", "{name}. Get yours today."),
        generic_features=("designed for everyday life", "made to last", "effortless to use", "loved by its users"),
        clause_split=r",|;|\.\s|\sand\s|\swith\s|\sthat\s",
        lead=r"^\s*[—–:,-]?\s*(?:is\s+|are\s+)?(?:an?\s+|the\s+)?",
    ),
    "fr": LineTemplates(
        meet="Voici {name}",
        hooks=("Toujours à faire comme avant ?", "Et si {name} changeait tout ?", "Stop ! Voici {name}.",
               "Vous n'avez jamais vu {name} comme ça."),
        intros=("Voici {name} : {what}.", "Découvrez {name} : {what}."),
        features=("{Feat}.", "Avec {name} : {feat}.", "Et en plus : {feat}."),
        ctas=("Procurez-vous {name} dès aujourd'hui.", "Essayez {name} maintenant."),
        generic_features=("pensé pour la vie de tous les jours", "fait pour durer", "simple à utiliser"),
        clause_split=r",|;|\.\s|\set\s|\savec\s|\squi\s",
        lead=r"^\s*[—–:,-]?\s*(?:est\s+)?(?:une?\s+|la\s+|le\s+|l')?",
    ),
    "de": LineTemplates(
        meet="Das ist {name}",
        hooks=("Immer noch wie früher?", "Was, wenn {name} alles ändert?", "Stopp! Das ist {name}.",
               "So hast du {name} noch nie gesehen."),
        intros=("Das ist {name}: {what}.", "Entdecke {name}: {what}."),
        features=("{Feat}.", "Mit {name}: {feat}.", "Und dazu: {feat}."),
        ctas=("Hol dir {name} noch heute.", "Probier {name} jetzt aus."),
        generic_features=("für jeden Tag gemacht", "gebaut, um lange zu halten", "ganz einfach zu bedienen"),
        clause_split=r",|;|\.\s|\sund\s|\smit\s",
        lead=r"^\s*[—–:,-]?\s*(?:ist\s+)?(?:eine?\s+|die\s+|der\s+|das\s+)?",
    ),
    "es": LineTemplates(
        meet="Te presentamos {name}",
        hooks=("¿Sigues haciéndolo como antes?", "¿Y si {name} lo cambiara todo?", "Para un momento: esto es {name}.",
               "Nunca has visto {name} así."),
        intros=("Te presentamos {name}: {what}.", "Esto es {name}: {what}."),
        features=("{Feat}.", "Con {name}: {feat}.", "Y además: {feat}."),
        ctas=("Consigue {name} hoy mismo.", "Prueba {name} ahora."),
        generic_features=("pensado para el día a día", "hecho para durar", "fácil de usar"),
        clause_split=r",|;|\.\s|\sy\s|\scon\s|\sque\s",
        lead=r"^\s*[—–:,-]?\s*(?:es\s+)?(?:una?\s+|el\s+|la\s+)?",
    ),
    "ru": LineTemplates(
        meet="Знакомьтесь: {name}",
        hooks=("Всё ещё по-старому?", "А что, если {name} изменит всё?", "Стоп! Это {name}.",
               "Таким {name} вы ещё не видели."),
        intros=("Знакомьтесь, {name}: {what}.", "Это {name}: {what}."),
        features=("{Feat}.", "С {name}: {feat}.", "А ещё: {feat}."),
        ctas=("Попробуйте {name} уже сегодня.", "Закажите {name} прямо сейчас."),
        generic_features=("создан для каждого дня", "сделан на долгие годы", "прост в использовании"),
        clause_split=r",\s*(?:котор\w+\s+)?|;|\.\s|\sи\s|\sс\s",
        lead=r"^\s*[—–:,-]?\s*(?:это\s+)?",
    ),
    "ja": LineTemplates(
        meet="{name}、登場",
        hooks=("まだ昔のやり方ですか？", "{name}がすべてを変えるとしたら？", "ちょっと待って。{name}です。",
               "こんな{name}、見たことない。"),
        intros=("{name}。{what}。", "それが{name}。{what}。"),
        features=("{feat}。", "{name}なら、{feat}。", "さらに、{feat}。"),
        ctas=("今すぐ{name}を手に入れよう。", "{name}を今日から。"),
        generic_features=("毎日の暮らしのために", "長く使えるつくり", "かんたんに使える"),
        clause_split=r"[、。，；]",
        lead=r"^\s*[—–:,-]?\s*[はがも]?[、]?\s*",
        cjk=True,
    ),
}  # fmt: skip

_NAME_SPLIT = {
    "en": r"\s[—–-]\s|[:,.;!?(]|\s(?:is|are|helps|lets|makes)\s",
    "ja": r"\s[—–-]\s|[:,.;!?(、。，：！？]|\s*(?:は|が)",
}


def templates_for(language: str) -> tuple[str, LineTemplates]:
    """The language the lines will be in, and its templates (English when there are none)."""
    if language in LINES:
        return language, LINES[language]
    return "en", LINES["en"]


def product_name(text: str, language: str = "en") -> str:
    """The leading name of a description: 'Lumen — a smart desk lamp…' → 'Lumen'."""
    pattern = _NAME_SPLIT.get(language, _NAME_SPLIT["en"])
    head = re.split(pattern, text, maxsplit=1)[0].strip()
    words = head.split()
    if not words:
        return "Our product"
    return " ".join(words[:4])[:40]


def features(text: str, name: str, language: str = "en") -> list[str]:
    """Feature phrases: the clauses of the description after the name."""
    _, lines = templates_for(language) if language in LINES else (language, LINES["en"])
    body = text[len(name) :] if text.startswith(name) else text
    body = re.sub(lines.lead, "", body)
    parts = [p.strip(" .!。") for p in re.split(lines.clause_split, body)]

    def long_enough(p: str) -> bool:
        return len(p) >= 4 if lines.cjk else len(p.split()) >= 2

    found = [p for p in parts if long_enough(p)][:4]
    for extra in lines.generic_features:
        if len(found) >= 2:
            break
        found.append(extra)
    return found


def first_clause(text: str, name: str, language: str) -> str:
    """What the product is, in the user's words: the description's first clause after the name."""
    lines = LINES.get(language, LINES["en"])
    body = text[len(name) :] if text.startswith(name) else text
    body = re.sub(r"^\s*[—–:,-]?\s*(?:is\s+|[はがも][、]?)?", "", body)
    return re.split(r"[,;.!?。、，！？]", body, maxsplit=1)[0].strip() or lines.generic_features[0]


def trimmed(phrase: str, words: int, cjk: bool) -> str:
    if cjk and " " not in phrase.strip():
        return phrase[: words * 2]
    return " ".join(phrase.split()[:words])


def fit_line(candidates: list[str], duration: float, language: str, *, fallback: str) -> str:
    """The first candidate that is a valid spoken line for this scene once made speakable, else
    `fallback` (a template without user words, always valid) cut to fit."""
    for text in candidates:
        line = spoken_form(text, language)
        if line and voiceover_problem(line, duration) is None:
            return line
    line = spoken_form(fallback, language)
    while line and voiceover_problem(line, duration) is not None:
        line = trimmed(line, max_spoken_words(duration) - 1, cjk=False) if " " in line else line[:-1]
    return line


def rotated(options: tuple[str, ...], start: int) -> list[str]:
    start %= len(options)
    return list(options[start:] + options[:start])


def capitalised(text: str) -> str:
    return text[:1].upper() + text[1:]
