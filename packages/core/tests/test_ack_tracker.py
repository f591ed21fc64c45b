"""The record-level ack tracker: committable offsets from out-of-order acknowledgements."""

from __future__ import annotations

import random
import tracemalloc

import pytest

from tideflow.core.checkpoint import AckTracker, CheckpointError


def test_in_order_acks_advance_the_committable_offset() -> None:
    acks = AckTracker()
    acks.track_range(0, 100, 103)

    committable = []
    for offset in (100, 101, 102):
        acks.ack(0, offset)
        committable.append(acks.committable(0))

    assert committable == [101, 102, 103]


def test_out_of_order_acks_stop_at_the_first_unacked_offset() -> None:
    acks = AckTracker()
    for offset in range(10):
        acks.track(0, offset)

    for offset in (5, 9, 1, 0, 2, 7):
        acks.ack(0, offset)

    assert acks.committable(0) == 3
    assert acks.pending_count(0) == 4  # 3, 4, 6, 8
    assert acks.range_count(0) == 3  # [3, 5), [6, 7), [8, 9)
    acks.ack(0, 3)
    acks.ack(0, 4)
    assert acks.committable(0) == 6


def test_offsets_skipped_when_tracking_do_not_stall_the_watermark() -> None:
    acks = AckTracker()
    acks.track_range(0, 0, 3)
    acks.track_range(0, 5, 7)  # 3 and 4 are transaction markers: never emitted

    for offset in (6, 5):
        acks.ack(0, offset)
    assert acks.committable(0) == 0
    for offset in (2, 0, 1):
        acks.ack(0, offset)

    assert acks.committable(0) == 7


def test_nothing_pending_commits_past_the_last_tracked_offset() -> None:
    acks = AckTracker()
    acks.track(0, 41)
    acks.ack(0, 41)

    assert acks.committable(0) == 42
    assert acks.pending_count(0) == 0 and acks.range_count() == 0


def test_partitions_are_independent_and_keyed_by_any_hashable() -> None:
    acks = AckTracker()
    acks.track_range(("orders", 0), 0, 5)
    acks.track_range(("orders", 1), 10, 12)
    acks.ack(("orders", 0), 0)
    acks.ack(("orders", 1), 11)

    assert acks.committable_all() == {("orders", 0): 1, ("orders", 1): 10}
    assert acks.committable(("orders", 2)) is None
    assert acks.partitions == (("orders", 0), ("orders", 1))


def test_ack_range_passes_over_skipped_offsets_and_splits_ranges() -> None:
    acks = AckTracker()
    acks.track_range(0, 0, 10)
    acks.track_range(0, 12, 20)  # 10 and 11 skipped

    assert acks.ack_range(0, 8, 15) == 5  # 8, 9, 12, 13, 14
    assert acks.ack_range(0, 2, 4) == 2

    assert acks.committable(0) == 0
    assert acks.range_count(0) == 3  # [0, 2), [4, 8), [15, 20)
    assert acks.pending_count(0) == 2 + 4 + 5


def test_acking_an_offset_never_tracked_is_refused() -> None:
    acks = AckTracker(allow_duplicate_acks=True)
    acks.track_range(0, 0, 5)

    with pytest.raises(CheckpointError, match="the last tracked offset is 4"):
        acks.ack(0, 5)
    with pytest.raises(CheckpointError, match="the last tracked offset is None"):
        acks.ack(1, 0)


def test_duplicate_ack_is_refused_by_default() -> None:
    acks = AckTracker()
    acks.track_range(0, 0, 5)
    acks.ack(0, 3)

    with pytest.raises(CheckpointError, match="offset 3 not pending"):
        acks.ack(0, 3)

    assert acks.pending_count(0) == 4


def test_duplicate_ack_is_ignored_when_redeliveries_are_allowed() -> None:
    acks = AckTracker(allow_duplicate_acks=True)
    acks.track_range(0, 0, 5)

    assert acks.ack(0, 0) is True
    assert acks.ack(0, 0) is False
    assert acks.ack_range(0, 0, 1) == 0
    assert acks.committable(0) == 1


def test_tracked_offsets_must_increase() -> None:
    acks = AckTracker()
    acks.track_range(0, 10, 20)

    with pytest.raises(CheckpointError, match="offset 19 was tracked already, got 15"):
        acks.track(0, 15)


@pytest.mark.parametrize(("start", "end"), [(-1, 3), (5, 5), (True, 3)])
def test_invalid_offset_ranges_are_refused(start: int, end: int) -> None:
    with pytest.raises(CheckpointError, match="offset"):
        AckTracker().track_range(0, start, end)


def test_removed_partition_is_forgotten() -> None:
    acks = AckTracker()
    acks.track_range(7, 0, 3)

    acks.remove(7)

    assert acks.committable(7) is None and acks.committable_all() == {}


def test_a_million_offsets_with_few_gaps_fit_in_small_memory() -> None:
    total, window = 1_000_000, 1_000
    rng = random.Random(7)
    holes = set(rng.sample(range(total), 10))
    order = []  # out of order within each window of 1k; built before memory is traced
    for base in range(0, total, window):
        chunk = [o for o in range(base, base + window) if o not in holes]
        rng.shuffle(chunk)
        order += chunk
    acks = AckTracker()

    tracemalloc.start()
    try:
        acks.track_range(0, 0, total)
        max_ranges = 0
        for i, offset in enumerate(order):
            acks.ack(0, offset)
            if i % 97 == 0:
                max_ranges = max(max_ranges, acks.range_count())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert acks.range_count() == 10 and acks.pending_count(0) == 10
    assert acks.committable(0) == min(holes)
    assert max_ranges < window  # gaps, not records, take memory
    assert peak < 2 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB"
    for hole in sorted(holes, reverse=True):
        acks.ack(0, hole)
    assert acks.committable(0) == total and acks.range_count() == 0
