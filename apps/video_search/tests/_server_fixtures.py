"""What the server tests share: two small real H.264 videos, a real Lance index over them
(vectors from the packaged MiniLM model, a BM25 index on the text, JPEG thumbnails, frame
signatures), and one real uvicorn server in a thread.

The videos are 10 s of 160×90 flat colours ("scenes") with a white bar sweeping across, so
a playing video visibly moves and each scene has its own colour for query by frame.
"""

from __future__ import annotations

import asyncio
import functools
import io
import socket
import threading
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from tideflow_video_search.schema import TABLE_NAME, search_text, segment_id, segment_schema

FPS = 10
SIZE = (160, 90)
DURATION_S = 10.0


@dataclass(frozen=True)
class Scene:
    """A stretch of a test video in one flat colour."""

    start_s: float
    end_s: float
    rgb: tuple[int, int, int]


@dataclass(frozen=True)
class Segment:
    """A text row of the test index."""

    video_id: str
    source: str
    start_s: float
    end_s: float
    text: str
    language: str = "en"

    @property
    def segment_id(self) -> str:
        return segment_id(self.video_id, self.source, self.start_s)


SCENES: dict[str, tuple[Scene, ...]] = {
    "harbour": (
        Scene(0.0, 3.0, (205, 40, 40)),
        Scene(3.0, 6.0, (40, 170, 60)),
        Scene(6.0, 10.0, (40, 70, 205)),
    ),
    "market": (
        Scene(0.0, 3.0, (225, 205, 40)),
        Scene(3.0, 6.0, (190, 40, 190)),
        Scene(6.0, 10.0, (40, 190, 205)),
    ),
}
"""The videos (``<id>.mp4``) and their scenes."""

SEGMENTS: tuple[Segment, ...] = (
    Segment("harbour", "subtitle", 0.0, 3.0, "the ferry leaves the harbour at noon"),
    Segment("harbour", "speech", 3.0, 6.0, "a lighthouse keeper climbs the spiral stairs"),
    Segment("harbour", "ocr", 6.0, 10.0, "TIDE TABLE high water 14:05"),
    Segment("market", "subtitle", 0.0, 3.0, "fresh oranges and lemons at the market stall"),
    Segment("market", "speech", 4.0, 7.0, "the baker pulls warm bread from the oven"),
    Segment("market", "ocr", 7.0, 10.0, "今日特价 苹果", language="zh"),
)
"""The text rows; every video also gets one ``frame`` row per scene."""

MISSING_VIDEO = Segment("ghost", "subtitle", 0.0, 2.0, "a video whose file was deleted")
"""A row whose video file does not exist (its URI points nowhere)."""


def frame_pixels(rgb: tuple[int, int, int], t: float) -> np.ndarray:
    """The frame at ``t`` seconds of a scene in colour ``rgb``: the colour and a white bar
    that sweeps across the frame once a second."""
    width, height = SIZE
    pixels = np.empty((height, width, 3), np.uint8)
    pixels[:] = rgb
    x = int((t % 1.0) * (width - 12))
    pixels[height - 14 : height - 6, x : x + 12] = 255
    return pixels


def scene_at(video_id: str, t: float) -> Scene:
    return next(s for s in SCENES[video_id] if s.start_s <= t < s.end_s)


def frame_at(video_id: str, t: float) -> np.ndarray:
    return frame_pixels(scene_at(video_id, t).rgb, t)


def jpeg(pixels: np.ndarray, quality: int = 90) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="JPEG", quality=quality)
    return out.getvalue()


