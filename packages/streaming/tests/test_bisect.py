"""The one bisection rule for failed batches (exceptions and actor deaths), without Ray."""

from __future__ import annotations

import pytest

from tideflow.streaming._execution.bisect import Verdict, halves, on_failure


def test_a_batch_that_did_not_run_alone_is_first_run_alone():
    assert on_failure(8, neighbours_suspect=True) is Verdict.ISOLATE
    assert on_failure(1, neighbours_suspect=True) is Verdict.ISOLATE


def test_then_it_is_halved_down_to_the_single_rows_that_fail():
    assert on_failure(8) is Verdict.HALVE
    assert on_failure(2) is Verdict.HALVE
    assert on_failure(1) is Verdict.DEAD


def test_halves_cover_the_batch_in_order():
    assert halves(2) == ((0, 1), (1, 1))
    assert halves(7) == ((0, 3), (3, 4))
    with pytest.raises(ValueError, match="no halves"):
        halves(1)


def test_the_rule_finds_exactly_the_failing_rows_in_about_2k_log_n_runs():
    bad = {3, 4, 17}
    runs = 0
    found: list[int] = []

    def run(start: int, length: int) -> None:
        nonlocal runs
        runs += 1
        if not bad & set(range(start, start + length)):
            return
        if on_failure(length) is Verdict.DEAD:
            found.append(start)
            return
        for s, n in halves(length):
            run(start + s, n)

    run(0, 32)
    assert found == [3, 4, 17]  # in order
    assert runs <= 2 * len(bad) * 6
