"""Video OCR app benchmark (issue 7, acceptance item 3), on the same generated videos.

(a) Throughput: sampled frames per second through the Tideflow app (``tideflow_ocr``:
    probe/shard → decode → OCR pool → keyed gather → filters → JSON lines sink) vs a
    straightforward single-process loop over the same videos (decode → OCR → aggregate per
    video, onnxruntime with one thread per core). Both rates are over the processing span
    (the app: first decode start → last filter end; the loop: first decode → last
    aggregate), so actor start-up and model loading are reported apart, not counted.
    Goal: ≥ 1.5×.
(b) Latency to the first complete video: seconds from submitting the job to the first
    video's result being available — for Tideflow, committed to the sink (its completion
    callback); for Ray Data, the first row out of the same pipeline written with Ray Data
    (probe/shard → decode → OCR actor pool → ``groupby("video_id").map_groups`` → layers 1
    and 2). Both include their start-up. Goal: Tideflow ≤ 0.2 × Ray Data.

The machine's load (load average and CPU use by all processes) is sampled during each run
and written with the figures: on a shared machine they move with it.

Writes ``<out>/ocr.json`` (DESIGN §5).

    uv run python tools/bench/ocr.py [--out bench-results] [--quick] [--videos N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import tideflow_tools  # noqa: F401  (sets Ray's environment before Ray is imported)
from tideflow.core.observability import configure_logging
from tideflow.media.ocr import ocr_engine
from tideflow.media.video import probe, sample_frames, shard_plan
from tideflow_ocr import OcrApp, OcrConfig, layer1, layer2
from tideflow_ocr.testdata import bench_specs, character_error_rate, make_corpus
from tideflow_tools.bench import at_least, at_most, say, write_result

SHARD_S = 4.0
FPS = 1.0


class LoadMeter:
    """Samples the load average and whole-machine CPU use every second while it runs."""

    def __init__(self) -> None:
        self.loads: list[float] = []
        self.cpu: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        import psutil

        psutil.cpu_percent(None)
        while not self._stop.wait(1.0):
            self.loads.append(os.getloadavg()[0])
            self.cpu.append(psutil.cpu_percent(None))

    def __enter__(self) -> LoadMeter:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def summary(self) -> dict[str, float]:
        return {
            "load_avg_1m_mean": round(statistics.fmean(self.loads), 2) if self.loads else 0.0,
            "load_avg_1m_max": round(max(self.loads), 2) if self.loads else 0.0,
            "cpu_busy_pct_mean": round(statistics.fmean(self.cpu), 1) if self.cpu else 0.0,
        }


def _engine(threads: int) -> Any:
    """The app's own OCR settings, so that every pipeline compared reads the same way."""
    return ocr_engine(threads)


def _read(engine: Any, image: Any, t: float) -> list[dict[str, Any]]:
    import numpy as np

    height, width = image.shape[:2]
    result = engine(np.ascontiguousarray(image[:, :, ::-1]))
    if result.boxes is None:
        return []
    return [
        {
            "t": t,
            "text": str(text),
            "score": float(score),
            "x0": float(box[:, 0].min()) / width,
            "y0": float(box[:, 1].min()) / height,
            "x1": float(box[:, 0].max()) / width,
            "y1": float(box[:, 1].max()) / height,
        }
        for box, text, score in zip(result.boxes, result.txts, result.scores, strict=True)
    ]


# -- (a) the single-process loop ----------------------------------------------------------
def bench_loop(paths: list[str], threads: int) -> dict[str, Any]:
    config = OcrConfig(shard_seconds=SHARD_S, fps=FPS)
    engine = _engine(threads)
    import numpy as np

    engine(np.zeros((64, 256, 3), np.uint8))  # load the models before timing
    texts: dict[str, str] = {}
    frames = 0
    started = time.perf_counter()
    for path in paths:
        info = probe(path)
        sampled = sample_frames(path, 0.0, info.duration_s, duration_s=info.duration_s, fps=FPS)
        lines = []
        for frame in sampled:
            lines += [
                {**x, "t0": frame.t0, "t1": frame.t1} for x in _read(engine, frame.image, frame.t)
            ]
        spans = [{"t": f.t, "t0": f.t0, "t1": f.t1} for f in sampled]
        segments = layer2(spans, layer1(lines, config), config)
        texts[os.path.basename(path)] = "\n".join(s.text for s in segments)
        frames += len(sampled)
    span = time.perf_counter() - started
    return {
        "frames": frames,
        "span_s": round(span, 3),
        "frames_per_s": frames / span,
        "texts": texts,
    }


