"""The progress display: a live table on a terminal; off a terminal nothing by default, and
plain lines when progress is asked for (a log file, CI, a program reading stderr)."""

from __future__ import annotations

import io

from tideflow.streaming._metrics import JobResult, StageMetrics
from tideflow.streaming._progress import ProgressDisplay


def _result(rows_out: int) -> JobResult:
    stages = {
        "parse": StageMetrics(name="parse", rows_in=rows_out + 2, rows_out=rows_out),
        "embed": StageMetrics(name="embed", rows_in=rows_out, rows_out=rows_out),
    }
    return JobResult(job_id="j-1", run=2, rows_out=rows_out, dead_letters=2, stages=stages)


def test_off_a_terminal_nothing_is_shown_unless_progress_is_forced() -> None:
    stream = io.StringIO()
    display = ProgressDisplay(stream)

    with display:
        display.update(_result(10), final=True)

    assert not display.enabled and stream.getvalue() == ""


def test_forced_off_a_terminal_it_prints_plain_lines_at_most_one_an_interval() -> None:
    stream = io.StringIO()
    display = ProgressDisplay(stream, line_interval_s=3600)
    display.force()

    with display:
        display.update(_result(10))
        display.update(_result(20))  # within the interval: no line
        display.update(_result(1234), final=True)  # the last one always shows

    lines = stream.getvalue().splitlines()
    assert display.plain and len(lines) == 2
    assert lines[0].startswith("progress: job j-1 run 2 · 10 rows out")
    assert lines[1].startswith("progress: job j-1 run 2 · 1,234 rows out")
    assert "2 dead letters" in lines[1]
    assert lines[1].endswith("stages: parse 1,236→1,234, embed 1,234→1,234")
    assert "\x1b[" not in stream.getvalue()  # no terminal codes in a log
