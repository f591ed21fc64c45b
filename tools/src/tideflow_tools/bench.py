"""The common result writer of ``tools/bench/*.py`` (DESIGN §5).

Every benchmark writes ``bench-results/<name>.json`` with at least ``name``, ``machine``
(cores, memory, GPU or "none"), ``metrics`` and ``goals``; a goal is
``{"value": number, "target": "≥ 5", "met": bool}`` and a missed goal is written as missed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

__all__ = ["Goal", "at_least", "at_most", "machine_info", "say", "sized_options", "write_result"]


@dataclass(frozen=True, kw_only=True)
class Goal:
    """A benchmark goal and whether this run met it."""

    value: float
    """The measured figure."""
    target: str
    """The bound it must meet, as people read it: ``"≥ 5"``, ``"≤ 1.0"``."""
    met: bool
    """Whether ``value`` meets ``target``."""


def say(message: str) -> None:
    """A benchmark's progress line, on stderr (stdout is left to what a script prints)."""
    print(message, file=sys.stderr, flush=True)


def at_least(value: float, bound: float) -> Goal:
    """A goal met when ``value >= bound``."""
    return Goal(value=round(value, 4), target=f"≥ {bound:g}", met=value >= bound)


def at_most(value: float, bound: float) -> Goal:
    """A goal met when ``value <= bound``; ``bound`` is written with one decimal at least."""
    shown = f"{bound:.1f}" if float(bound).is_integer() else f"{bound:g}"
    return Goal(value=round(value, 4), target=f"≤ {shown}", met=value <= bound)


def _gpus() -> list[str]:
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(
            ["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.stdout.splitlines() if line.strip()]


def machine_info() -> dict[str, Any]:
    """Cores, memory (GiB), GPUs (or "none"), Python and platform of this machine."""
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        memory = float("nan")
    gpus = _gpus()
    return {
        "cores": os.cpu_count(),
        "memory_gib": round(memory, 1),
        "gpu": gpus or "none",
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def write_result(
    out_dir: str | Path, name: str, *, metrics: dict[str, Any], goals: dict[str, Goal], **extra: Any
) -> Path:
    """Write ``<out_dir>/<name>.json`` and return its path; ``extra`` adds top-level fields."""
    path = Path(out_dir) / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "name": name,
        "machine": machine_info(),
        "metrics": metrics,
        "goals": {key: asdict(goal) for key, goal in goals.items()},
        **extra,
    }
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def sized_options(
    parser: argparse.ArgumentParser,
    argv: list[str] | None,
    *,
    quick: Mapping[str, Any],
    full: Mapping[str, Any],
) -> argparse.Namespace:
    """``parser``'s options (it has ``--quick``; the size options default to ``None``), each
    size not given on the command line taken from ``quick`` (with ``--quick``) or ``full``:
    ``--quick --seeds 3`` is a quick run with three seeds."""
    args = parser.parse_args(argv)
    for name, value in (quick if args.quick else full).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    return args
