"""The generated corpus and the frozen query file: layout, determinism, and the rules the
questions keep (paraphrases, known targets, enough of each channel and language)."""

from __future__ import annotations

import hashlib
import re
import shutil
from collections import Counter
from pathlib import Path

import av
import pytest

from tideflow.core.errors import ConfigError
from tideflow_video_search.evaluate import CHANNELS, Query, load_queries
from tideflow_video_search.samples import (
    LANGUAGES,
    MAX_COUNT,
    MIN_COUNT,
    QUERIES_FILE,
    SampleCorpus,
    build_queries,
    load_truth,
    make_bad_samples,
    make_samples,
    plan_samples,
)


@pytest.fixture
def media_tools() -> None:
    """No skip: `make test` installs them (make system-deps); a missing one fails by name."""
    assert shutil.which("espeak-ng"), "needs espeak-ng: make system-deps installs it"
    font = Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc")
    assert font.exists(), "needs fonts-wqy-microhei: make system-deps installs it"


needs_media_tools = pytest.mark.usefixtures("media_tools")


@pytest.fixture(scope="module")
def corpus() -> SampleCorpus:
    return plan_samples()


@pytest.fixture(scope="module")
def queries() -> list[Query]:
    return load_queries()


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


# --------------------------------------------------------------------------- layout


def test_plan_is_deterministic_in_its_seed() -> None:
    assert plan_samples(6, seed=3) == plan_samples(6, seed=3)
    assert plan_samples(6, seed=3) != plan_samples(6, seed=4)


def test_six_videos_hold_every_channel_carrier_and_language() -> None:
    small = plan_samples(6)
    spans = [s for v in small.videos for s in v.spans]
    assert {s.channel for s in spans} == set(CHANNELS)
    assert {s.carrier for s in spans} == {"slide", "speech", "srt", "vtt", "mov_text"}
    assert {v.language for v in small.videos} == set(LANGUAGES)


def test_default_corpus_has_64_videos_of_8_to_about_20_seconds(corpus: SampleCorpus) -> None:
    assert len(corpus.videos) == 64
    assert len({v.video_id for v in corpus.videos}) == 64
    assert all(8.0 <= v.duration_s <= 21.5 for v in corpus.videos)
    assert all(s.end_s <= v.duration_s for v in corpus.videos for s in v.spans)


def test_speech_is_in_about_a_third_of_the_videos_and_never_chinese(
    corpus: SampleCorpus,
) -> None:
    speaking = [v for v in corpus.videos if v.has_speech]
    assert 15 <= len(speaking) <= 25
    assert {v.language for v in speaking} == {"en", "es"}


def test_each_channel_holds_at_least_15_facts_alone_and_some_facts_are_in_two(
    corpus: SampleCorpus,
) -> None:
    homes = {f.id: {s.channel for _, s in corpus.spans_of(f.id)} for f in corpus.facts}
    alone = Counter(next(iter(c)) for c in homes.values() if len(c) == 1)
    assert all(alone[channel] >= 15 for channel in CHANNELS)
    assert sum(len(c) == 2 for c in homes.values()) >= 15


def test_twins_differ_in_one_number_and_live_in_other_videos(corpus: SampleCorpus) -> None:
    facts = {f.id: f for f in corpus.facts}
    twins = [f for f in corpus.facts if f.id.endswith("-twin")]
    assert len(twins) >= 8
    for twin in twins:
        original = facts[twin.id.removesuffix("-twin")]
        assert original.twin is not None
        number, other = original.twin
        assert original.text.count(number) == 1
        assert original.question.count(number) == 1
        assert twin.text == original.text.replace(number, other)
        here = {v for v, _ in corpus.spans_of(original.id)}
        there = {v for v, _ in corpus.spans_of(twin.id)}
        assert here.isdisjoint(there)


def test_shared_facts_are_in_two_videos(corpus: SampleCorpus) -> None:
    shared = [f for f in corpus.facts if f.shared]
    assert len(shared) >= 4
    assert all(len({v for v, _ in corpus.spans_of(f.id)}) == 2 for f in shared)


