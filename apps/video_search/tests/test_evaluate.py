"""Metrics on hand-made rankings, the query file reader, and transcription error rates."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from tideflow.core.errors import ConfigError
from tideflow_video_search.evaluate import (
    Query,
    Target,
    character_error_rate,
    is_relevant,
    load_queries,
    score_run,
    transcription_errors,
    word_error_rate,
    words,
)
from tideflow_video_search.samples import Span, VideoTruth


def _hit(video_id: str, start_s: float, end_s: float, score: float = 1.0) -> dict[str, Any]:
    return {"video_id": video_id, "start_s": start_s, "end_s": end_s, "score": score}


def _query(
    qid: str, channel: str, *targets: tuple[str, float, float], language: str = "en"
) -> Query:
    return Query(
        id=qid,
        query=f"question {qid}",
        language=language,
        channel=channel,
        answerable=bool(targets),
        relevant=tuple(Target(video_id=v, start_s=s, end_s=e) for v, s, e in targets),
    )


MISS = _hit("other.mp4", 0.0, 1.0)


# --------------------------------------------------------------------------- relevance


@pytest.mark.parametrize(
    ("hit", "expected"),
    [
        (_hit("a.mp4", 3.0, 4.0), True),  # inside
        (_hit("a.mp4", 0.0, 2.5), True),  # overlaps the start
        (_hit("a.mp4", 8.5, 9.5), True),  # starts within the 1 s tolerance after the end
        (_hit("a.mp4", 9.2, 10.0), False),  # starts beyond it
        (_hit("a.mp4", 0.0, 1.9), False),  # ends more than 1 s before the start
        (_hit("b.mp4", 3.0, 4.0), False),  # another video
    ],
)
def test_a_hit_is_relevant_when_it_overlaps_the_target_in_its_video(
    hit: dict[str, Any], expected: bool
) -> None:
    target = Target(video_id="a.mp4", start_s=3.0, end_s=8.0)
    assert is_relevant(hit, target) is expected


def test_relevance_takes_a_target_as_a_mapping_and_a_tolerance() -> None:
    target = {"video_id": "a.mp4", "start_s": 3.0, "end_s": 8.0}
    assert is_relevant(_hit("a.mp4", 9.2, 10.0), target, tolerance_s=1.5)
    assert not is_relevant(_hit("a.mp4", 8.1, 9.0), target, tolerance_s=0.0)


# --------------------------------------------------------------------------- ranking metrics


def test_a_perfect_run_scores_one_everywhere() -> None:
    queries = [_query("q1", "ocr", ("a.mp4", 0.0, 4.0))]
    report = score_run(queries, {"q1": [_hit("a.mp4", 1.0, 2.0)]}, score_threshold=0.5)
    assert report["overall"] == {
        "recall@1": 1.0,
        "recall@5": 1.0,
        "recall@10": 1.0,
        "mrr@10": 1.0,
        "ndcg@10": 1.0,
        "queries": 1,
    }


def test_metrics_on_a_hand_made_run() -> None:
    queries = [
        _query("q1", "ocr", ("a.mp4", 0.0, 4.0)),  # found at rank 1
        _query("q2", "speech", ("b.mp4", 10.0, 14.0)),  # found at rank 3
        _query("q3", "subtitle", ("c.mp4", 0.0, 2.0)),  # found at rank 7
        _query("q4", "ocr+speech", ("d.mp4", 5.0, 8.0)),  # not found
    ]
    results = {
        "q1": [_hit("a.mp4", 1.0, 2.0), MISS],
        "q2": [MISS, MISS, _hit("b.mp4", 11.0, 12.0)],
        "q3": [MISS] * 6 + [_hit("c.mp4", 0.0, 1.0)],
        "q4": [MISS] * 10 + [_hit("d.mp4", 5.0, 6.0)],  # rank 11: past every cut-off
    }
    overall = score_run(queries, results, score_threshold=0.5)["overall"]
    assert overall["recall@1"] == pytest.approx(1 / 4)
    assert overall["recall@5"] == pytest.approx(2 / 4)
    assert overall["recall@10"] == pytest.approx(3 / 4)
    assert overall["mrr@10"] == pytest.approx((1 + 1 / 3 + 1 / 7) / 4)
    ndcg = (1 + 1 / math.log2(4) + 1 / math.log2(8)) / 4
    assert overall["ndcg@10"] == pytest.approx(ndcg)
    assert overall["ndcg@10"] < 1


def test_per_channel_counts_a_two_channel_query_in_both() -> None:
    queries = [
        _query("q1", "ocr", ("a.mp4", 0.0, 4.0)),
        _query("q2", "ocr+speech", ("b.mp4", 0.0, 4.0)),
    ]
    results = {"q1": [_hit("a.mp4", 0.0, 1.0)], "q2": [MISS]}
    per_channel = score_run(queries, results, score_threshold=0.5)["per_channel"]
    assert list(per_channel) == ["ocr", "speech"]
    assert per_channel["ocr"]["queries"] == 2
    assert per_channel["ocr"]["recall@1"] == pytest.approx(0.5)
    assert per_channel["speech"]["recall@1"] == 0.0


def test_per_language_groups_by_the_queries_language() -> None:
    queries = [
        _query("q1", "ocr", ("a.mp4", 0.0, 4.0), language="zh"),
        _query("q2", "ocr", ("b.mp4", 0.0, 4.0), language="es"),
    ]
    results = {"q1": [_hit("a.mp4", 0.0, 1.0)]}
    per_language = score_run(queries, results, score_threshold=0.5)["per_language"]
    assert per_language["zh"]["mrr@10"] == 1.0
    assert per_language["es"]["mrr@10"] == 0.0


def test_ndcg_credits_each_relevant_video_once() -> None:
    query = _query("q1", "subtitle", ("a.mp4", 0.0, 4.0), ("b.mp4", 6.0, 9.0))
    twice_a = [_hit("a.mp4", 0.0, 1.0), _hit("a.mp4", 2.0, 3.0), _hit("b.mp4", 6.0, 7.0)]
    a_then_b = [_hit("a.mp4", 0.0, 1.0), _hit("b.mp4", 6.0, 7.0)]
    ideal = 1 + 1 / math.log2(3)
    got = score_run([query], {"q1": twice_a}, score_threshold=0.5)["overall"]["ndcg@10"]
    assert got == pytest.approx((1 + 1 / math.log2(4)) / ideal)
    best = score_run([query], {"q1": a_then_b}, score_threshold=0.5)["overall"]["ndcg@10"]
    assert best == pytest.approx(1.0)


def test_recall_needs_only_one_of_several_relevant_videos() -> None:
    query = _query("q1", "subtitle", ("a.mp4", 0.0, 4.0), ("b.mp4", 6.0, 9.0))
    report = score_run([query], {"q1": [_hit("b.mp4", 6.0, 7.0)]}, score_threshold=0.5)
    assert report["overall"]["recall@1"] == 1.0
    assert report["overall"]["ndcg@10"] < 1


def test_unanswerable_queries_are_rejected_when_no_hit_beats_the_threshold() -> None:
    queries = [
        _query("q1", "ocr", ("a.mp4", 0.0, 4.0)),
        _query("u1", "none"),
        _query("u2", "none"),
        _query("u3", "none"),
        _query("u4", "none"),
    ]
    results = {
        "q1": [_hit("a.mp4", 0.0, 1.0, score=0.9)],
        "u1": [_hit("x.mp4", 0.0, 1.0, score=0.2), _hit("y.mp4", 0.0, 1.0, score=0.6)],
        "u2": [_hit("x.mp4", 0.0, 1.0, score=0.5)],  # equal to the threshold: not above it
        "u3": [],
    }
    report = score_run(queries, results, score_threshold=0.5)
    assert report["unanswerable_rejected"] == pytest.approx(3 / 4)
    assert report["answerable_accepted"] == 1.0
    assert (report["answerable"], report["unanswerable"]) == (1, 4)
    assert report["overall"]["queries"] == 1


def test_a_run_without_unanswerable_queries_reports_none() -> None:
    queries = [_query("q1", "ocr", ("a.mp4", 0.0, 4.0))]
    assert score_run(queries, {}, score_threshold=0.0)["unanswerable_rejected"] is None


def test_results_for_unknown_queries_are_an_error() -> None:
    queries = [_query("q1", "ocr", ("a.mp4", 0.0, 4.0))]
    with pytest.raises(ConfigError, match="unknown query ids: 'q9'"):
        score_run(queries, {"q9": []}, score_threshold=0.5)


def test_a_hit_without_a_score_is_an_error() -> None:
    queries = [_query("q1", "ocr", ("a.mp4", 0.0, 4.0))]
    hit = {"video_id": "a.mp4", "start_s": 0.0, "end_s": 1.0}
    with pytest.raises(ConfigError, match="has no score"):
        score_run(queries, {"q1": [hit]}, score_threshold=0.5)


# --------------------------------------------------------------------------- query files


def _write(path: Path, *records: dict[str, Any]) -> Path:
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n\n", encoding="utf-8")
    return path


def test_load_queries_reads_full_and_minimal_records(tmp_path: Path) -> None:
    target = {"video_id": "en/a.mp4", "start_s": 1.0, "end_s": 2.0}
    path = _write(
        tmp_path / "q.jsonl",
        {"id": "a", "query": "where", "language": "en", "channel": "ocr", "relevant": [target]},
        {"id": "b", "query": "nowhere"},
    )
    first, second = load_queries(path)
    assert first.answerable
    assert first.relevant == (Target(video_id="en/a.mp4", start_s=1.0, end_s=2.0),)
    assert first.channels == ("ocr",)
    assert (second.answerable, second.channel, second.language) == (False, "none", "und")
    assert second.channels == ()


def test_load_queries_refuses_duplicate_ids(tmp_path: Path) -> None:
    path = _write(tmp_path / "q.jsonl", {"id": "a", "query": "x"}, {"id": "a", "query": "y"})
    with pytest.raises(ConfigError, match=r"q\.jsonl:2: query id 'a' appears twice"):
        load_queries(path)


def test_load_queries_refuses_an_answerable_query_without_a_target(tmp_path: Path) -> None:
    path = _write(tmp_path / "q.jsonl", {"id": "a", "query": "x", "answerable": True})
    with pytest.raises(ConfigError, match="answerable but has no target"):
        load_queries(path)


def test_load_queries_names_the_line_of_a_broken_record(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    path.write_text('{"id": "a", "query": "x"}\n{"id": "b"}\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"q\.jsonl:2: expected a JSON object"):
        load_queries(path)


# --------------------------------------------------------------------------- error rates


def test_character_error_rate_counts_edits_per_reference_character() -> None:
    assert character_error_rate("abcd", "abcd") == 0.0
    assert character_error_rate("abcd", "abxd") == pytest.approx(1 / 4)
    assert character_error_rate("abcd", "ab") == pytest.approx(2 / 4)
    assert character_error_rate("Lake  Emmer\n", "Lake Emmer") == 0.0
    assert character_error_rate("Lake", "lake") == pytest.approx(1 / 4)


def test_character_error_rate_ignores_line_breaks_in_chinese() -> None:
    assert character_error_rate("青石镇图书馆\n每周三开放", "青石镇图书馆 每周三开放") == 0.0
    assert character_error_rate("青石镇", "青木镇") == pytest.approx(1 / 3)


def test_error_rates_of_an_empty_reference() -> None:
    assert character_error_rate("", "") == 0.0
    assert character_error_rate(" ", "x") == 1.0
    assert word_error_rate("", "") == 0.0
    assert word_error_rate("", "hello") == 1.0


def test_word_error_rate_ignores_case_and_punctuation() -> None:
    assert word_error_rate("The ferry, at noon.", "the ferry at noon") == 0.0
    assert word_error_rate("the ferry at noon", "the fairy at noon") == pytest.approx(1 / 4)
    assert word_error_rate("the ferry at noon", "the ferry at noon today") == pytest.approx(1 / 4)
    assert word_error_rate("carries 340 people", "carries three hundred forty people") > 0


def test_word_error_rate_counts_each_chinese_character_as_a_word() -> None:
    assert words("白鹭湖 ferry，1200名") == ["白", "鹭", "湖", "ferry", "1200", "名"]
    assert word_error_rate("白鹭湖渡轮", "白露湖渡轮") == pytest.approx(1 / 5)


def _video() -> VideoTruth:
    def span(channel: str, start: float, end: float, text: str, fact: str | None) -> Span:
        carrier = "slide" if channel == "ocr" else channel
        return Span(
            channel=channel,
            carrier=carrier,
            start_s=start,
            end_s=end,
            text=text,
            language="en",
            fact=fact,
        )

    return VideoTruth(
        video_id="en/a.mp4",
        language="en",
        duration_s=20.0,
        spans=(
            span("ocr", 0.0, 2.0, "News", None),
            span("ocr", 2.0, 7.0, "Ferry at noon", "f1"),
            span("ocr", 8.0, 12.0, "Bridge closed", "f2"),
            span("ocr", 13.0, 15.0, "Ferry at noon", "f1"),  # shown again
            span("speech", 2.0, 7.0, "The ferry leaves at noon.", "f1"),
            span("speech", 15.0, 19.0, "Snow on the pass.", "f3"),
        ),
    )


def _row(source: str, start: float, end: float, text: str) -> dict[str, Any]:
    return {"video_id": "en/a.mp4", "source": source, "start_s": start, "end_s": end, "text": text}


def test_perfect_transcriptions_have_no_errors() -> None:
    rows = [
        _row("ocr", 0.0, 1.0, "News"),
        _row("ocr", 2.0, 6.0, "Ferry at"),  # two lines of one reading
        _row("ocr", 2.0, 6.0, "noon"),
        _row("ocr", 8.0, 11.0, "Bridge closed"),
        _row("speech", 15.2, 18.0, "Snow on the pass"),
        _row("speech", 2.1, 6.0, "The ferry leaves at noon"),
        _row("subtitle", 0.0, 1.0, "ignored"),
        {**_row("ocr", 0.0, 1.0, "another video"), "video_id": "en/b.mp4"},
    ]
    report = transcription_errors([_video()], rows)
    assert report["ocr_cer"] == 0.0
    assert report["speech_wer"] == 0.0
    assert report["ocr_chars"] == len("News") + len("Ferry at noon") + len("Bridge closed")
    assert report["speech_words"] == 9


def test_misreadings_deletions_and_insertions_count_as_ocr_errors() -> None:
    rows = [
        _row("ocr", 0.0, 1.0, "Nevs"),  # one substitution
        _row("ocr", 2.0, 6.0, "Ferry at noon"),
        _row("ocr", 15.5, 16.5, "xy"),  # over no slide: 2 inserted characters
        # "Bridge closed" never read: 13 deleted characters
    ]
    report = transcription_errors([_video()], rows)
    chars = len("News") + len("Ferry at noon") + len("Bridge closed")
    assert report["ocr_cer"] == pytest.approx((1 + 2 + 13) / chars)
    assert report["speech_wer"] == 1.0  # nothing heard: every word deleted
    assert report["per_video"]["en/a.mp4"]["ocr_cer"] == report["ocr_cer"]


def test_a_video_without_text_or_speech_has_no_rates() -> None:
    silent = VideoTruth(video_id="en/b.mp4", language="en", duration_s=5.0, spans=())
    report = transcription_errors([silent], [])
    assert report["ocr_cer"] is None
    assert report["speech_wer"] is None
    assert report["per_video"] == {"en/b.mp4": {"ocr_cer": None, "speech_wer": None}}
