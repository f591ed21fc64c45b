"""The index's table: one row per timed text segment, plus one row per distinct frame.

A *segment* row (``source`` = ``ocr``, ``subtitle`` or ``speech``) is a few seconds of text
with its embedding; a *frame* row (``source`` = ``frame``) is a distinct sampled frame
(after near-duplicate removal) with its visual signature, for query by frame. Text search
never returns frame rows; frame search only reads them.
"""

from __future__ import annotations

import re

import pyarrow as pa

__all__ = [
    "CHANNELS",
    "FRAME_SOURCE",
    "HIST_BINS",
    "SEGMENT_SCHEMA",
    "TABLE_NAME",
    "search_text",
    "segment_id",
    "segment_schema",
]

CHANNELS = ("ocr", "subtitle", "speech")
"""The text channels a segment comes from."""
FRAME_SOURCE = "frame"
"""``source`` of the rows that describe a distinct frame (query by frame)."""
HIST_BINS = 48
"""Length of a frame's colour histogram (HSV: 16 hue × 3 value bins), L1-normalised."""
TABLE_NAME = "segments.lance"
"""The Lance dataset under an index directory."""


def segment_schema(dim: int = 384) -> pa.Schema:
    """The table's schema for embeddings of ``dim`` floats."""
    return pa.schema(
        [
            ("segment_id", pa.string()),
            ("video_id", pa.string()),
            ("uri", pa.string()),
            ("start_s", pa.float64()),
            ("end_s", pa.float64()),
            ("text", pa.string()),
            ("search_text", pa.string()),
            ("source", pa.string()),
            ("language", pa.string()),
            ("vector", pa.list_(pa.float32(), dim)),
            ("thumbnail", pa.binary()),
            ("phash", pa.int64()),
            ("hist", pa.list_(pa.float32(), HIST_BINS)),
            ("ingested_at", pa.timestamp("us", tz="UTC")),
        ]
    )


SEGMENT_SCHEMA = segment_schema()
"""The index table's schema (segment and frame rows) with the default 384-d vector."""


def segment_id(video_id: str, source: str, start_s: float, language: str = "") -> str:
    """A row's stable id: the same segment ingested again gets the same id (two subtitle
    tracks of one video may start a cue at the same time: the language tells them apart)."""
    tag = f"{source}.{language}" if language else source
    return f"{video_id}#{tag}@{start_s:.3f}"


_CJK_RUN = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]+")


def _cjk_terms(match: re.Match[str]) -> str:
    run = match.group(0)
    grams = [run[i : i + 2] for i in range(len(run) - 1)]
    return " " + " ".join([*run, *grams]) + " "


def search_text(text: str) -> str:
    """What the full-text index reads for ``text`` (and what a query is turned into):
    the text with every run of CJK characters written as its characters and character
    pairs, space-separated. Lance's tokenizer splits words at spaces, so without this a
    Chinese sentence would be one word and no query would match it."""
    return _CJK_RUN.sub(_cjk_terms, text or "").strip()
