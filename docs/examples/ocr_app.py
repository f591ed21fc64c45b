# --8<-- [start:example]
"""The video OCR app from Python: two generated videos, JSON lines out, batched callbacks."""

import tempfile
from pathlib import Path

from tideflow_ocr import OcrApp, OcrConfig, VideoFailure, VideoResult, read_results
from tideflow_ocr.testdata import bench_specs, make_corpus

root = Path(tempfile.mkdtemp())
specs = make_corpus(root / "videos", bench_specs(2, seconds=4.0))  # videos with known text


def done(videos: list[VideoResult]) -> None:  # batches, after the commit: at least once
    for video in videos:
        print("done", video.video_id)


def failed(failures: list[VideoFailure]) -> None:  # video_id, uri, stage, reason
    for failure in failures:
        print("FAILED", failure.video_id, failure.stage)


app = OcrApp(
    str(root / "videos"),  # or s3://bucket/videos, or kafka://host:9092/videos
    [f"jsonl://{root}/ocr"],  # or iceberg://ocr.results (with catalog=), parquet://DIR, …
    config=OcrConfig(langs=("en",), shard_seconds=2, fps=1, ocr_concurrency=(1, 2)),
    state_uri=str(root / "state"),
)
result = app.run(on_complete=done, on_failure=failed, progress=False)  # or app.start(...)
rows = read_results(f"jsonl://{root}/ocr")  # dicts, one per video
print(len(result.completed), "done,", len(result.failed), "failed:", [row["text"] for row in rows])
assert len(rows) == len(specs) == 2
# --8<-- [end:example]
