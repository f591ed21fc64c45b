"""Near-duplicate frames: what counts as the same picture, and the operator's rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from _media_helpers import (
    add_noise,
    frames_row,
    frames_table,
    jpeg_roundtrip,
    render_slide,
    sample_at_fps,
    write_video,
)

from tideflow.media.dedup import (
    HIST_BINS,
    DedupFrames,
    frame_signature,
    hamming,
    is_near_duplicate,
    signature_distance,
)
from tideflow.media.errors import ConfigError

SLIDE = "Quarterly results 2024\nRevenue grew 12 percent\nMargin 31 percent\nOutlook: stable"


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return is_near_duplicate(frame_signature(a), frame_signature(b))


def test_signature_is_a_signed_64_bit_hash_and_a_normalised_48_bin_histogram() -> None:
    signature = frame_signature(render_slide(SLIDE))
    assert -(2**63) <= signature.phash < 2**63
    assert signature.hist.dtype == np.float32
    assert signature.hist.shape == (HIST_BINS,)
    assert signature.hist.sum() == pytest.approx(1.0, abs=1e-5)


def test_hamming_counts_differing_bits_of_signed_hashes() -> None:
    assert hamming(0, 0) == 0
    assert hamming(-1, 0) == 64
    assert hamming(-(2**63), 0) == 1
    assert hamming(0b1011, 0b0001) == 2


def test_an_identical_frame_is_a_duplicate() -> None:
    slide = render_slide(SLIDE)
    assert _same(slide, slide.copy())


@pytest.mark.parametrize("sigma", [3.0, 8.0])
def test_a_noisy_copy_is_a_duplicate(sigma: float) -> None:
    slide = render_slide(SLIDE)
    assert _same(slide, add_noise(slide, sigma))


@pytest.mark.parametrize("quality", [30, 75])
def test_a_jpeg_recompressed_copy_is_a_duplicate(quality: int) -> None:
    slide = render_slide(SLIDE)
    assert _same(slide, jpeg_roundtrip(slide, quality))


@pytest.mark.parametrize(
    ("old", "new"), [("12", "13"), ("31", "37"), ("2024", "2023"), ("stable", "steady")]
)
def test_a_slide_with_one_changed_number_or_word_is_not_a_duplicate(old: str, new: str) -> None:
    assert not _same(render_slide(SLIDE), render_slide(SLIDE.replace(old, new)))


def test_a_changed_number_in_small_text_on_a_large_frame_is_not_a_duplicate() -> None:
    before = render_slide(SLIDE, size=(1280, 720), font_size=20)
    after = render_slide(SLIDE.replace("31", "37"), size=(1280, 720), font_size=20)
    assert not _same(before, after)


def test_hash_and_histogram_alone_cannot_see_a_changed_number() -> None:
    # Why the cell check exists: with it off, a one-number change looks identical.
    a = frame_signature(render_slide(SLIDE))
    b = frame_signature(render_slide(SLIDE.replace("31", "37")))
    assert is_near_duplicate(a, b, max_cell_diff=None)
    assert not is_near_duplicate(a, b)


def test_signature_distance_ranks_a_recompressed_copy_before_another_slide() -> None:
    slide = frame_signature(render_slide(SLIDE))
    copy = frame_signature(jpeg_roundtrip(render_slide(SLIDE), 50))
    other = frame_signature(render_slide("Agenda\n1. Introduction\n2. Results\n3. Questions"))
    assert signature_distance(slide, slide) == 0.0
    assert signature_distance(slide, copy) < signature_distance(slide, other)


def test_frames_of_different_sizes_are_not_duplicates() -> None:
    small = frame_signature(render_slide(SLIDE, size=(320, 180)))
    large = frame_signature(render_slide(SLIDE, size=(640, 360), font_size=36))
    assert not is_near_duplicate(small, large)


def test_operator_keeps_the_first_frame_of_a_run_and_stretches_its_span() -> None:
    a, b = render_slide("Slide one"), render_slide("Slide two")
    images = [a, add_noise(a, 3.0), a, b, b]
    spans = [{"t": k + 0.5, "t0": float(k), "t1": k + 1.0} for k in range(5)]
    out = DedupFrames()(frames_table([frames_row(images, spans)]))
    row = out.to_pylist()[0]
    assert row["frames"] == [
        {"t": 0.5, "t0": 0.0, "t1": 3.0},
        {"t": 3.5, "t0": 3.0, "t1": 5.0},
    ]
    assert row["pixels"] == [a.tobytes(), b.tobytes()]
    assert row["frames_sampled"] == 5
    assert len(row["phash"]) == len(row["hist"]) == 2
    assert row["phash"][0] == frame_signature(a).phash


def test_operator_output_columns_and_types() -> None:
    images = [render_slide("Slide one")]
    spans = [{"t": 0.5, "t0": 0.0, "t1": 1.0}]
    table = frames_table([frames_row(images, spans)])
    out = DedupFrames()(table)
    assert out.column_names == [*table.column_names, "phash", "hist", "frames_sampled"]
    assert out.schema.field("phash").type == pa.list_(pa.int64())
    assert out.schema.field("hist").type == pa.list_(pa.list_(pa.float32(), HIST_BINS))
    assert out.schema.field("frames_sampled").type == pa.int32()
    assert out.schema.field("frames").type == table.schema.field("frames").type


def test_rows_with_an_error_pass_through_untouched() -> None:
    a = render_slide("Slide one")
    spans = [{"t": 0.5, "t0": 0.0, "t1": 1.0}, {"t": 1.5, "t0": 1.0, "t1": 2.0}]
    failed = frames_row([a, a], spans, error="VideoError: truncated")
    good = frames_row([a, a], spans)
    out = DedupFrames()(frames_table([failed, good])).to_pylist()
    assert out[0]["frames"] == spans
    assert len(out[0]["pixels"]) == 2
    assert out[0]["phash"] is None and out[0]["frames_sampled"] is None
    assert len(out[1]["frames"]) == 1


def test_an_empty_batch_keeps_the_schema() -> None:
    table = frames_table([])
    out = DedupFrames()(table)
    assert out.num_rows == 0
    assert "phash" in out.column_names


@pytest.mark.parametrize(
    "kwargs", [{"max_hamming": 65}, {"max_hist_l1": -0.1}, {"max_cell_diff": 300.0}]
)
def test_thresholds_out_of_range_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        DedupFrames(**kwargs)  # type: ignore[arg-type]


def test_a_slide_video_sampled_at_1_fps_keeps_5x_fewer_frames(tmp_path: Path) -> None:
    slides = [render_slide(SLIDE.replace("12", str(n))) for n in (12, 13, 14)]
    video = write_video(tmp_path / "slides.mp4", [s for s in slides for _ in range(20)], fps=2)
    images, spans = sample_at_fps(video, fps=1.0)
    assert len(images) == 30
    row = DedupFrames()(frames_table([frames_row(images, spans)])).to_pylist()[0]
    assert row["frames_sampled"] == 30
    assert len(row["frames"]) * 5 <= 30
    # Every distinct slide survives, standing for its whole 10 s.
    assert [(f["t0"], f["t1"]) for f in row["frames"]] == [(0.0, 10.0), (10.0, 20.0), (20.0, 30.0)]


def test_with_remove_off_every_frame_is_kept_and_signed() -> None:
    import numpy as np
    import pyarrow as pa

    from tideflow.media.dedup import DedupFrames

    image = np.zeros((16, 16, 3), np.uint8)
    frames = [{"t": t + 0.5, "t0": float(t), "t1": t + 1.0} for t in range(3)]
    table = pa.table(
        {
            "frames": [frames],
            "pixels": [[image.tobytes()] * 3],
            "frame_h": pa.array([16], pa.int32()),
            "frame_w": pa.array([16], pa.int32()),
            "error": pa.array([None], pa.string()),
        }
    )
    kept = DedupFrames(remove=False)(table).to_pylist()[0]
    removed = DedupFrames()(table).to_pylist()[0]
    assert len(kept["frames"]) == len(kept["phash"]) == 3
    assert len(removed["frames"]) == 1 and removed["frames"][0]["t1"] == 3.0


@pytest.mark.parametrize("quality", [95, 75])
def test_a_blank_frame_keeps_its_hash_through_jpeg(quality: int) -> None:
    # A frame of one colour, with the faint noise a video codec leaves: its hash has no
    # structure to describe, and must not be the noise's (a screenshot of it would then
    # match no stored frame).
    rng = np.random.default_rng(0)
    blank = np.full((180, 320, 3), (40, 90, 160), np.float32) + rng.normal(0, 0.7, (180, 320, 3))
    blank = np.clip(blank.round(), 0, 255).astype(np.uint8)
    assert (
        hamming(frame_signature(blank).phash, frame_signature(jpeg_roundtrip(blank, quality)).phash)
        <= 2
    )
    assert _same(blank, jpeg_roundtrip(blank, quality))
