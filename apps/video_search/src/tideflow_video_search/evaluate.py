"""Scoring search runs and transcriptions against the generated corpus: pure functions.

A *query file* holds one JSON object a line: ``id``, ``query``, ``language``, ``channel``
(where the fact is held: ``ocr``, ``subtitle``, ``speech``, several joined by ``+``, or
``none``), ``answerable`` and ``relevant`` (targets: ``video_id``, ``start_s``, ``end_s``).
A *hit* is a search result: a mapping with ``video_id``, ``start_s``, ``end_s``, ``score``
(and usually ``source``), in rank order.

Metrics over the answerable queries (k = 1, 5, 10):

- ``recall@k``: the fraction of queries with *at least one* relevant hit in the top k
  (success@k: a query with two relevant videos counts as found when either is).
- ``mrr@10``: the mean of 1 / rank of the first relevant hit in the top 10 (0 when none).
- ``ndcg@10``: binary gains, one per relevant *video*: a hit gains 1 when it matches a
  target of a video no earlier hit matched (a second segment of the same video gains
  nothing); ideal: every relevant video at the top.

And over the unanswerable ones, ``unanswerable_rejected``: the fraction of them with no hit
scoring above the threshold.
"""

from __future__ import annotations

import json
import math
import os
import unicodedata
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tideflow.core.errors import ConfigError
from tideflow_video_search.samples import DEFAULT_QUERIES, VideoTruth

__all__ = [
    # queries
    "Query",
    "Target",
    "load_queries",
    # ranking
    "CHANNELS",
    "KS",
    "is_relevant",
    "score_run",
    # transcription
    "character_error_rate",
    "edit_distance",
    "transcription_errors",
    "word_error_rate",
    "words",
]

CHANNELS = ("ocr", "subtitle", "speech")
"""The channels a segment comes from, in report order."""
KS = (1, 5, 10)
"""The cut-offs at which recall is reported (recall@1, @5, @10)."""


@dataclass(frozen=True, kw_only=True)
class Target:
    """Where a relevant answer is: a video and a time span."""

    video_id: str
    start_s: float
    end_s: float


@dataclass(frozen=True, kw_only=True)
class Query:
    """One question and where its answer is."""

    id: str
    query: str
    language: str = "und"
    channel: str = "none"
    """The channel(s) holding the fact (``ocr``, ``subtitle``, ``speech`` joined by ``+``)."""
    answerable: bool = True
    relevant: tuple[Target, ...] = ()

    @property
    def channels(self) -> tuple[str, ...]:
        return tuple(c for c in self.channel.split("+") if c and c != "none")


def load_queries(path: str | os.PathLike[str] = DEFAULT_QUERIES) -> list[Query]:
    """Read a query file (JSON lines; blank lines skipped). Only ``id`` and ``query`` are
    required; ``answerable`` defaults to whether ``relevant`` is non-empty. Ids must be
    unique; an answerable query needs a target."""
    queries: list[Query] = []
    seen: set[str] = set()
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        message = f"cannot read the query file {str(path)!r}: {reason}; expected a JSON lines file"
        raise ConfigError(message) from error
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            record = json.loads(line)
            relevant = tuple(
                Target(
                    video_id=str(r["video_id"]),
                    start_s=float(r["start_s"]),
                    end_s=float(r["end_s"]),
                )
                for r in record.get("relevant", ())
            )
            query = Query(
                id=str(record["id"]),
                query=str(record["query"]),
                language=str(record.get("language", "und")),
                channel=str(record.get("channel", "none")),
                answerable=bool(record.get("answerable", bool(relevant))),
                relevant=relevant,
            )
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
            message = (
                f"{where}: expected a JSON object with id, query and optionally language, "
                f"channel, answerable, relevant [{{video_id, start_s, end_s}}]; {error!r}"
            )
            raise ConfigError(message) from error
        if query.id in seen:
            raise ConfigError(f"{where}: query id {query.id!r} appears twice")
        if query.answerable and not query.relevant:
            raise ConfigError(f"{where}: query {query.id!r} is answerable but has no target")
        seen.add(query.id)
        queries.append(query)
    if not queries:
        message = f"the query file {str(path)!r} holds no queries: expected one JSON object a line"
        raise ConfigError(message)
    return queries


# --------------------------------------------------------------------------- ranking


def _field(item: Target | Mapping[str, Any], name: str) -> Any:
    return item[name] if isinstance(item, Mapping) else getattr(item, name)


def is_relevant(
    hit: Mapping[str, Any], target: Target | Mapping[str, Any], tolerance_s: float = 1.0
) -> bool:
    """Whether ``hit`` finds ``target``: the same ``video_id``, and time spans that overlap
    once the target is widened by ``tolerance_s`` on each side (touching counts)."""
    if hit["video_id"] != _field(target, "video_id"):
        return False
    start, end = float(_field(target, "start_s")), float(_field(target, "end_s"))
    return float(hit["start_s"]) <= end + tolerance_s and float(hit["end_s"]) >= start - tolerance_s


