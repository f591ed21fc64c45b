"""An ingest of the small corpus: every channel lands in the table, once, at its time."""

from __future__ import annotations

from collections import Counter

import lance

from tideflow_video_search.schema import TABLE_NAME
from tideflow_video_search.search import SearchIndex


def _rows(index) -> list[dict]:
    return lance.dataset(str(index / TABLE_NAME)).to_table().to_pylist()


def test_every_channel_lands_in_the_table_once_at_its_time(indexed) -> None:
    rows = _rows(indexed.index)
    ids = Counter(r["segment_id"] for r in rows)
    assert set(ids.values()) == {1}, [k for k, c in ids.items() if c > 1]
    by = {(r["video_id"], r["source"]): r for r in rows if r["source"] != "frame"}

    ocr = [r for r in rows if r["video_id"] == "slides.mp4" and r["source"] == "ocr"]
    ferry = next(r for r in ocr if "340" in r["text"])
    assert (
        "Varnholt ferry" in ferry["text"]
        and ferry["start_s"] <= 1.0
        and 4.0 <= ferry["end_s"] <= 5.5
    )
    assert by[("zh-slides.mp4", "ocr")]["language"] == "zh"
    assert "1932" in by[("zh-slides.mp4", "ocr")]["text"]

    subtitles = [r for r in rows if r["video_id"] == "sidecar.mp4" and r["source"] == "subtitle"]
    assert {r["language"] for r in subtitles} == {"en", "es"}
    mine = next(r for r in subtitles if "copper mine" in r["text"])
    assert abs(mine["start_s"] - 1.0) < 0.01
    assert "Orchard apples" in by[("embedded.mp4", "subtitle")]["text"]

    speech = by[("speech.mp4", "speech")]
    assert "train" in speech["text"].lower() and speech["language"] == "en"
    assert speech["start_s"] < 2.0


def test_frame_rows_carry_signatures_and_thumbnails(indexed) -> None:
    rows = [r for r in _rows(indexed.index) if r["source"] == "frame"]
    slides = sorted((r for r in rows if r["video_id"] == "slides.mp4"), key=lambda r: r["start_s"])
    # Near-duplicate removal: one kept frame per slide and shard, not one per second.
    assert 2 <= len(slides) <= 4
    assert all(r["thumbnail"][:2] == b"\xff\xd8" for r in rows)  # JPEG
    assert len({r["phash"] for r in slides}) >= 2


def test_a_paraphrase_finds_each_channel(indexed) -> None:
    index = SearchIndex(indexed.index)
    cases = {
        "how many people does the Varnholt ferry take": ("slides.mp4", "ocr"),
        "when did the copper mine shut down": ("sidecar.mp4", "subtitle"),
        "which platform does the night train to Korval use": ("speech.mp4", "speech"),
        "when do apples in the orchard get ripe": ("embedded.mp4", "subtitle"),
        "青石桥是哪一年建的": ("zh-slides.mp4", "ocr"),
    }
    for query, (video, source) in cases.items():
        top = index.search(query, k=1)[0]
        assert (top.video_id, top.source) == (video, source), (query, top)
        assert top.score >= index.score_threshold


def test_running_the_same_ingest_again_writes_nothing_new(indexed) -> None:
    from _corpus import SMALL_CONFIG

    from tideflow_video_search.ingest import Ingest

    before = len(_rows(indexed.index))
    again = Ingest(str(indexed.videos), indexed.index, config=SMALL_CONFIG).run(progress=False)
    assert again.job.rows_out == 0
    assert len(_rows(indexed.index)) == before
