"""`tideflow-rl`: the trainer's command line."""

from __future__ import annotations


def main(argv: list[str] | None = None) -> int:
    raise SystemExit("tideflow-rl: not built yet")