def test_some_slides_come_back_later_in_their_video(corpus: SampleCorpus) -> None:
    repeated = [
        v
        for v in corpus.videos
        if any(n > 1 for n in Counter(s.fact for s in v.channel("ocr") if s.fact).values())
    ]
    assert len(repeated) >= 5


@pytest.mark.parametrize("count", [MIN_COUNT, 12, 20, MAX_COUNT])
def test_every_seed_places_each_fact_where_its_truth_says(count: int) -> None:
    for seed in range(31):
        corpus = plan_samples(count, seed=seed)
        where = {f.id: {v for v, _ in corpus.spans_of(f.id)} for f in corpus.facts}
        stated = {s.fact for v in corpus.videos for s in v.spans if s.fact}
        assert stated == set(where), (seed, stated ^ set(where))
        for fact in corpus.facts:
            expected = 2 if fact.shared else 1
            assert len(where[fact.id]) == expected, (seed, fact.id, sorted(where[fact.id]))
            if fact.twin:
                twin = where.get(f"{fact.id}-twin", set())
                assert twin and twin.isdisjoint(where[fact.id]), (seed, fact.id)
            if fact.id.endswith("-twin"):
                assert fact.id.removesuffix("-twin") in where, (seed, fact.id)


def test_more_videos_than_the_catalog_fills_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"count must be in 1\.\.64"):
        plan_samples(65)
    with pytest.raises(ConfigError, match="languages"):
        plan_samples(6, languages=("fr",))


# --------------------------------------------------------------------------- files


@needs_media_tools
def test_make_samples_is_byte_for_byte_deterministic(tmp_path: Path) -> None:
    first = make_samples(tmp_path / "a", count=6, seed=1)
    make_samples(tmp_path / "b", count=6, seed=1)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert load_truth(tmp_path / "a") == first == plan_samples(6, seed=1)


@needs_media_tools
def test_written_videos_carry_their_streams_and_sidecars(tmp_path: Path) -> None:
    corpus = make_samples(tmp_path, count=6)
    for video in corpus.videos:
        with av.open(str(tmp_path / video.video_id)) as container:
            assert container.duration / 1e6 == pytest.approx(video.duration_s, abs=0.3)
            assert bool(container.streams.audio) == video.has_speech
            embedded = any(s.carrier == "mov_text" for s in video.spans)
            assert bool(container.streams.subtitles) == embedded
        if video.sidecar:
            sidecar = (tmp_path / video.sidecar).read_text(encoding="utf-8")
            for span in video.channel("subtitle"):
                assert span.text in sidecar
    assert {p.suffix for p in tmp_path.rglob("*.*")} >= {".mp4", ".srt", ".vtt", ".json"}


@needs_media_tools
def test_the_folder_holds_the_questions_of_its_own_corpus(tmp_path: Path) -> None:
    corpus = make_samples(tmp_path, count=6, seed=3)

    queries = load_queries(tmp_path / QUERIES_FILE)

    assert [q.query for q in queries] == [r["query"] for r in build_queries(corpus)]
    targets = {t.video_id for q in queries for t in q.relevant}
    assert targets and all((tmp_path / video_id).is_file() for video_id in targets)


@needs_media_tools
def test_bad_samples_go_to_their_own_folder(tmp_path: Path) -> None:
    bad = make_bad_samples(tmp_path)
    assert all(video_id.startswith("bad/") for video_id in bad)
    assert all((tmp_path / video_id).exists() for video_id in bad)
    assert (tmp_path / "bad/empty.mp4").stat().st_size == 0
    with pytest.raises(av.error.FFmpegError):
        av.open(str(tmp_path / "bad/corrupt.mp4")).close()
    with av.open(str(tmp_path / "bad/silent.mp4")) as container:
        assert not container.streams.audio
        assert not container.streams.subtitles
    broken = (tmp_path / "bad/broken-subtitles.srt").read_text(encoding="utf-8")
    assert not re.search(r"\d\d:\d\d:\d\d,\d{3} --> \d\d:\d\d:\d\d,\d{3}", broken)


