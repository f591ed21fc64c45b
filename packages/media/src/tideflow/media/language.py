"""A small language guess for short texts (OCR lines, subtitle cues): script first, then
stop words. No model: good enough to tag segments and pick a filter, not a classifier.

>>> detect_language("渡轮每天早上出发")
'zh'
>>> detect_language("El transbordador sale cada mañana")
'es'
"""

from __future__ import annotations

import re

__all__ = ["detect_language"]

_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)
_STOP_WORDS = {
    "en": {
        "the",
        "and",
        "of",
        "to",
        "is",
        "in",
        "on",
        "for",
        "with",
        "at",
        "by",
        "from",
        "are",
        "was",
        "it",
        "this",
        "that",
        "has",
    },
    "es": {
        "el",
        "la",
        "los",
        "las",
        "de",
        "del",
        "que",
        "y",
        "en",
        "un",
        "una",
        "es",
        "por",
        "con",
        "para",
        "se",
        "su",
        "al",
    },
    "fr": {
        "le",
        "la",
        "les",
        "des",
        "du",
        "et",
        "est",
        "une",
        "un",
        "dans",
        "pour",
        "que",
        "qui",
        "sur",
        "au",
        "aux",
    },
    "de": {
        "der",
        "die",
        "das",
        "und",
        "ist",
        "ein",
        "eine",
        "mit",
        "den",
        "dem",
        "von",
        "zu",
        "im",
        "auf",
        "nicht",
    },
    "pt": {
        "o",
        "os",
        "as",
        "do",
        "da",
        "dos",
        "das",
        "e",
        "em",
        "um",
        "uma",
        "que",
        "com",
        "para",
        "por",
        "no",
        "na",
    },
    "it": {
        "il",
        "lo",
        "gli",
        "della",
        "di",
        "che",
        "e",
        "un",
        "una",
        "per",
        "con",
        "non",
        "sono",
        "nel",
        "alla",
    },
}
_ACCENTS = {"es": "ñ¿¡áéíóú", "fr": "àâçèêëîïôùûœ", "de": "äöüß", "pt": "ãõâêôç"}


def detect_language(text: str, default: str = "en") -> str:
    """A two-letter code for ``text``: ``zh``, ``ja``, ``ko``, ``ru``, ``ar`` by script;
    otherwise the Latin language whose stop words and accents it has most; ``default``
    when nothing tells."""
    if not text or not text.strip():
        return default
    counts = {"zh": 0, "ja": 0, "ko": 0, "ru": 0, "ar": 0, "latin": 0}
    for char in text:
        code = ord(char)
        if 0x3040 <= code <= 0x30FF:
            counts["ja"] += 1
        elif 0x4E00 <= code <= 0x9FFF or 0x3400 <= code <= 0x4DBF:
            counts["zh"] += 1
        elif 0xAC00 <= code <= 0xD7AF:
            counts["ko"] += 1
        elif 0x0400 <= code <= 0x04FF:
            counts["ru"] += 1
        elif 0x0600 <= code <= 0x06FF:
            counts["ar"] += 1
        elif char.isalpha():
            counts["latin"] += 1
    if counts["ja"]:
        return "ja"
    script = max(counts, key=lambda k: counts[k])
    if script != "latin" and counts[script] > 0:
        return script
    words = [w.lower() for w in _WORD.findall(text)]
    lowered = text.lower()
    scores = {
        language: sum(w in stop for w in words)
        + 2 * sum(c in lowered for c in _ACCENTS.get(language, ""))
        for language, stop in _STOP_WORDS.items()
    }
    best = max(scores, key=lambda k: scores[k])
    return best if scores[best] > 0 else default