def _first_relevant_rank(
    hits: Sequence[Mapping[str, Any]], query: Query, k: int, tol: float
) -> int:
    for rank, hit in enumerate(hits[:k], start=1):
        if any(is_relevant(hit, t, tol) for t in query.relevant):
            return rank
    return 0


def _ndcg(hits: Sequence[Mapping[str, Any]], query: Query, k: int, tol: float) -> float:
    videos = {t.video_id for t in query.relevant}
    credited: set[str] = set()
    dcg = 0.0
    for rank, hit in enumerate(hits[:k], start=1):
        matched = {t.video_id for t in query.relevant if is_relevant(hit, t, tol)}
        if matched - credited:
            credited |= matched
            dcg += 1.0 / math.log2(rank + 1)
    ideal = sum(1.0 / math.log2(rank + 1) for rank in range(1, min(len(videos), k) + 1))
    return dcg / ideal if ideal else 0.0


def _score(hit: Mapping[str, Any], query_id: str) -> float:
    if "score" not in hit or hit["score"] is None:
        raise ConfigError(f"a hit of query {query_id!r} has no score: {dict(hit)!r}")
    return float(hit["score"])


def _metrics(per_query: list[dict[str, float]]) -> dict[str, float]:
    names = [f"recall@{k}" for k in KS] + ["mrr@10", "ndcg@10"]
    n = len(per_query)
    summary: dict[str, float] = {
        name: (sum(q[name] for q in per_query) / n if n else 0.0) for name in names
    }
    summary["queries"] = n
    return summary


def score_run(
    queries: Sequence[Query],
    results: Mapping[str, Sequence[Mapping[str, Any]]],
    *,
    score_threshold: float,
    tolerance_s: float = 1.0,
) -> dict[str, Any]:
    """Score one search run: ``results[query_id]`` is the ranked hit list (best first; a
    query missing from ``results`` found nothing). Returns ``overall``, ``per_channel``
    (a query whose fact is in two channels counts in both), ``per_language`` (each:
    ``recall@1/5/10``, ``mrr@10``, ``ndcg@10``, ``queries``), ``unanswerable_rejected``
    (``None`` without unanswerable queries), ``answerable_accepted`` (the fraction of
    answerable queries whose best hit scores above the threshold) and the counts. See the
    module docstring for the definitions."""
    known = {q.id for q in queries}
    strangers = sorted(set(results) - known)
    if strangers:
        shown = ", ".join(map(repr, strangers[:5]))
        raise ConfigError(f"results for {len(strangers)} unknown query ids: {shown}")
    answerable = [q for q in queries if q.answerable]
    unanswerable = [q for q in queries if not q.answerable]
    rows: list[tuple[Query, dict[str, float]]] = []
    accepted = 0
    for query in answerable:
        hits = results.get(query.id, ())
        row = {
            f"recall@{k}": float(_first_relevant_rank(hits, query, k, tolerance_s) > 0) for k in KS
        }
        rank = _first_relevant_rank(hits, query, 10, tolerance_s)
        row["mrr@10"] = 1.0 / rank if rank else 0.0
        row["ndcg@10"] = _ndcg(hits, query, 10, tolerance_s)
        accepted += any(_score(h, query.id) > score_threshold for h in hits)
        rows.append((query, row))
    rejected = sum(
        not any(_score(h, q.id) > score_threshold for h in results.get(q.id, ()))
        for q in unanswerable
    )
    return {
        "queries": len(queries),
        "answerable": len(answerable),
        "unanswerable": len(unanswerable),
        "score_threshold": score_threshold,
        "overall": _metrics([row for _, row in rows]),
        "per_channel": _grouped(rows, lambda q: q.channels),
        "per_language": _grouped(rows, lambda q: (q.language,)),
        "unanswerable_rejected": rejected / len(unanswerable) if unanswerable else None,
        "answerable_accepted": accepted / len(answerable) if answerable else None,
    }


def _grouped(rows: list[tuple[Query, dict[str, float]]], keys: Any) -> dict[str, Any]:
    groups: dict[Hashable, list[dict[str, float]]] = {}
    for query, row in rows:
        for key in keys(query):
            groups.setdefault(key, []).append(row)
    order = [c for c in CHANNELS if c in groups] + sorted(
        str(k) for k in groups if k not in CHANNELS
    )
    return {str(key): _metrics(groups[key]) for key in order}


# --------------------------------------------------------------------------- transcription