# -- (a) and (b): the Tideflow app ------------------------------------------------------------
def bench_app(folder: Path, work: Path, actors: int) -> dict[str, Any]:
    first: list[float] = []
    app = OcrApp(
        str(folder),
        [str(work / "out")],
        config=OcrConfig(shard_seconds=SHARD_S, fps=FPS, ocr_concurrency=(actors, actors)),
        state_uri=str(work / "state"),
        job_id="bench-ocr",
    )
    submitted = time.perf_counter()
    submitted_wall = time.time()

    def done(batch: list[Any]) -> None:
        if not first:
            first.append(time.perf_counter() - submitted)

    result = app.run(on_complete=done, progress=False)
    job = result.job
    start = job.stages["decode"].first_start
    end = job.stages["filter"].last_end
    assert start is not None and end is not None
    from tideflow_ocr import read_results

    rows = read_results(str(work / "out"))
    frames = sum(r["frames"] for r in rows)
    return {
        "frames": frames,
        "span_s": round(end - start, 3),
        "frames_per_s": frames / (end - start),
        "wall_s": round(job.wall_s, 3),
        "first_result_s": round(first[0], 3) if first else None,
        # Diagnostics: when the pipeline's first stage started (start-up before it), and
        # when the first complete video reached the filter stage (before its commit).
        "startup_s": round(start - submitted_wall, 3),
        "first_video_filtered_s": round(
            (job.stages["filter"].first_start or submitted_wall) - submitted_wall, 3
        ),
        "ocr_busy_fraction": round(job.stages["ocr"].busy_fraction, 3),
        "checkpoints": len(job.checkpoints),
        "texts": {r["video_id"]: r["text"] for r in rows},
        "shards": job.stages["ocr"].rows_in,
    }


# -- (b) the same pipeline in Ray Data ----------------------------------------------------------
def _probe_and_shard(row: dict[str, Any]) -> list[dict[str, Any]]:
    info = probe(row["uri"])
    return [
        {
            "video_id": row["video_id"],
            "uri": row["uri"],
            "start_s": a,
            "end_s": b,
            "duration_s": info.duration_s,
        }
        for a, b in shard_plan(info.duration_s, SHARD_S)
    ]


def _decode(batch: dict[str, Any]) -> dict[str, Any]:
    import numpy as np

    out: dict[str, list[Any]] = {k: [] for k in ("video_id", "t", "t0", "t1", "pixels", "h", "w")}
    for vid, uri, a, b, d in zip(
        batch["video_id"],
        batch["uri"],
        batch["start_s"],
        batch["end_s"],
        batch["duration_s"],
        strict=True,
    ):
        for f in sample_frames(str(uri), float(a), float(b), duration_s=float(d), fps=FPS):
            out["video_id"].append(vid)
            out["t"].append(f.t)
            out["t0"].append(f.t0)
            out["t1"].append(f.t1)
            out["pixels"].append(np.ascontiguousarray(f.image).tobytes())
            out["h"].append(f.image.shape[0])
            out["w"].append(f.image.shape[1])
    return out


class _RayDataOcr:
    def __init__(self) -> None:
        self.engine = _engine(1)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        import json

        import numpy as np

        lines = []
        for pixels, h, w, t in zip(
            batch["pixels"], batch["h"], batch["w"], batch["t"], strict=True
        ):
            image = np.frombuffer(pixels, np.uint8).reshape(int(h), int(w), 3)
            lines.append(json.dumps(_read(self.engine, image, float(t))))
        return {
            "video_id": batch["video_id"],
            "t": batch["t"],
            "t0": batch["t0"],
            "t1": batch["t1"],
            "lines": np.array(lines, dtype=object),
        }


def _aggregate(group: dict[str, Any]) -> dict[str, Any]:
    import json

    config = OcrConfig(shard_seconds=SHARD_S, fps=FPS)
    frames = [
        {"t": float(t), "t0": float(a), "t1": float(b)}
        for t, a, b in zip(group["t"], group["t0"], group["t1"], strict=True)
    ]
    lines = [
        {**x, "t0": f["t0"], "t1": f["t1"]}
        for f, raw in zip(frames, group["lines"], strict=True)
        for x in json.loads(raw)
    ]
    segments = layer2(frames, layer1(lines, config), config)
    return {"video_id": [group["video_id"][0]], "text": ["\n".join(s.text for s in segments)]}


def bench_ray_data(paths: list[str], actors: int) -> dict[str, Any]:
    import ray

    ray.data.DataContext.get_current().enable_progress_bars = False
    submitted = time.perf_counter()
    items = [{"video_id": os.path.basename(p), "uri": p} for p in paths]
    ds = (
        ray.data.from_items(items)
        .flat_map(_probe_and_shard)
        .map_batches(_decode, batch_size=1, num_cpus=0.01)
        .map_batches(
            _RayDataOcr,
            batch_size=4,
            num_cpus=1,
            compute=ray.data.ActorPoolStrategy(min_size=actors, max_size=actors),
        )
        .groupby("video_id")
        .map_groups(_aggregate, batch_format="numpy")
    )
    first = None
    texts = {}
    for row in ds.iter_rows():
        if first is None:
            first = time.perf_counter() - submitted
        texts[str(row["video_id"])] = str(row["text"])
    assert first is not None
    return {
        "first_result_s": round(first, 3),
        "wall_s": round(time.perf_counter() - submitted, 3),
        "texts": texts,
    }


