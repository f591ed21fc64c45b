"""The streaming part of ``tideflow-demo``: a checkpointed job over generated video shards.

Generated input: ``videos`` videos × ``shards`` shards × ``frames`` frames, one row per
frame, spread over Parquet files. The job decodes (CPU), "embeds" in an autoscaled pool,
gathers each video's frames in a keyed stateful stage, and writes one row per complete
video to a two-phase Parquet sink, checkpointing every 2 s. It then runs again with the same
job id, which resumes from the last checkpoint and writes nothing new.
"""

from __future__ import annotations

import hashlib
import random
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from rich.console import Console
from rich.table import Table

from tideflow.streaming import CheckpointConfig, JobResult, Pipeline
from tideflow.streaming.connectors import ParquetSink, ParquetSource

__all__ = ["DemoData", "Embedder", "decode", "gather_video", "generate", "run_streaming_part"]


@dataclass(frozen=True, kw_only=True)
class DemoData:
    """The shape of the generated input."""

    videos: int = 60
    """Videos in the input."""
    shards: int = 8
    """Shards per video."""
    frames: int = 50
    """Frames (rows) per shard."""
    rows_per_file: int = 1000
    """Rows per Parquet file."""

    @property
    def rows(self) -> int:
        return self.videos * self.shards * self.frames

    @property
    def frames_per_video(self) -> int:
        return self.shards * self.frames


def generate(directory: Path, data: DemoData, *, seed: int = 0) -> int:
    """Write the input files (shards of different videos interleaved); return the count."""
    rng = random.Random(seed)
    rows = [
        {"video_id": f"v{v:04d}", "shard": s, "frame": f, "caption": f"scene {rng.randrange(999)}"}
        for s in range(data.shards)
        for v in range(data.videos)
        for f in range(data.frames)
    ]
    directory.mkdir(parents=True, exist_ok=True)
    files = 0
    for start in range(0, len(rows), data.rows_per_file):
        chunk = pa.Table.from_pylist(rows[start : start + data.rows_per_file])
        pq.write_table(chunk, directory / f"frames-{files:05d}.parquet")
        files += 1
    return files


def decode(batch: pa.Table) -> pa.Table:
    """CPU stage: a cheap per-frame feature."""
    return batch.append_column("caption_len", pc.utf8_length(batch.column("caption")))


class Embedder:
    """GPU-like stage: a fixed cost per batch and an 8-number "embedding" per frame."""

    def __init__(self, latency_s: float = 0.02) -> None:
        time.sleep(0.5)  # loading a model
        self.latency_s = latency_s

    def __call__(self, batch: pa.Table) -> pa.Table:
        time.sleep(self.latency_s)
        vectors = [
            [b / 255 for b in hashlib.blake2b(c.encode(), digest_size=8).digest()]
            for c in batch.column("caption").to_pylist()
        ]
        return batch.append_column("embedding", pa.array(vectors, pa.list_(pa.float32())))


def gather_video(state: dict[str, Any] | None, row: dict[str, Any], *, expected: int = 400) -> Any:
    """Keyed stage: count a video's frames; emit the video once all have arrived."""
    state = state or {"frames": 0, "shards": [], "caption_chars": 0}
    state["frames"] += 1
    state["caption_chars"] += row["caption_len"]
    if row["shard"] not in state["shards"]:
        state["shards"].append(row["shard"])
    if state["frames"] < expected:
        return state, None
    done = {
        "video_id": row["video_id"],
        "frames": state["frames"],
        "shards": len(state["shards"]),
        "caption_chars": state["caption_chars"],
    }
    return None, done  # the video is complete: forget its state


class GatherVideo:
    """``gather_video`` bound to the expected frame count (one instance per partition)."""

    def __init__(self, expected: int) -> None:
        self.expected = expected

    def __call__(self, state: Any, row: dict[str, Any]) -> Any:
        return gather_video(state, row, expected=self.expected)


def _pipeline(data_dir: Path, out_dir: Path, data: DemoData) -> Pipeline:
    return (
        Pipeline.read(ParquetSource(str(data_dir), files_per_group=2), batch_size=250)
        .map_batches(decode, num_cpus=0.25)
        .map_batches(Embedder, num_cpus=0.25, concurrency=(1, 3), name="embed")
        .stateful_map(
            "video_id",
            GatherVideo,
            partitions=2,
            num_cpus=0.25,
            name="gather",
            fn_constructor_args=(data.frames_per_video,),
        )
        .write(ParquetSink(str(out_dir)))
    )


def run_streaming_part(console: Console, *, workdir: Path, data: DemoData | None = None) -> bool:
    """Generate data, run the job and its rerun, print the summary; True if output is exact."""
    data = data or DemoData()
    workdir.mkdir(parents=True, exist_ok=True)
    data_dir, out_dir = workdir / "input", workdir / "output"
    files = generate(data_dir, data)
    console.print(f"generated {data.rows:,} frames of {data.videos} videos in {files} files")
    checkpoint = CheckpointConfig(uri=str(workdir / "checkpoints"), interval_s=2.0)
    pipe = _pipeline(data_dir, out_dir, data)
    result = pipe.run(job_id="demo-videos", checkpoint=checkpoint)
    rerun = pipe.run(job_id="demo-videos", checkpoint=checkpoint, progress=False)
    out = pq.read_table(str(out_dir)) if out_dir.exists() else pa.table({"video_id": []})
    videos = out.column("video_id").to_pylist()
    exact = len(videos) == data.videos == len(set(videos)) and all(
        f == data.frames_per_video for f in out.column("frames").to_pylist()
    )
    console.print(_summary(result, rerun))
    console.print(
        f"output: {len(videos)} complete videos, each exactly once — exact"
        if exact
        else f"[red]output NOT exact: {len(videos)} rows for {data.videos} videos[/red]"
    )
    console.print(f"files under {workdir}")
    return exact


def _summary(result: JobResult, rerun: JobResult) -> Table:
    table = Table(title=f"streaming job {result.job_id}")
    table.add_column("stage")
    for column in ("rows in", "rows out", "busy", "back-pressured", "scale events"):
        table.add_column(column, justify="right")
    for name, m in result.stages.items():
        pressure = f"{m.backpressure_s:.1f} s" if m.backpressure_s else ""
        table.add_row(
            name,
            f"{m.rows_in:,}",
            f"{m.rows_out:,}",
            f"{m.busy_fraction:.2f}",
            pressure,
            str(len(m.scale_events)),
        )
    durations = [c.duration_s for c in result.checkpoints if c.duration_s is not None]
    p50 = statistics.median(durations) if durations else 0.0
    table.caption = (
        f"{result.rows_in:,} rows in {result.wall_s:.1f} s ({result.rows_in / result.wall_s:,.0f}"
        f" rows/s) · {len(result.checkpoints)} checkpoints (epoch start → durable p50 {p50:.2f} s)"
        f" · {result.dead_letters} dead letters · rerun: resumed from checkpoint "
        f"{rerun.restored_from}, read {rerun.rows_in} rows, wrote {rerun.rows_out}"
    )
    return table
