"""Argument types for Tideflow's command lines (``argparse``'s ``type=``).

Each parses one command-line value and refuses a bad one with a message that names what was
expected, so that every app's command line answers bad input the same way (exit code 2):

>>> parser = argparse.ArgumentParser()
>>> _ = parser.add_argument("--fps", type=positive_number)
>>> _ = parser.add_argument("--pool", type=pool_size)
>>> parser.parse_args(["--fps", "0.5", "--pool", "1,4"])
Namespace(fps=0.5, pool=(1, 4))
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

__all__ = [
    "integer_in",
    "key_value",
    "pool_size",
    "positive_number",
    "priority_rule",
    "seconds",
]


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return float("nan")


def positive_number(text: str) -> float:
    """A number greater than 0 (``"0.5"``)."""
    value = _number(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0; got {text!r}")
    return value


def seconds(text: str) -> float:
    """A number of seconds, 0 or more."""
    value = _number(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected a number of seconds >= 0; got {text!r}")
    return value


def integer_in(low: int, high: int) -> Callable[[str], int]:
    """The type of an integer from ``low`` to ``high`` (both included)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = low - 1
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(
                f"expected an integer from {low} to {high}; got {text!r}"
            )
        return value

    parse.__name__ = f"integer from {low} to {high}"
    return parse


def pool_size(text: str) -> tuple[int, int]:
    """An actor pool's size: ``N`` (fixed) or ``MIN,MAX`` (autoscaled), as ``(MIN, MAX)``."""
    try:
        parts = [int(p) for p in text.split(",")]
    except ValueError:
        parts = []
    if len(parts) == 1:
        parts *= 2
    if len(parts) != 2 or not 1 <= parts[0] <= parts[1]:
        raise argparse.ArgumentTypeError(f"expected N or MIN,MAX (1 <= MIN <= MAX); got {text!r}")
    return parts[0], parts[1]


def priority_rule(text: str) -> tuple[str, int]:
    """A priority for the inputs a glob matches: ``GLOB=INTEGER``, or ``GLOB`` (priority 1)."""
    pattern, sep, value = text.rpartition("=")
    if not sep:
        pattern, value = text, "1"
    try:
        number = int(value)
    except ValueError:
        number = None
    if number is None or not pattern.strip():
        raise argparse.ArgumentTypeError(
            f"--priority {text!r}: expected GLOB or GLOB=INTEGER (e.g. 'urgent/*=10')"
        )
    return pattern, number


def key_value(option: str) -> Callable[[str], tuple[str, str]]:
    """The type of ``KEY=VALUE`` for ``option`` (named in the error), as ``(KEY, VALUE)``."""

    def parse(text: str) -> tuple[str, str]:
        key, sep, value = text.partition("=")
        if not sep or not key:
            raise argparse.ArgumentTypeError(f"{option} {text!r}: expected KEY=VALUE")
        return key, value

    parse.__name__ = "KEY=VALUE"
    return parse
