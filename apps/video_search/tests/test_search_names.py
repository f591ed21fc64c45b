"""A hit that does not mention the names a query asks about scores lower: "the Northwind
ferry" is not answered by a moment about "the Varnholt ferry"."""

from __future__ import annotations

import pytest

from tideflow_video_search.names import name_coverage, query_names
from tideflow_video_search.search import SearchIndex, reference_level


@pytest.mark.parametrize(
    ("query", "names"),
    [
        ("How many passengers fit on the Silver Gull ferry?", ["silver", "gull"]),
        ("¿Cuánto mide el puente de San Bartolo?", ["san", "bartolo"]),
        ("What is Amaury Lisk's noodle bar called?", ["amaury", "lisk"]),
        ("Which company makes the Strata X9 scooter?", ["strata", "x9"]),
        ("Is it open? When does Ávila's market open?", ["avila"]),  # "When" begins a sentence
        ("Varnholt ferry capacity", []),  # the first word begins the sentence
        ("blue heron ferry", []),
        ("青石镇游泳馆几点开门？", []),
        ("Where can I go", []),  # one letter
    ],
)
def test_the_names_of_a_query_are_its_capitalized_words_inside_a_sentence(query, names) -> None:
    assert query_names(query) == names


def test_a_name_is_found_in_spelling_variants_but_not_in_other_names() -> None:
    assert name_coverage(["pine", "harbor"], "A pine harbour leaves at 11.15") == 1.0
    assert name_coverage(["stone", "bridge"], "The Stonebridge Museum has a new room") == 1.0
    assert name_coverage(["aguila"], "La carretera del Paso del Águila") == 1.0
    assert name_coverage(["northwind", "tarrow"], "The Varnholt ferry on Lake Emmer") == 1 / 3
    assert name_coverage(["northwind", "emmer"], "The Varnholt ferry on Lake Emmer") == 2 / 3
    assert name_coverage([], "anything") == 1.0


def test_a_query_naming_what_no_video_mentions_falls_below_the_threshold(indexed) -> None:
    index = SearchIndex(indexed.index)
    asked = index.search("How many people does the Varnholt ferry take?", k=3)
    assert (asked[0].video_id, asked[0].source) == ("slides.mp4", "ocr")
    assert asked[0].score >= index.score_threshold
    # The same question about another ferry: the same moment is the nearest, but it does
    # not mention the ferry asked about, so it is not offered as an answer.
    other = index.search("How many people does the Northwind ferry take?", k=3)
    without_names = index.search("how many people does the northwind ferry take?", k=3)
    assert other[0].score < index.score_threshold
    # Written without capitals, the query names nothing and is scored as before: the same
    # moment, above the threshold.
    assert without_names[0].segment_id == other[0].segment_id
    assert without_names[0].score >= index.score_threshold


def test_the_reference_level_is_taken_in_the_query_language_when_it_has_enough_rows() -> None:
    # A small index: five Chinese rows among English ones. Against the median of all the
    # candidates every Chinese row would stand out; against the Chinese rows' median only
    # the one that answers does.
    cosines = [0.9, 0.8, 0.79, 0.78, 0.77, 0.2, 0.1, 0.1, 0.1, 0.1, 0.1]
    languages = ["zh"] * 5 + ["en"] * 6
    assert reference_level(cosines, languages, "zh") == pytest.approx(0.79)
    assert reference_level(cosines, languages, "en") == pytest.approx(0.1)
    # Too few rows in the query's language: all the candidates.
    assert reference_level(cosines, languages, "es") == pytest.approx(0.2)
    assert reference_level(cosines[:4] + cosines[5:], languages[:4] + languages[5:], "zh") == (
        pytest.approx(0.15)
    )
    assert reference_level([], [], "en") == 0.0


def _frame(path, t: float):
    import av

    with av.open(str(path)) as container:
        best = None
        for frame in container.decode(video=0):
            if frame.time is not None and frame.time <= t:
                best = frame.to_ndarray(format="rgb24")
            elif best is not None:
                break
    return best


def test_a_picture_cut_by_a_shard_boundary_is_one_moment_in_query_by_frame(indexed) -> None:
    # slides.mp4 shows its first slide from 0 to 5 s; shards are 4 s, so its frame rows
    # are 0–4 and 4–5. A screenshot from either side finds the whole moment.
    index = SearchIndex(indexed.index)
    for t in (1.0, 4.5):
        top = index.search_frame(_frame(indexed.videos / "slides.mp4", t), k=3)[0]
        assert top.video_id == "slides.mp4"
        assert top.start_s <= 1.0 and top.end_s >= 4.5, (t, top)
        assert top.end_s <= 5.5  # not the second slide (other text)
    hits = index.search_frame(_frame(indexed.videos / "slides.mp4", 1.0), k=5)
    assert len({(h.video_id, h.start_s) for h in hits}) == len(hits)  # one hit per moment
