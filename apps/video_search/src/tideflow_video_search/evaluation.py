"""``video-search eval``: run a query file against an index and score it.

Runs every query through the same :meth:`SearchIndex.search` the CLI and the API use —
hybrid, then each retrieval method alone (BM25 only, vectors only) and each channel alone
(``source=ocr`` …) — and scores the runs with :func:`~tideflow_video_search.evaluate.score_run`.
With the corpus folder (``video-search samples`` wrote its truth there), it also reports the
OCR character error rate and the speech word error rate of the indexed rows.

Goals (issue 17): recall@5 ≥ 0.9, MRR@10 ≥ 0.75, hybrid recall@5 ≥ the best single channel
+ 0.05, unanswerable queries rejected (no hit above the score threshold) ≥ 0.8. A *channel*
is where text comes from (OCR, subtitles, speech): "single channel" is the same search over
one channel's rows. The single *methods* (BM25 alone, vectors alone, over every channel) are
reported beside it, with no goal: on the generated corpus each finds ~99 % of the answers
alone, so it cannot show what fusion adds (hand-made questions with synonyms can).
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path
from typing import Any

from tideflow.core.errors import ConfigError
from tideflow_video_search.evaluate import CHANNELS, load_queries, score_run, transcription_errors
from tideflow_video_search.samples import (
    DEFAULT_QUERIES,
    QUERIES_FILE,
    SampleCorpus,
    load_truth,
)
from tideflow_video_search.schema import FRAME_SOURCE
from tideflow_video_search.search import SearchIndex

__all__ = ["GOALS", "evaluate_index", "format_report"]

GOALS = {"recall@5": 0.9, "mrr@10": 0.75, "hybrid_margin": 0.05, "unanswerable_rejected": 0.8}
"""The quality goals an evaluation is checked against (each a minimum)."""
K = 10


def _run(index: SearchIndex, queries: list[Any], **options: Any) -> dict[str, list[dict[str, Any]]]:
    return {q.id: [h.to_dict() for h in index.search(q.query, k=K, **options)] for q in queries}


def evaluate_index(
    index_dir: str | os.PathLike[str],
    *,
    queries: str | os.PathLike[str] | None = None,
    corpus: str | os.PathLike[str] | None = None,
    index: SearchIndex | None = None,
) -> dict[str, Any]:
    """The report: ``hybrid`` (full scores), ``single`` (recall@5 of each method and
    channel alone), ``goals``, ``latency_ms`` and, with ``corpus``, ``transcription``.

    ``queries``: a JSON lines file; by default the ``queries.jsonl`` that ``video-search
    samples`` wrote into ``corpus`` (the questions of that corpus, whatever its size), else
    the frozen set of the default 64-video corpus."""
    index = index or SearchIndex(index_dir)
    truth = _corpus_truth(corpus) if corpus is not None else None
    if queries is None:
        queries = _default_queries(corpus)
    query_set = load_queries(queries)
    threshold = index.score_threshold
    index.embed_query("warm up")  # the model loads once, outside the latencies
    latencies: list[float] = []
    hybrid: dict[str, list[dict[str, Any]]] = {}
    for query in query_set:
        started = time.perf_counter()
        hybrid[query.id] = [h.to_dict() for h in index.search(query.query, k=K)]
        latencies.append(1000 * (time.perf_counter() - started))
    scored = score_run(query_set, hybrid, score_threshold=threshold)
    single: dict[str, float] = {}
    for mode in ("text", "vector"):
        run = _run(index, query_set, mode=mode)
        single[f"{'bm25' if mode == 'text' else 'vector'}_only"] = score_run(
            query_set, run, score_threshold=threshold
        )["overall"]["recall@5"]
    for channel in CHANNELS:
        run = _run(index, query_set, source=channel)
        single[f"{channel}_only"] = score_run(query_set, run, score_threshold=threshold)["overall"][
            "recall@5"
        ]
    channels = {f"{c}_only" for c in CHANNELS}
    best_name = max(channels, key=lambda name: single[name])
    overall = scored["overall"]
    margin = overall["recall@5"] - single[best_name]
    rejected = scored["unanswerable_rejected"]
    goals = {
        "recall@5": {
            "value": overall["recall@5"],
            "target": "≥ 0.9",
            "met": overall["recall@5"] >= GOALS["recall@5"],
        },
        "mrr@10": {
            "value": overall["mrr@10"],
            "target": "≥ 0.75",
            "met": overall["mrr@10"] >= GOALS["mrr@10"],
        },
        "hybrid_over_best_channel": {
            "value": round(margin, 4),
            "target": f"≥ 0.05 (best single: {best_name})",
            "met": margin >= GOALS["hybrid_margin"],
        },
        "unanswerable_rejected": {
            "value": rejected,
            "target": "≥ 0.8",
            "met": rejected is not None and rejected >= GOALS["unanswerable_rejected"],
        },
    }
    report: dict[str, Any] = {
        "index": str(index_dir),
        "queries": str(queries),
        "embedding": index.embedding,
        "hybrid": scored,
        "single": single,
        "best_single": best_name,
        "goals": goals,
        "latency_ms": {
            "p50": round(statistics.median(latencies), 2),
            "p95": round(sorted(latencies)[max(0, round(0.95 * len(latencies)) - 1)], 2),
        },
    }
    if truth is not None:
        rows = index.dataset.to_table(
            columns=["video_id", "source", "text", "start_s", "end_s"],
            filter=f"source != '{FRAME_SOURCE}'",
        ).to_pylist()
        errors = transcription_errors(truth.videos, rows)
        errors.pop("per_video", None)
        report["transcription"] = errors
    return report


def _corpus_truth(corpus: str | os.PathLike[str]) -> SampleCorpus:
    """The truth of a samples folder, read before any query runs."""
    try:
        return load_truth(corpus)
    except FileNotFoundError as error:
        raise ConfigError(str(error)) from error


def _default_queries(corpus: str | os.PathLike[str] | None) -> Path:
    """The queries of the samples folder (``queries.jsonl``, written with it) when there
    is one, else the frozen set of the default corpus."""
    if corpus is not None and (Path(corpus) / QUERIES_FILE).is_file():
        return Path(corpus) / QUERIES_FILE
    return DEFAULT_QUERIES


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def format_report(report: dict[str, Any]) -> str:
    """The report as a few lines for a terminal."""
    scored = report["hybrid"]
    overall = scored["overall"]
    lines = [
        f"{scored['answerable']} answerable and {scored['unanswerable']} unanswerable queries "
        f"({report['embedding']} embeddings, threshold {scored['score_threshold']})",
        "hybrid:   " + "  ".join(f"{k} {_pct(v)}" for k, v in overall.items() if k != "queries"),
    ]
    for channel, metrics in sorted(scored["per_channel"].items()):
        shown = "  ".join(f"{k} {_pct(v)}" for k, v in metrics.items() if k != "queries")
        lines.append(f"  {channel:<9} ({metrics.get('queries', 0)} queries) {shown}")
    lines.append(
        "alone (recall@5): " + "  ".join(f"{k} {_pct(v)}" for k, v in report["single"].items())
    )
    lines.append(f"unanswerable rejected: {_pct(scored['unanswerable_rejected'])}")
    if "transcription" in report:
        t = report["transcription"]
        lines.append(f"OCR CER {_pct(t['ocr_cer'])}  speech WER {_pct(t['speech_wer'])}")
    lines.append(
        f"latency p50 {report['latency_ms']['p50']} ms, p95 {report['latency_ms']['p95']} ms"
    )
    for name, goal in report["goals"].items():
        verdict = "met" if goal["met"] else "MISSED"
        lines.append(f"goal {name}: {goal['value']} (target {goal['target']}) {verdict}")
    return "\n".join(lines)
