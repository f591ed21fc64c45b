"""The frozen questions: one query per fact a corpus states, then the unanswerable ones."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from tideflow_video_search._sample_facts import UNANSWERABLE
from tideflow_video_search._sample_plan import plan_samples
from tideflow_video_search._sample_truth import LANGUAGES, SampleCorpus

QUERIES_FILE = "queries.jsonl"
"""The query file :func:`~tideflow_video_search.samples.make_samples` writes beside the
videos: :func:`build_queries` of that corpus."""
DEFAULT_QUERIES = Path(__file__).parent / "data" / QUERIES_FILE
"""The frozen query file for the default corpus (``make_samples(dir)``: 64 videos, seed 0)."""


def build_queries(corpus: SampleCorpus) -> list[dict[str, Any]]:
    """One query per fact the corpus states (its paraphrased question; relevant: every span
    stating it), then :data:`UNANSWERABLE`. The record of ``data/queries.jsonl``."""
    queries: list[dict[str, Any]] = []
    counters: dict[str, int] = {}
    for fact in sorted(corpus.facts, key=lambda f: (LANGUAGES.index(f.language), f.id)):
        places = corpus.spans_of(fact.id)
        channels = [
            c for c in ("ocr", "subtitle", "speech") if any(s.channel == c for _, s in places)
        ]
        relevant = sorted({(v, round(s.start_s, 2), round(s.end_s, 2)) for v, s in places})
        counters[fact.language] = counters.get(fact.language, 0) + 1
        queries.append(
            {
                "id": f"{fact.language}-{counters[fact.language]:03d}",
                "query": fact.question,
                "language": fact.language,
                "channel": "+".join(channels),
                "answerable": True,
                "relevant": [
                    {"video_id": v, "start_s": start, "end_s": end} for v, start, end in relevant
                ],
            }
        )
    for n, (language, question) in enumerate(
        (u for u in UNANSWERABLE if u[0] in corpus.languages), start=1
    ):
        queries.append(
            {
                "id": f"none-{n:03d}",
                "query": question,
                "language": language,
                "channel": "none",
                "answerable": False,
                "relevant": [],
            }
        )
    return queries


def write_queries(
    path: str | os.PathLike[str] = DEFAULT_QUERIES, corpus: SampleCorpus | None = None
) -> int:
    """Write :func:`build_queries` of ``corpus`` (default: the default corpus) as JSON lines;
    return how many. Used once to freeze ``data/queries.jsonl``, then reviewed by hand."""
    records = build_queries(corpus or plan_samples())
    lines = [json.dumps(r, ensure_ascii=False) for r in records]
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return len(records)
