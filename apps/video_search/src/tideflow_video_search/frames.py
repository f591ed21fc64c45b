"""Query by frame's arithmetic on the stored frame rows: Hamming distances of their hashes,
and the runs of rows that show one picture (a shard boundary cuts a picture in two rows)."""

from __future__ import annotations

import numpy as np

__all__ = ["RUN_GAP_S", "RUN_MAX_BITS", "RUN_MAX_HIST", "frame_runs", "hamming", "popcount"]

RUN_GAP_S = 0.5
"""Frame rows of one video this close in time (or overlapping) can be one moment."""
RUN_MAX_BITS = 4
"""Frame rows whose hashes differ by more bits are different pictures (a JPEG of one
picture moves ≤ 4)."""
RUN_MAX_HIST = 0.1
"""Frame rows whose histograms are further apart (L1, 0–2) are different pictures."""


def frame_runs(frames: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Runs of frame rows (ordered by video, then start) that show one picture: the same
    video, touching in time (:data:`RUN_GAP_S`), the same on-screen text, hashes within
    :data:`RUN_MAX_BITS` and histograms within :data:`RUN_MAX_HIST` (L1) of the row before.
    ``run`` (an id per row), ``run_start`` and ``run_end`` (the run's bounds, per row)."""
    count = len(frames["phash"])
    start = np.asarray(frames["start_s"], np.float64)
    end = np.asarray(frames["end_s"], np.float64)
    phash = frames["phash"]
    same = (
        (frames["video_id"][1:] == frames["video_id"][:-1])
        & (start[1:] - end[:-1] <= RUN_GAP_S)
        & (frames["text"][1:] == frames["text"][:-1])
        & (popcount(np.bitwise_xor(phash[1:], phash[:-1])) <= RUN_MAX_BITS)
        & (np.abs(frames["hist"][1:] - frames["hist"][:-1]).sum(axis=1) <= RUN_MAX_HIST)
    )
    run = np.concatenate([[0], np.cumsum(~same)]).astype(np.int64)[:count]
    run_start = start.copy()
    run_end = end.copy()
    if count:
        firsts = np.flatnonzero(np.r_[True, run[1:] != run[:-1]])
        lasts = np.r_[firsts[1:] - 1, count - 1]
        for first, last in zip(firsts, lasts, strict=True):
            run_start[first : last + 1] = start[first : last + 1].min()
            run_end[first : last + 1] = end[first : last + 1].max()
    return {"run": run, "run_start": run_start, "run_end": run_end}


def hamming(hashes: np.ndarray, value: int) -> np.ndarray:
    """Differing bits of each int64 of ``hashes`` and ``value``."""
    return popcount(np.bitwise_xor(hashes.astype(np.int64), np.int64(value)))


def popcount(values: np.ndarray) -> np.ndarray:
    """Set bits of each int64."""
    xor = np.asarray(values, np.int64).view(np.uint64)
    counts = np.zeros(len(xor), np.int64)
    for shift in range(0, 64, 8):
        counts += _POPCOUNT[((xor >> np.uint64(shift)) & np.uint64(0xFF)).astype(np.int64)]
    return counts


_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], np.int64)