def edit_distance(a: Sequence[Hashable], b: Sequence[Hashable]) -> int:
    """Levenshtein distance (insertions, deletions, substitutions) between two sequences."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, start=1):
        current = [i]
        for j, y in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


def _is_cjk(ch: str) -> bool:
    return unicodedata.east_asian_width(ch) in "WF"


def _squeeze(text: str) -> str:
    """Whitespace runs as one space, and none next to a CJK character (line breaks of a
    Chinese slide are not characters that were misread)."""
    parts = text.split()
    out = ""
    for part in parts:
        if out and not (_is_cjk(out[-1]) or _is_cjk(part[0])):
            out += " "
        out += part
    return out


def character_error_rate(ref: str, hyp: str) -> float:
    """Character edit distance ÷ the reference's length, after whitespace runs become one
    space (none between CJK characters). Case counts. An empty reference gives 0.0 for an
    empty hypothesis, else 1.0."""
    want, have = _squeeze(ref), _squeeze(hyp)
    if not want:
        return 0.0 if not have else 1.0
    return edit_distance(want, have) / len(want)


def words(text: str) -> list[str]:
    """WER tokens: case-folded, punctuation dropped, each CJK character a word of its own,
    other words split at whitespace (numbers stay as written: ``340`` ≠ ``three hundred
    forty``)."""
    tokens: list[str] = []
    for raw in text.casefold().split():
        word = ""
        for ch in raw:
            if unicodedata.category(ch).startswith("P") or unicodedata.category(ch) == "Sm":
                if word:
                    tokens.append(word)
                word = ""
            elif _is_cjk(ch):
                if word:
                    tokens.append(word)
                tokens.append(ch)
                word = ""
            else:
                word += ch
        if word:
            tokens.append(word)
    return tokens


def word_error_rate(ref: str, hyp: str) -> float:
    """Word edit distance ÷ the reference's word count, over :func:`words` of each. An
    empty reference gives 0.0 for an empty hypothesis, else 1.0."""
    want, have = words(ref), words(hyp)
    if not want:
        return 0.0 if not have else 1.0
    return edit_distance(want, have) / len(want)


def transcription_errors(
    truth: Iterable[VideoTruth], rows: Iterable[Mapping[str, Any]]
) -> dict[str, Any]:
    """OCR character error rate and speech word error rate of the index ``rows`` (mappings
    with ``video_id``, ``source``, ``text``, ``start_s``, ``end_s``; rows of videos not in
    ``truth`` are ignored) against the generated corpus's truth.

    OCR: rows with the same ``(video_id, start_s, end_s)`` are one *reading* (their texts
    joined in the order given). Each reading is scored against the slide shown at its
    midpoint; a reading over no slide counts all its characters as errors; a slide text
    that no reading of any of its showings matched counts as deleted (a slide shown again
    need not be read again: near-duplicate frames are removed).

    Speech: per video, the spoken sentences in time order against the speech rows' texts in
    time order.

    Both rates are totals (errors ÷ reference units over every video), with ``per_video``
    rates beside them; a rate is ``None`` where the truth holds nothing to read or hear.
    """
    videos = {v.video_id: v for v in truth}
    by_video: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        if row["video_id"] in videos:
            by_video.setdefault(str(row["video_id"]), []).append(row)
    totals = {"ocr_errors": 0, "ocr_chars": 0, "speech_errors": 0, "speech_words": 0}
    per_video: dict[str, dict[str, float | None]] = {}
    for video_id, video in videos.items():
        video_rows = by_video.get(video_id, [])
        ocr_errors, ocr_chars = _ocr_errors(video, [r for r in video_rows if r["source"] == "ocr"])
        speech_errors, speech_words = _speech_errors(
            video, [r for r in video_rows if r["source"] == "speech"]
        )
        totals["ocr_errors"] += ocr_errors
        totals["ocr_chars"] += ocr_chars
        totals["speech_errors"] += speech_errors
        totals["speech_words"] += speech_words
        per_video[video_id] = {
            "ocr_cer": ocr_errors / ocr_chars if ocr_chars else None,
            "speech_wer": speech_errors / speech_words if speech_words else None,
        }
    return {
        "ocr_cer": totals["ocr_errors"] / totals["ocr_chars"] if totals["ocr_chars"] else None,
        "ocr_chars": totals["ocr_chars"],
        "speech_wer": (
            totals["speech_errors"] / totals["speech_words"] if totals["speech_words"] else None
        ),
        "speech_words": totals["speech_words"],
        "per_video": per_video,
    }


def _ocr_errors(video: VideoTruth, rows: list[Mapping[str, Any]]) -> tuple[int, int]:
    slides = video.channel("ocr")
    readings: dict[tuple[float, float], list[str]] = {}
    for row in rows:
        readings.setdefault((float(row["start_s"]), float(row["end_s"])), []).append(
            str(row["text"])
        )
    errors = chars = 0
    read_texts: set[str] = set()
    for (start, end), texts in readings.items():
        hyp = _squeeze(" ".join(texts))
        middle = (start + end) / 2
        slide = next((s for s in slides if s.start_s <= middle < s.end_s), None)
        if slide is None:
            errors += len(hyp)
            continue
        ref = _squeeze(slide.text)
        errors += edit_distance(ref, hyp)
        chars += len(ref)
        read_texts.add(slide.text)
    for text in dict.fromkeys(s.text for s in slides):
        if text not in read_texts:
            errors += len(_squeeze(text))
            chars += len(_squeeze(text))
    return errors, chars


def _speech_errors(video: VideoTruth, rows: list[Mapping[str, Any]]) -> tuple[int, int]:
    spoken = video.channel("speech")
    if not spoken:
        return 0, 0
    ref = words(" ".join(s.text for s in spoken))
    ordered = sorted(rows, key=lambda r: float(r["start_s"]))
    hyp = words(" ".join(str(r["text"]) for r in ordered))
    return edit_distance(ref, hyp), len(ref)
