"""OCR of frames with rapidocr's bundled models: a rendered line of text, and OcrFrames on
decoded rows (errors as data)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from tideflow.media import FRAME_TYPE, LINE_TYPE, ConfigError, OcrFrames, OcrReader

pytest.importorskip("rapidocr")
Image = pytest.importorskip("PIL.Image")
ImageDraw = pytest.importorskip("PIL.ImageDraw")
ImageFont = pytest.importorskip("PIL.ImageFont")

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
TEXT = "Tideflow reads video"


def rendered(text: str = TEXT, size: tuple[int, int] = (480, 120)) -> np.ndarray:
    """Black text on white, centred vertically, from x = 40 px."""
    image = Image.new("RGB", size, "white")
    ImageDraw.Draw(image).text((40, 40), text, fill="black", font=ImageFont.truetype(FONT, 32))
    return np.asarray(image)


def decoded_row(images: list[np.ndarray], error: str | None = None) -> dict:
    h, w = images[0].shape[:2] if images else (0, 0)
    return {
        "video_id": "v",
        "shard": 0,
        "frames": [{"t": i + 0.5, "t0": float(i), "t1": i + 1.0} for i in range(len(images))],
        "pixels": [np.ascontiguousarray(image).tobytes() for image in images],
        "frame_h": h,
        "frame_w": w,
        "error": error,
    }


def decoded(rows: list[dict]) -> pa.Table:
    schema = pa.schema(
        [
            ("video_id", pa.string()),
            ("shard", pa.int32()),
            ("frames", pa.list_(FRAME_TYPE)),
            ("pixels", pa.list_(pa.binary())),
            ("frame_h", pa.int32()),
            ("frame_w", pa.int32()),
            ("error", pa.string()),
        ]
    )
    return pa.Table.from_pylist(rows, schema=schema)


@pytest.fixture(scope="module")
def ocr() -> OcrFrames:
    return OcrFrames(retries=0)


def test_a_rendered_line_is_read_with_its_box_in_fractions_of_the_frame():
    [line] = OcrReader().read_frame(rendered())
    assert line["text"].replace(" ", "").lower() == TEXT.replace(" ", "").lower()
    assert line["score"] > 0.8
    assert 0.0 <= line["x0"] < 40 / 480 + 0.03 < line["x1"] <= 1.0
    assert 0.2 < line["y0"] < line["y1"] < 0.8


def test_a_reader_on_two_threads_reads_the_same_and_its_threads_never_spin():
    """Spinning onnxruntime threads took the shared cores from the work (ocr_engine)."""
    reader = OcrReader(threads=2)
    [line] = reader.read_frame(rendered())
    assert line["text"] == OcrReader().read_frame(rendered())[0]["text"]
    engine = reader._engine
    for model in (engine.text_det, engine.text_rec):
        options = model.session.session.get_session_options()
        assert options.intra_op_num_threads == 2
        assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"


def test_a_blank_frame_has_no_lines(ocr):
    assert ocr.read_frame(np.full((120, 480, 3), 255, np.uint8)) == []


def test_every_frame_of_a_row_is_read_and_its_lines_carry_the_frame_time(ocr):
    blank = np.full((120, 480, 3), 255, np.uint8)
    out = ocr(decoded([decoded_row([blank, rendered()])]))
    assert out.schema.field("lines").type == pa.list_(LINE_TYPE)
    row = out.to_pylist()[0]
    assert [line["t"] for line in row["lines"]] == [1.5]
    assert row["error"] is None
    assert row["pixels"] and row["frame_h"] == 120  # the input columns stay


def test_a_row_that_arrives_with_an_error_is_passed_on_without_lines(ocr):
    row = ocr(decoded([decoded_row([rendered()], error="decode: truncated")])).to_pylist()[0]
    assert (row["lines"], row["error"]) == ([], "decode: truncated")


def test_an_ocr_failure_after_retries_sets_the_error_and_the_other_rows_go_on(ocr):
    broken = decoded_row([rendered()])
    broken["frame_w"] = 7  # the pixels do not make frames of this size
    rows = ocr(decoded([broken, decoded_row([rendered()])])).to_pylist()
    assert rows[0]["lines"] == [] and rows[0]["error"].startswith("ocr: ValueError")
    assert rows[1]["error"] is None and len(rows[1]["lines"]) == 1


@pytest.mark.parametrize(
    ("options", "field"), [({"threads": 0}, "threads"), ({"retries": -1}, "retries")]
)
def test_bad_settings_are_refused_naming_the_field(options, field):
    with pytest.raises(ConfigError, match=f"OcrFrames.{field}"):
        OcrFrames(**options)
