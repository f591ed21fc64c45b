"""The check every configuration's ``__post_init__`` makes, with the message it raises."""

from __future__ import annotations

from typing import Any

from tideflow.rl.errors import ConfigError


def _check(condition: bool, where: str, expected: str, got: Any) -> None:
    if not condition:
        raise ConfigError(f"{where} must be {expected}; got {got!r}")
