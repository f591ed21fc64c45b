"""The ingest's own stages: frames (decode + near-duplicate removal), segments (every
channel's timed text → segment and frame rows), and index rows (vectors in place).

The model stages between them are the media library's operators (``OcrFrames``,
``ReadSubtitles``, ``SpeechRecognizer``) and the LLM operator's embedding stage.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa

from tideflow.media.language import detect_language
from tideflow.streaming import RecordErrors
from tideflow_video_search.config import IngestConfig
from tideflow_video_search.schema import (
    FRAME_SOURCE,
    HIST_BINS,
    search_text,
    segment_id,
    segment_schema,
)
from tideflow_video_search.segments import Timed, frame_text, merge_timed, ocr_runs

__all__ = ["ROW_SCHEMA", "BuildSegments", "ExtractFrames", "ToIndexRows"]

THUMBNAIL_WIDTH = 192

ROW_SCHEMA = pa.schema([f for f in segment_schema() if f.name not in ("vector", "ingested_at")])
"""Rows leaving :class:`BuildSegments` (no vector, no ingest time yet)."""


class ExtractFrames:
    """Decode a shard's frames, drop near-identical ones (one stage: the pixels cross the
    object store once) and make each kept frame's JPEG thumbnail (``thumbs``). Adds
    ``phash``/``hist`` of the kept frames either way. Without OCR the pixels stop here.

    With subtitles on, the shard's cues are read here too (``cues``, the media library's
    :class:`~tideflow.media.subtitles.ReadSubtitles`): a light step that needs no actor of
    its own. A video whose subtitles cannot be read still comes out whole, and its shards
    go to the dead letters with the reason (:class:`~tideflow.streaming.RecordErrors`)."""

    def __init__(self, config: IngestConfig) -> None:
        from tideflow.media.dedup import DedupFrames
        from tideflow.media.frames import DecodeFrames

        self._decode = DecodeFrames(
            fps=config.fps,
            keyframes=config.keyframes,
            max_side=config.max_side,
            retries=config.retries,
        )
        # Without removal every frame is kept; the signatures are still computed (frame rows).
        self._dedup = DedupFrames(remove=config.dedup)
        self._keep_pixels = config.ocr
        self._subtitles = None
        if config.subtitles:
            from tideflow.media.subtitles import ReadSubtitles

            self._subtitles = ReadSubtitles()

    def __call__(self, table: pa.Table) -> pa.Table:
        from tideflow.media.frames import frame_images

        table = self._dedup(self._decode(table))
        thumbs = []
        for row in table.select(["pixels", "frame_h", "frame_w", "error"]).to_pylist():
            ok = row["error"] is None and row["pixels"]
            thumbs.append([_thumbnail(image) for image in frame_images(row)] if ok else [])
        table = table.append_column("thumbs", pa.array(thumbs, pa.list_(pa.binary())))
        if not self._keep_pixels:
            table = table.drop_columns(["pixels", "frame_h", "frame_w"])
        # One row per shard in and out, so the rows ReadSubtitles names (RecordErrors) are
        # this batch's rows too.
        return table if self._subtitles is None else self._subtitles(table)


def _thumbnail(image: np.ndarray) -> bytes:
    from PIL import Image

    picture = Image.fromarray(image)
    height = max(1, round(picture.height * THUMBNAIL_WIDTH / max(1, picture.width)))
    picture = picture.resize((THUMBNAIL_WIDTH, height))
    out = io.BytesIO()
    picture.save(out, format="JPEG", quality=70)
    return out.getvalue()


class BuildSegments:
    """Each shard row → its segment rows (one per OCR run, merged subtitle cues and merged
    speech) and its frame rows (one per kept frame, for query by frame). A shard that could
    not be decoded goes to the dead letters with its reason; the others go on."""

    def __init__(self, config: IngestConfig) -> None:
        self._config = config

    def __call__(self, table: pa.Table) -> pa.Table:
        out: list[dict[str, Any]] = []
        errors: dict[int, str] = {}
        names = set(table.column_names)
        for i, row in enumerate(table.to_pylist()):
            if row.get("error"):
                errors[i] = (
                    f"{row['video_id']} {row['start_s']:g}-{row['end_s']:g} s: {row['error']}"
                )
                continue
            out.extend(self._rows(row, names))
        result = pa.Table.from_pylist(out, schema=ROW_SCHEMA)
        if errors:
            raise RecordErrors(errors, output=result)
        return result

    def _rows(self, row: dict[str, Any], names: set[str]) -> list[dict[str, Any]]:
        frames = row.get("frames") or []
        thumbs = row.get("thumbs") or []
        lines_by_t: dict[float, list[dict[str, Any]]] = {}
        for line in row.get("lines") or []:
            lines_by_t.setdefault(float(line["t"]), []).append(line)
        texts = [frame_text(lines_by_t.get(float(f["t"]), [])) for f in frames]

        def thumb_at(t: float) -> tuple[bytes | None, int | None, list[float] | None]:
            if not frames:
                return None, None, None
            j = min(
                range(len(frames)),
                key=lambda k: (
                    0 if frames[k]["t0"] <= t < frames[k]["t1"] else 1 + abs(frames[k]["t"] - t)
                ),
            )
            return thumbs[j] if j < len(thumbs) else None, row["phash"][j], row["hist"][j]

        def emit(source: str, piece: Timed) -> dict[str, Any]:
            jpeg, phash, hist = thumb_at((piece.start_s + piece.end_s) / 2)
            language = piece.language or detect_language(piece.text)
            return {
                "segment_id": segment_id(row["video_id"], source, piece.start_s, language),
                "video_id": row["video_id"],
                "uri": row["uri"],
                "start_s": round(piece.start_s, 3),
                "end_s": round(piece.end_s, 3),
                "text": piece.text,
                "search_text": search_text(piece.text),
                "source": source,
                "language": language,
                "thumbnail": jpeg,
                "phash": phash,
                "hist": hist if hist is not None else [0.0] * HIST_BINS,
            }

        config = self._config
        rows: list[dict[str, Any]] = []
        if "lines" in names:
            spans = [(f["t0"], f["t1"], text) for f, text in zip(frames, texts, strict=True)]
            rows += [emit("ocr", p) for p in ocr_runs(spans, language_of=detect_language)]
        if "cues" in names:
            cues = [
                Timed(
                    c["start_s"],
                    c["end_s"],
                    c["text"],
                    c.get("language") or detect_language(c["text"]),
                )
                for c in row.get("cues") or []
            ]
            rows += [
                emit("subtitle", p) for p in merge_timed(cues, max_seconds=config.segment_seconds)
            ]
        if "speech" in names:
            said = [
                Timed(
                    s["start_s"],
                    s["end_s"],
                    s["text"],
                    s.get("language") or detect_language(s["text"]),
                )
                for s in row.get("speech") or []
            ]
            rows += [
                emit("speech", p) for p in merge_timed(said, max_seconds=config.segment_seconds)
            ]
        for j, frame in enumerate(frames):
            rows.append(
                {
                    "segment_id": segment_id(row["video_id"], FRAME_SOURCE, frame["t"]),
                    "video_id": row["video_id"],
                    "uri": row["uri"],
                    "start_s": round(frame["t0"], 3),
                    "end_s": round(frame["t1"], 3),
                    "text": texts[j],
                    "search_text": search_text(texts[j]),
                    "source": FRAME_SOURCE,
                    "language": detect_language(texts[j]) if texts[j] else "",
                    "thumbnail": thumbs[j] if j < len(thumbs) else None,
                    "phash": row["phash"][j],
                    "hist": row["hist"][j],
                }
            )
        return rows


class ToIndexRows:
    """``embeddings`` → the table's ``vector`` column; the ingest time; the table's columns."""

    def __init__(self, dim: int) -> None:
        self._schema = segment_schema(dim)
        self._dim = dim

    def __call__(self, table: pa.Table) -> pa.Table:
        n = table.num_rows
        flat = np.asarray(
            table.column("embeddings").combine_chunks().flatten().to_numpy(zero_copy_only=False),
            np.float32,
        )
        if flat.size != n * self._dim:
            message = f"expected {self._dim} floats per embedding; got {flat.size} for {n} rows"
            raise ValueError(message)
        vector = pa.FixedSizeListArray.from_arrays(pa.array(flat), self._dim)
        now = pa.array([datetime.now(UTC)] * n, pa.timestamp("us", tz="UTC"))
        columns = {
            name: table.column(name) for name in self._schema.names if name in table.column_names
        }
        columns["vector"] = vector
        columns["ingested_at"] = now
        return pa.table([columns[name] for name in self._schema.names], schema=self._schema)