# --------------------------------------------------------------------------- the query file


def test_query_ids_are_unique(queries: list[Query]) -> None:
    assert len({q.id for q in queries}) == len(queries)


def test_at_least_120_answerable_and_20_unanswerable_queries(queries: list[Query]) -> None:
    assert sum(q.answerable for q in queries) >= 120
    assert sum(not q.answerable for q in queries) >= 20
    assert all(q.channel == "none" and not q.relevant for q in queries if not q.answerable)


def test_each_channel_and_language_has_enough_queries(queries: list[Query]) -> None:
    answerable = [q for q in queries if q.answerable]
    per_channel = Counter(c for q in answerable for c in q.channels)
    per_language = Counter(q.language for q in answerable)
    assert all(per_channel[c] >= 15 for c in CHANNELS)
    assert all(per_language[language] >= 30 for language in LANGUAGES)
    unanswerable = Counter(q.language for q in queries if not q.answerable)
    assert all(unanswerable[language] >= 5 for language in LANGUAGES)


def test_queries_are_written_in_their_language(queries: list[Query]) -> None:
    cjk = re.compile(r"[\u4e00-\u9fff]")
    for query in queries:
        assert bool(cjk.search(query.query)) == (query.language == "zh"), query.id
    spanish = [q for q in queries if q.language == "es"]
    assert all(q.query.startswith("¿") for q in spanish)


def test_every_target_is_a_span_of_the_corpus_in_the_queries_channel(
    queries: list[Query], corpus: SampleCorpus
) -> None:
    videos = {v.video_id: v for v in corpus.videos}
    for query in (q for q in queries if q.answerable):
        for target in query.relevant:
            assert target.video_id in videos, query.id
            spans = [
                s
                for s in videos[target.video_id].spans
                if (round(s.start_s, 2), round(s.end_s, 2)) == (target.start_s, target.end_s)
                and s.fact
            ]
            assert spans, f"{query.id}: no span at {target}"
            assert {s.channel for s in spans} <= set(query.channels), query.id
            assert {s.language for s in spans} == {query.language}, query.id


def test_targets_of_a_query_all_state_the_same_fact(
    queries: list[Query], corpus: SampleCorpus
) -> None:
    videos = {v.video_id: v for v in corpus.videos}
    for query in (q for q in queries if q.answerable):
        facts = {
            s.fact
            for t in query.relevant
            for s in videos[t.video_id].spans
            if (s.start_s, s.end_s) == (t.start_s, t.end_s) and s.fact
        }
        assert len(facts) == 1, query.id


def test_every_fact_of_the_corpus_has_a_query(queries: list[Query], corpus: SampleCorpus) -> None:
    answered = {(t.video_id, t.start_s, t.end_s) for q in queries for t in q.relevant}
    for video in corpus.videos:
        for span in video.spans:
            if span.fact:
                assert (video.video_id, span.start_s, span.end_s) in answered, span.fact


def test_queries_paraphrase_and_never_quote_the_facts(
    queries: list[Query], corpus: SampleCorpus
) -> None:
    texts = {s.text.casefold() for v in corpus.videos for s in v.spans}
    for query in queries:
        asked = query.query.casefold()
        for text in texts:
            assert asked not in text, f"{query.id} is quoted from {text!r}"
            assert text not in asked, f"{query.id} quotes {text!r}"


def test_queries_about_twins_name_their_number(queries: list[Query], corpus: SampleCorpus) -> None:
    by_text = {f.question: f for f in corpus.facts}
    facts = {f.id: f for f in corpus.facts}
    checked = 0
    for query in queries:
        fact = by_text.get(query.query)
        if fact is None or not (fact.twin or fact.id.endswith("-twin")):
            continue
        original = facts[fact.id.removesuffix("-twin")]
        assert original.twin is not None
        number = original.twin[1] if fact.id.endswith("-twin") else original.twin[0]
        assert number in query.query, query.id
        checked += 1
    assert checked >= 16
