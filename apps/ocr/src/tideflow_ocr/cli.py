"""`video-ocr`: the app's command line."""

from __future__ import annotations


def main(argv: list[str] | None = None) -> int:
    raise SystemExit("video-ocr: not built yet")
