"""The language guess for short texts: script first, then stop words and accents."""

from __future__ import annotations

import pytest

from tideflow.media.language import detect_language


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("渡轮每天早上出发", "zh"),
        ("フェリーは毎朝出発します", "ja"),
        ("El transbordador sale cada mañana", "es"),
        ("The ferry leaves every morning", "en"),
        ("Der Zug fährt um neun Uhr ab", "de"),
        ("Harbor Bridge 1932", "en"),
    ],
)
def test_a_short_text_gets_its_language(text: str, expected: str) -> None:
    assert detect_language(text) == expected


def test_nothing_to_tell_gives_the_default() -> None:
    assert detect_language("", default="xx") == "xx"
    assert detect_language("1932 — 2026", default="xx") == "xx"
