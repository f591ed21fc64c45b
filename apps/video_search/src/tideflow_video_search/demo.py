"""The video search app's part of ``make demo``: generate videos, ingest, ask questions.

:func:`run_demo` writes a small generated corpus (slides, sidecar and embedded subtitles,
speech; English, Chinese, Spanish), ingests it (the live progress table on a terminal),
asks a few of the frozen questions — one per language and channel, and one no video answers
— prints the moment each one finds and the rank of its answer, and raises
:class:`DemoCheckError` when an answer is not in the top 5 (or the unanswerable question
finds something above the threshold).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tideflow.core.errors import TideflowError

__all__ = ["DemoCheckError", "run_demo"]

VIDEOS = 12


class DemoCheckError(TideflowError):
    """The demo's answers were wrong; the message lists every problem."""


def _pick(queries: list[Any], names: set[str]) -> list[Any]:
    """One question per language and channel whose answer is in the demo's videos, and one
    that no video answers (not one of the deliberate near misses: this is a demo; the
    near misses are in ``video-search eval``)."""
    picked, seen = [], set()
    for query in queries:
        inside = query.answerable and all(t.video_id in names for t in query.relevant)
        key = (query.language, query.channel)
        if inside and key not in seen and "+" not in query.channel:
            picked.append(query)
            seen.add(key)
    unanswerable = next(q for q in queries if q.id == "none-003")
    return [*picked[:6], unanswerable]


def run_demo(workdir: Path, *, console: Any) -> dict[str, Any]:
    """Run the demo in ``workdir`` (made fresh by the caller); returns its figures."""
    from rich.table import Table

    from tideflow_video_search.evaluate import is_relevant, load_queries
    from tideflow_video_search.ingest import Ingest
    from tideflow_video_search.samples import make_samples
    from tideflow_video_search.search import SearchIndex

    videos, index_dir = workdir / "videos", workdir / "index"
    corpus = make_samples(videos, count=VIDEOS)
    minutes = sum(v.duration_s for v in corpus.videos) / 60
    console.print(f"generated {len(corpus.videos)} videos ({minutes:.1f} min) in {videos}")
    started = time.perf_counter()
    result = Ingest(str(videos), index_dir).run(progress=None)
    wall = time.perf_counter() - started
    console.print(
        f"ingested: {result.job.rows_out} rows (segments and frames), "
        f"{result.job.dead_letters} dead letters, {wall:.0f} s "
        f"({minutes / (wall / 60):.1f} video-minutes per minute, actor start-up included)"
    )
    index = SearchIndex(index_dir)
    names = {v.video_id for v in corpus.videos}
    table = Table(title="questions (paraphrases, never the on-screen or spoken words)")
    for column in ("question", "answer's moment", "source", "rank", "score"):
        table.add_column(column)
    problems = []
    for query in _pick(load_queries(), names):
        hits = index.search(query.query, k=5)
        if query.answerable:
            ranks = [
                n
                for n, hit in enumerate(hits, start=1)
                if any(is_relevant(hit.to_dict(), t) for t in query.relevant)
            ]
            shown = hits[ranks[0] - 1] if ranks else (hits[0] if hits else None)
            ok = bool(ranks)
            rank = str(ranks[0]) if ranks else "not in top 5"
        else:
            above = [h for h in hits if h.score > index.score_threshold]
            shown = above[0] if above else None
            ok = not above
            rank = "none above threshold" if ok else "answered!"
        if not ok:
            problems.append(f"{query.id} {query.query!r}: {rank}")
        moment = (
            f"{shown.video_id} {shown.start_s:.1f}–{shown.end_s:.1f} s: {shown.text[:48]}"
            if shown is not None
            else ""
        )
        table.add_row(
            query.query,
            moment,
            shown.source if shown is not None else "",
            rank,
            f"{shown.score:.2f}" if shown is not None else "",
        )
    console.print(table)
    console.print(
        f"try it: video-search query --index {index_dir} 'your question'  |  "
        f"video-search serve --index {index_dir}"
    )
    if problems:
        raise DemoCheckError("; ".join(problems))
    return {"videos": len(corpus.videos), "rows": result.job.rows_out, "wall_s": wall}