def _cer(specs: list[Any], texts: dict[str, str]) -> float:
    return max(character_error_rate(s.expected_text(), texts.get(s.name, "")) for s in specs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench-results", help="result folder")
    parser.add_argument("--quick", action="store_true", help="small sizes (dev, tests)")
    parser.add_argument("--videos", type=int, default=64, help="generated videos")
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each video")
    args = parser.parse_args(argv)
    if args.quick:
        args.videos = 8
    # The engine's info/debug events (one per checkpoint, pool and commit) would bury the
    # figures this command prints; warnings and errors still show.
    configure_logging(level="warning")
    import logging

    import ray

    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="tideflow-bench-ocr-") as tmp:
        work = Path(tmp)
        specs = make_corpus(work / "videos", bench_specs(args.videos, seconds=args.seconds))
        paths = sorted(str(work / "videos" / s.name) for s in specs)
        say(f"{len(specs)} videos × {args.seconds:g} s, {FPS:g} fps, shards of {SHARD_S:g} s")
        with LoadMeter() as loop_load:
            loop = bench_loop(paths, cores)
        say(
            f"(a) single-process loop, {cores} onnxruntime threads: "
            f"{loop['frames_per_s']:.2f} frames/s ({loop['frames']} frames)"
        )
        with LoadMeter() as loop1_load:
            loop1 = bench_loop(paths, 1)
        say(f"(a) diagnostic, the same loop with 1 thread: {loop1['frames_per_s']:.2f} frames/s")
        # Two logical CPUs beyond the OCR actors (one per core, in both pipelines) for the
        # light stages: Ray Data's probe task and shuffle otherwise wait behind its OCR pool.
        ray.init(
            num_cpus=cores + 2,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.WARNING,
        )
        try:
            with LoadMeter() as app_load:
                app = bench_app(work / "videos", work, cores)
            say(
                f"(a) tideflow app: {app['frames_per_s']:.2f} frames/s; (b) first video after "
                f"{app['first_result_s']} s (wall {app['wall_s']} s)"
            )
            with LoadMeter() as rd_load:
                rd = bench_ray_data(paths, cores)
            say(
                f"(b) ray data + groupby: first video after {rd['first_result_s']} s "
                f"(wall {rd['wall_s']} s)"
            )
        finally:
            ray.shutdown()
    speedup = app["frames_per_s"] / loop["frames_per_s"]
    ratio = app["first_result_s"] / rd["first_result_s"]
    metrics = {
        "videos": len(specs),
        "video_seconds": args.seconds,
        "fps": FPS,
        "shard_seconds": SHARD_S,
        "ocr_actors": cores,
        "loop": {k: v for k, v in loop.items() if k != "texts"}
        | {"onnxruntime_threads": cores, "load": loop_load.summary()},
        "loop_1_thread": {k: v for k, v in loop1.items() if k != "texts"}
        | {"onnxruntime_threads": 1, "load": loop1_load.summary()},
        "speedup_vs_1_thread_loop": round(app["frames_per_s"] / loop1["frames_per_s"], 3),
        "app": {k: v for k, v in app.items() if k != "texts"} | {"load": app_load.summary()},
        "ray_data": {k: v for k, v in rd.items() if k != "texts"} | {"load": rd_load.summary()},
        "speedup_frames_per_s": round(speedup, 3),
        "first_result_ratio": round(ratio, 3),
        "max_cer": {
            "loop": round(_cer(specs, loop["texts"]), 4),
            "app": round(_cer(specs, app["texts"]), 4),
            "ray_data": round(_cer(specs, rd["texts"]), 4),
        },
    }
    path = write_result(
        args.out,
        "ocr",
        metrics=metrics,
        goals={
            "app_vs_loop_frames_per_s": at_least(speedup, 1.5),
            "first_result_vs_ray_data": at_most(ratio, 0.2),
        },
        definitions={
            "frames_per_s": "sampled frames ÷ processing span (start-up and model load apart)",
            "first_result_s": "job submitted → first complete video available (start-up included)",
            "load": "1-minute load average and whole-machine CPU use, sampled every second",
        },
    )
    say(
        f"speedup {speedup:.2f}× (goal ≥ 1.5), first-result ratio {ratio:.3f} (goal ≤ 0.2); "
        f"wrote {path}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
