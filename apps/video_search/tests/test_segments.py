"""Timed text → segments (pure functions)."""

from __future__ import annotations

from tideflow_video_search.segments import Timed, frame_text, merge_timed, ocr_runs


def test_close_items_of_one_language_merge_up_to_the_length_limit() -> None:
    items = [
        Timed(0.0, 2.0, "one", "en"),
        Timed(2.5, 4.0, "two", "en"),
        Timed(4.2, 7.0, "three", "en"),  # would make the segment 7 s long
        Timed(7.1, 8.0, "cuatro", "es"),  # another language
        Timed(20.0, 21.0, "later", "es"),  # after a gap
    ]
    merged = merge_timed(items, max_seconds=6.0, max_gap_s=1.5)
    assert [(m.start_s, m.end_s, m.text, m.language) for m in merged] == [
        (0.0, 4.0, "one two", "en"),
        (4.2, 7.0, "three", "en"),
        (7.1, 8.0, "cuatro", "es"),
        (20.0, 21.0, "later", "es"),
    ]


def test_empty_texts_make_no_segment() -> None:
    assert merge_timed([Timed(0, 1, "  "), Timed(1, 2, "")]) == []


def test_a_slide_shown_over_several_frames_is_one_segment() -> None:
    frames = [(0.0, 1.0, "A slide"), (1.0, 4.0, "A  slide"), (4.0, 5.0, ""), (5.0, 6.0, "Next")]
    runs = ocr_runs(frames, language_of=lambda text: "en")
    assert [(r.start_s, r.end_s, r.text) for r in runs] == [
        (0.0, 4.0, "A slide"),
        (5.0, 6.0, "Next"),
    ]


def test_a_frame_reads_top_to_bottom_and_drops_symbol_only_lines() -> None:
    lines = [
        {"text": "second", "y0": 0.5, "x0": 0.1},
        {"text": "first", "y0": 0.1, "x0": 0.1},
        {"text": "●", "y0": 0.9, "x0": 0.5},
    ]
    assert frame_text(lines) == "first second"