def write_video(path: Path, scenes: Sequence[Scene]) -> Path:
    """A 10 s, 160×90, 10 fps H.264 MP4 (a keyframe every second, moov atom first)."""
    import av

    with av.open(str(path), "w", container_options={"movflags": "+faststart"}) as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height = SIZE
        stream.pix_fmt = "yuv420p"
        stream.options = {"g": str(FPS), "preset": "veryfast", "tune": "zerolatency"}
        for i in range(int(DURATION_S * FPS)):
            t = i / FPS
            rgb = next(s.rgb for s in scenes if s.start_s <= t < s.end_s)
            frame = av.VideoFrame.from_ndarray(frame_pixels(rgb, t), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


@functools.cache
def embedder() -> Any:
    """The packaged MiniLM model, loaded once per test process (~10 s); used for the
    documents here and, passed to :class:`SearchIndex`, for the queries."""
    from tideflow.media.embeddings import TextEmbedder

    return TextEmbedder("minilm", role="passage")


@dataclass(frozen=True)
class TestIndex:
    """An index directory built by :func:`build_index` and where its videos are."""

    __test__ = False  # not a test class, whatever its name

    index_dir: Path
    videos: dict[str, Path]

    def open(self, **kwargs: Any) -> Any:
        """A :class:`SearchIndex` over this directory that embeds with :func:`embedder`."""
        from tideflow_video_search.search import SearchIndex

        return SearchIndex(self.index_dir, embedder=embedder(), **kwargs)


def segment_rows(segments: Sequence[Segment], uris: dict[str, str]) -> list[dict[str, Any]]:
    """Table rows for text segments (vector, thumbnail of the frame at the start)."""
    vectors = embedder().embed([s.text for s in segments])
    now = datetime.now(UTC)
    rows = []
    for seg, vector in zip(segments, vectors, strict=True):
        pixels = (
            frame_at(seg.video_id, seg.start_s)
            if seg.video_id in SCENES
            else frame_pixels((90, 90, 90), 0.0)
        )
        rows.append(
            {
                "segment_id": seg.segment_id,
                "video_id": seg.video_id,
                "uri": uris[seg.video_id],
                "start_s": seg.start_s,
                "end_s": seg.end_s,
                "text": seg.text,
                "search_text": search_text(seg.text),
                "source": seg.source,
                "language": seg.language,
                "vector": vector.tolist(),
                "thumbnail": jpeg(pixels),
                "phash": None,
                "hist": None,
                "ingested_at": now,
            }
        )
    return rows


def frame_rows(video_id: str, uri: str) -> list[dict[str, Any]]:
    """One ``frame`` row per scene: the scene's first frame and its signature."""
    from tideflow.media.dedup import frame_signature

    vector = embedder().embed(["a frame of the video"])[0].tolist()
    now = datetime.now(UTC)
    rows = []
    for scene in SCENES[video_id]:
        pixels = frame_pixels(scene.rgb, scene.start_s)
        signature = frame_signature(pixels)
        rows.append(
            {
                "segment_id": segment_id(video_id, "frame", scene.start_s),
                "video_id": video_id,
                "uri": uri,
                "start_s": scene.start_s,
                "end_s": scene.end_s,
                "text": "",
                "source": "frame",
                "language": "",
                "vector": vector,
                "thumbnail": jpeg(pixels),
                "phash": signature.phash,
                "hist": signature.hist.astype(np.float32).tolist(),
                "ingested_at": now,
            }
        )
    return rows


def build_index(root: Path) -> TestIndex:
    """Write the two videos under ``root/videos`` and index them under ``root/index``:
    ``harbour`` by its local path, ``market`` by a ``file://`` URI; plus the ``ghost`` row
    whose file is missing."""
    videos_dir = root / "videos"
    videos_dir.mkdir(parents=True, exist_ok=True)
    videos = {vid: write_video(videos_dir / f"{vid}.mp4", scenes) for vid, scenes in SCENES.items()}
    uris = {
        "harbour": str(videos["harbour"]),
        "market": videos["market"].as_uri(),
        "ghost": str(videos_dir / "ghost.mp4"),
    }
    rows = segment_rows([*SEGMENTS, MISSING_VIDEO], uris)
    for video_id in SCENES:
        rows.extend(frame_rows(video_id, uris[video_id]))
    return TestIndex(index_dir=write_index(root / "index", rows), videos=videos)


def write_index(index_dir: Path, rows: Sequence[dict[str, Any]]) -> Path:
    """An index directory holding ``rows`` (embedded with MiniLM), with the full-text
    index an ingest builds."""
    import lance
    import pyarrow as pa

    from tideflow_video_search.search import IndexMeta, write_meta

    write_meta(index_dir, IndexMeta(embedding="minilm", dim=384))
    table = pa.Table.from_pylist(list(rows), schema=segment_schema())
    dataset = lance.write_dataset(table, str(index_dir / TABLE_NAME))
    dataset.create_scalar_index("search_text", index_type="INVERTED")
    return index_dir


def write_segments_index(
    index_dir: Path, segments: Sequence[Segment], uris: dict[str, str]
) -> TestIndex:
    """An index of just ``segments`` (no frame rows); ``uris``: each video's URI. Blocks:
    async tests call it through ``asyncio.to_thread`` (the embedder runs its own loop)."""
    write_index(index_dir, segment_rows(segments, uris))
    return TestIndex(index_dir=index_dir, videos={})


def append_segments(index: TestIndex, segments: Sequence[Segment]) -> None:
    """Commit more text rows (as an ingest running beside the server would)."""
    import lance
    import pyarrow as pa

    uris = {seg.video_id: f"{seg.video_id}.mp4" for seg in segments}
    table = pa.Table.from_pylist(segment_rows(segments, uris), schema=segment_schema())
    lance.write_dataset(table, str(index.index_dir / TABLE_NAME), mode="append")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@asynccontextmanager
async def running_server(app: Any) -> AsyncIterator[str]:
    """Serve ``app`` with a real uvicorn on a free loopback port in a thread; yields the
    base URL and stops the server on exit."""
    import uvicorn

    config = uvicorn.Config(
        app, host="127.0.0.1", port=free_port(), log_level="warning", lifespan="off", ws="none"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        await asyncio.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{config.port}"
    finally:
        server.should_exit = True
        await asyncio.to_thread(thread.join, 30)
