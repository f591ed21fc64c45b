"""Bad input: each bad video becomes a dead letter with its reason; the rest is indexed."""

from __future__ import annotations

import json
from pathlib import Path

import lance
import pytest

from tideflow_video_search.ingest import Ingest
from tideflow_video_search.samples import make_bad_samples
from tideflow_video_search.schema import TABLE_NAME


def _dead_letters(path: str) -> list[dict]:
    rows = []
    for file in sorted(Path(path).rglob("*.jsonl")):
        rows += [json.loads(line) for line in file.read_text().splitlines() if line.strip()]
    return rows


def _about(letters: list[dict], name: str) -> list[dict]:
    return [d for d in letters if name in json.dumps(d)]


@pytest.fixture(scope="module")
def bad_run(ray_session, tmp_path_factory):
    from _corpus import SMALL_CONFIG, write_small_corpus

    folder = tmp_path_factory.mktemp("bad-corpus")
    make_bad_samples(folder)
    write_small_corpus(folder / "good")
    index = tmp_path_factory.mktemp("bad-index")
    ingest = Ingest(str(folder), index, config=SMALL_CONFIG)
    result = ingest.run(progress=False)
    return ingest, result, index


def test_each_bad_video_is_a_dead_letter_with_its_reason(bad_run) -> None:
    ingest, result, _ = bad_run
    letters = _dead_letters(ingest.dead_letters)
    assert result.job.dead_letters == len(letters) > 0
    corrupt = _about(letters, "corrupt.mp4")
    assert corrupt and "cannot open" in corrupt[0]["error"]
    empty = _about(letters, "empty.mp4")
    assert empty and "empty.mp4" in empty[0]["error"]
    broken = _about(letters, "broken-subtitles.srt")
    assert broken and "broken-subtitles.srt" in broken[0]["error"]
    truncated = _about(letters, "truncated.mp4")  # every shard: the cut reaches the first
    assert len(truncated) == 2 and all("decode" in d["error"] for d in truncated)
    assert not _about(letters, "silent.mp4"), "a video without audio or subtitles is not an error"


def test_the_rest_is_indexed(bad_run) -> None:
    _, _, index = bad_run
    rows = lance.dataset(str(index / TABLE_NAME)).to_table().to_pylist()
    texts = {(r["video_id"], r["source"]): r["text"] for r in rows if r["source"] != "frame"}
    assert "Nothing to hear here" in texts[("bad/silent.mp4", "ocr")]
    # The video whose sidecar does not parse keeps its other channels.
    assert "Subtitles are broken" in texts[("bad/broken-subtitles.mp4", "ocr")]
    good = {video for video, _ in texts if video.startswith("good/")}
    assert good == {
        "good/slides.mp4",
        "good/zh-slides.mp4",
        "good/sidecar.mp4",
        "good/embedded.mp4",
        "good/speech.mp4",
    }
