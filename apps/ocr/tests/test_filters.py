"""Layer 1 and layer 2 as pure functions: no Ray, no model."""

from __future__ import annotations

import pytest

from tideflow_ocr import OcrConfig, layer1, layer2
from tideflow_ocr.errors import ConfigError


def line(t: float, text: str, *, score: float = 0.95, y0: float = 0.2, h: float = 0.1, x0=0.1):
    return {"t": t, "text": text, "score": score, "x0": x0, "y0": y0, "x1": x0 + 0.5, "y1": y0 + h}


def frames(n: int, fps: float = 1.0) -> list[dict[str, float]]:
    return [{"t": (k + 0.5) / fps, "t0": k / fps, "t1": (k + 1) / fps} for k in range(n)]


def test_layer1_drops_low_scores_small_boxes_lines_outside_the_region_and_symbols():
    config = OcrConfig(min_score=0.6, min_box_height=0.05, region=(0.0, 0.0, 1.0, 0.8))
    kept = layer1(
        [
            line(0.5, "  keep   me "),
            line(0.5, "unsure", score=0.3),
            line(0.5, "tiny", h=0.02),
            line(0.5, "footer", y0=0.85),
            line(0.5, "●"),
        ],
        config,
    )
    assert [x["text"] for x in kept] == ["keep me"]


def test_layer2_merges_a_line_repeated_in_consecutive_frames_into_one_timed_segment():
    segs = layer2(frames(5), [line(t, "Hello world") for t in (1.5, 2.5, 3.5)], OcrConfig())
    assert [(s.text, s.start_s, s.end_s, s.frames) for s in segs] == [("Hello world", 1.0, 4.0, 3)]


def test_layer2_keeps_the_most_frequent_reading_of_a_noisy_line():
    lines = [line(0.5, "Chapter 1"), line(1.5, "Chapter l"), line(2.5, "Chapter 1")]
    segs = layer2(frames(3), lines, OcrConfig())
    assert [(s.text, s.start_s, s.end_s) for s in segs] == [("Chapter 1", 0.0, 3.0)]


def test_layer2_bridges_one_missed_frame_but_not_a_longer_gap():
    lines = [line(t, "News") for t in (0.5, 2.5, 6.5)]  # missed at 1.5; gone 3.5..5.5
    segs = layer2(frames(7), lines, OcrConfig(max_gap_frames=1))
    assert [(s.start_s, s.end_s) for s in segs] == [(0.0, 3.0), (6.0, 7.0)]


def test_layer2_drops_the_same_text_twice_in_one_frame_and_orders_lines_by_time_then_top():
    lines = [
        line(0.5, "second", y0=0.6),
        line(0.5, "first", y0=0.1),
        line(0.5, "first", y0=0.1, x0=0.2, score=0.9),
        line(1.5, "later", y0=0.0),
    ]
    segs = layer2(frames(2), lines, OcrConfig())
    assert [s.text for s in segs] == ["first", "second", "later"]
    assert [s.frames for s in segs] == [1, 1, 1]


def test_layer2_keeps_different_lines_shown_together_apart():
    lines = [line(t, text, y0=y) for t in (0.5, 1.5) for text, y in (("Top", 0.1), ("Tap", 0.5))]
    segs = layer2(frames(2), lines, OcrConfig(similarity=0.9))
    assert sorted(s.text for s in segs) == ["Tap", "Top"]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("fps", 0, "fps must be a number > 0"),
        ("langs", ("en", "klingon"), "need a model download"),
        ("region", (0.5, 0.0, 0.4, 1.0), "x0 < x1"),
        ("ocr_concurrency", (3, 2), "1 <= min <= max"),
        ("min_score", 1.5, r"in \[0, 1\]"),
        ("langs", None, "langs must be language codes; got None"),
        ("langs", 5, "langs must be language codes; got 5"),
    ],
)
def test_config_rejects_bad_values_saying_what_is_allowed(field, value, message):
    with pytest.raises(ConfigError, match=message):
        OcrConfig(**{field: value})
