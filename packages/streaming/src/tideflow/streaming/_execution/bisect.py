"""What becomes of a batch that failed: the one bisection rule for both ways a batch fails.

A batch fails by an exception of the stage's function (in the actor: the rows are split
there, without a round trip) or by killing its actor (the driver learns it from the pool:
the halves are sent again). Either way the same rule applies: first rule out the
neighbours (calls share an actor, so a crash may have been another batch's doing), then
retry the batch in halves — first half first, so output order is kept — down to the single
rows that fail, which go to the dead-letter output with their error.
"""

from __future__ import annotations

import enum

__all__ = ["Verdict", "halves", "on_failure"]


class Verdict(enum.Enum):
    """The next step for a batch that failed."""

    ISOLATE = "isolate"
    """Run it again alone: the failure may not be its rows' doing."""
    HALVE = "halve"
    """Run its two halves (:func:`halves`), each on its own."""
    DEAD = "dead"
    """It is one row, and it fails alone: a dead letter."""


def on_failure(rows: int, *, neighbours_suspect: bool = False) -> Verdict:
    """The next step for a failed batch of ``rows`` rows; ``neighbours_suspect``: it did not
    run alone, and the failure (an actor's death) may have come from another call."""
    if neighbours_suspect:
        return Verdict.ISOLATE
    return Verdict.HALVE if rows > 1 else Verdict.DEAD


def halves(rows: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """``(start, length)`` of the two halves of a batch of ``rows`` (> 1), in order."""
    if rows < 2:
        raise ValueError(f"a batch of {rows} row(s) has no halves")
    half = rows // 2
    return (0, half), (half, rows - half)
