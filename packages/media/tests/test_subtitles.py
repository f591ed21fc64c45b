"""Subtitles: SRT/WebVTT parsing, sidecar discovery, embedded streams, the operator."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from _media_helpers import shard_row, write_video

from tideflow.core.testing import S3Server, moto_s3_server
from tideflow.media import subtitles
from tideflow.media.errors import SubtitleError
from tideflow.media.subtitles import (
    CUE_TYPE,
    Cue,
    ReadSubtitles,
    embedded_cues,
    normalize_language,
    parse_srt,
    parse_vtt,
    read_sidecar,
    sidecar_files,
)
from tideflow.streaming import RecordErrors

SRT = """1
00:00:01,000 --> 00:00:02,500
Hello there,
general Kenobi.

2
00:00:03,000 --> 00:00:04,000
Second cue
"""

VTT = """WEBVTT - a talk
Kind: captions
Language: eng

NOTE this is a comment
that spans two lines

STYLE
::cue { color: yellow }

intro
00:01.000 --> 00:02.500 align:start position:10%
<v Roger>Hello</v> <c.yellow>there</c>

00:00:03.000 --> 00:00:04.000
<00:00:03.500>Second &amp; last
"""


def _video(path: Path, cues: Sequence[tuple[float, float, str]] = (), seconds: int = 6) -> Path:
    frames = [np.full((48, 64, 3), 40 * (i % 5), np.uint8) for i in range(seconds * 2)]
    return write_video(path, frames, fps=2, subtitles=cues)


def _shards(uri: str, bounds: list[tuple[float, float]], **values: object) -> pa.Table:
    rows = [
        shard_row(uri, s, e, shard=k, shards=len(bounds), **values)
        for k, (s, e) in enumerate(bounds)
    ]
    return pa.Table.from_pylist(rows)


# --- parsing --------------------------------------------------------------------------------


def test_srt_cues_are_timed_and_multi_line_text_is_joined() -> None:
    assert parse_srt(SRT, name="a.srt") == [
        Cue(1.0, 2.5, "Hello there, general Kenobi.", None),
        Cue(3.0, 4.0, "Second cue", None),
    ]


def test_srt_tags_overrides_and_entities_are_removed() -> None:
    body = '{\\an8}<i>Fish</i> &amp; <font color="red">chips</font>'
    text = f"1\n00:00:01,000 --> 00:00:02,000\n{body}\n"
    assert parse_srt(text, name="a.srt")[0].text == "Fish & chips"


def test_srt_with_a_bom_and_crlf_line_ends_parses() -> None:
    text = "\ufeff" + SRT.replace("\n", "\r\n")
    assert [c.text for c in parse_srt(text, name="a.srt")] == [
        "Hello there, general Kenobi.",
        "Second cue",
    ]


def test_srt_language_is_given_to_every_cue() -> None:
    assert {c.language for c in parse_srt(SRT, name="a.srt", language="de")} == {"de"}


def test_srt_text_after_a_blank_line_continues_the_cue() -> None:
    text = "1\n00:00:01,000 --> 00:00:02,000\nfirst part\n\nsecond part\n"
    assert parse_srt(text, name="a.srt") == [Cue(1.0, 2.0, "first part second part")]


def test_srt_with_garbage_timestamps_names_the_file_and_line() -> None:
    text = SRT.replace("00:00:03,000 --> 00:00:04,000", "00:00:03,000 --> 00:7x:04,000")
    with pytest.raises(SubtitleError, match=r"talk\.srt: line 7: expected a timing line"):
        parse_srt(text, name="/videos/talk.srt")


def test_a_file_that_is_not_srt_names_its_first_line() -> None:
    with pytest.raises(SubtitleError, match=r"notes\.srt: line 1: .*'Dear diary,'"):
        parse_srt("Dear diary,\ntoday I parsed nothing.\n", name="notes.srt")


def test_srt_cue_ending_before_it_starts_is_malformed() -> None:
    with pytest.raises(SubtitleError, match="line 2: the cue ends"):
        parse_srt("1\n00:00:05,000 --> 00:00:04,000\nbackwards\n", name="a.srt")


def test_srt_error_messages_mask_credentials() -> None:
    with pytest.raises(SubtitleError) as caught:
        parse_srt("junk\n", name="s3://KEY:SECRET@bucket/a.srt?secret_key=SECRET")
    assert "SECRET" not in str(caught.value)


def test_vtt_skips_header_notes_and_styles_and_strips_voice_and_class_tags() -> None:
    assert parse_vtt(VTT, name="a.vtt") == [
        Cue(1.0, 2.5, "Hello there", "en"),
        Cue(3.0, 4.0, "Second & last", "en"),
    ]


def test_vtt_without_the_webvtt_line_is_refused() -> None:
    with pytest.raises(SubtitleError, match=r"a\.vtt: line 1: expected 'WEBVTT'"):
        parse_vtt(SRT, name="a.vtt")


def test_vtt_with_a_comma_in_a_timestamp_names_the_line() -> None:
    text = "\ufeffWEBVTT\n\n00:01,000 --> 00:02.000\nhi\n"
    with pytest.raises(SubtitleError, match="line 3"):
        parse_vtt(text, name="a.vtt")


@pytest.mark.parametrize(
    ("code", "expected"),
    [("eng", "en"), ("zho", "zh"), ("chi", "zh"), ("spa", "es"), ("deu", "de"), ("fra", "fr"),
     ("en", "en"), ("zh-Hans", "zh-Hans"), ("pt_BR", "pt-BR"), ("und", None), (None, None)],
)  # fmt: skip
def test_language_codes_are_normalised(code: str | None, expected: str | None) -> None:
    assert normalize_language(code) == expected


# --- sidecar files --------------------------------------------------------------------------


def test_sidecars_beside_a_local_video_with_and_without_language(tmp_path: Path) -> None:
    for name in ["talk.mp4", "talk.srt", "talk.vtt", "talk.en.srt", "talk.zh-Hans.vtt",
                 "talk.eng.SRT", "talk.director-commentary.srt", "talk.txt", "other.srt",
                 "talkative.srt"]:  # fmt: skip
        (tmp_path / name).write_text("x")
    found = sidecar_files(str(tmp_path / "talk.mp4"))
    assert found == [
        (str(tmp_path / "talk.en.srt"), "en"),
        (str(tmp_path / "talk.eng.SRT"), "en"),
        (str(tmp_path / "talk.srt"), None),
        (str(tmp_path / "talk.vtt"), None),
        (str(tmp_path / "talk.zh-Hans.vtt"), "zh-Hans"),
    ]


def test_sidecars_of_a_file_uri_are_file_uris(tmp_path: Path) -> None:
    (tmp_path / "talk.mp4").write_text("x")
    (tmp_path / "talk.fr.vtt").write_text("x")
    assert sidecar_files(f"file://{tmp_path}/talk.mp4") == [
        (f"file://{tmp_path}/talk.fr.vtt", "fr")
    ]


def test_a_video_in_a_missing_folder_has_no_sidecars(tmp_path: Path) -> None:
    assert sidecar_files(str(tmp_path / "nowhere" / "talk.mp4")) == []


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    with moto_s3_server() as server:
        yield server


def test_sidecars_on_s3_keep_the_credentials_and_query_of_the_video_uri(s3: S3Server) -> None:
    bucket = s3.new_bucket("sidecars")
    filesystem = s3.filesystem()
    for name, body in [("talk.mp4", b"x"), ("talk.en.srt", SRT.encode()), ("talk.vtt", b"junk")]:
        with filesystem.open_output_stream(f"{bucket}/videos/{name}") as out:
            out.write(body)
    found = sidecar_files(s3.uri(bucket, "videos/talk.mp4"))
    assert found == [
        (s3.uri(bucket, "videos/talk.en.srt"), "en"),
        (s3.uri(bucket, "videos/talk.vtt"), None),
    ]
    assert [c.text for c in read_sidecar(*found[0])] == [
        "Hello there, general Kenobi.",
        "Second cue",
    ]
    with pytest.raises(SubtitleError) as caught:
        read_sidecar(found[1][0])
    assert "talk.vtt" in str(caught.value)
    assert s3.secret_key not in str(caught.value)


# --- embedded streams -----------------------------------------------------------------------


def test_embedded_mov_text_cues_round_trip(tmp_path: Path) -> None:
    video = _video(
        tmp_path / "talk.mp4",
        [(0.5, 1.5, "{\\i1}Hello{\\i0} world"), (2.0, 3.25, "Second\\Nline")],
    )
    assert embedded_cues(str(video)) == [
        Cue(0.5, 1.5, "Hello world", "en"),
        Cue(2.0, 3.25, "Second line", "en"),
    ]


def test_a_video_without_subtitle_streams_has_no_embedded_cues(tmp_path: Path) -> None:
    assert embedded_cues(str(_video(tmp_path / "plain.mp4"))) == []


# --- the operator ---------------------------------------------------------------------------


def test_operator_gives_each_shard_the_cues_it_overlaps_clipped(tmp_path: Path) -> None:
    video = _video(tmp_path / "talk.mp4", [(0.5, 1.5, "embedded one"), (2.5, 3.5, "embedded two")])
    (tmp_path / "talk.de.srt").write_text("1\n00:00:04,000 --> 00:00:05,000\nauf Deutsch\n")
    out = ReadSubtitles()(_shards(str(video), [(0.0, 3.0), (3.0, 6.0)]))
    assert out.schema.field("cues").type == pa.list_(CUE_TYPE)
    first, second = out.column("cues").to_pylist()
    assert first == [
        {
            "start_s": 0.5,
            "end_s": 1.5,
            "text": "embedded one",
            "language": "en",
            "origin": "embedded",
        },
        {
            "start_s": 2.5,
            "end_s": 3.0,
            "text": "embedded two",
            "language": "en",
            "origin": "embedded",
        },
    ]
    assert second == [
        {
            "start_s": 3.0,
            "end_s": 3.5,
            "text": "embedded two",
            "language": "en",
            "origin": "embedded",
        },
        {
            "start_s": 4.0,
            "end_s": 5.0,
            "text": "auf Deutsch",
            "language": "de",
            "origin": "sidecar",
        },
    ]


def test_rows_with_an_error_get_null_cues(tmp_path: Path) -> None:
    video = _video(tmp_path / "talk.mp4", [(0.5, 1.5, "hello")])
    table = _shards(str(video), [(0.0, 3.0), (3.0, 6.0)])
    table = table.append_column("error", pa.array(["VideoError: truncated", None], pa.string()))
    assert ReadSubtitles()(table).column("cues").to_pylist()[0] is None


def test_shards_of_one_video_parse_its_subtitles_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    video = _video(tmp_path / "talk.mp4")
    (tmp_path / "talk.srt").write_text(SRT)
    calls: list[str] = []
    real = subtitles.read_sidecar

    def counting(uri: str, language: str | None = None) -> list[Cue]:
        calls.append(uri)
        return real(uri, language)

    monkeypatch.setattr(subtitles, "read_sidecar", counting)
    operator = ReadSubtitles()
    bounds = [(k * 0.6, (k + 1) * 0.6) for k in range(10)]
    table = _shards(str(video), bounds)
    operator(table.slice(0, 5))
    out = operator(table.slice(5))
    assert calls == [str(tmp_path / "talk.srt")]
    assert out.column("cues").to_pylist()[0][0]["text"] == "Second cue"  # shard 5: 3.0–3.6 s


def test_a_broken_sidecar_names_its_rows_and_keeps_every_row(tmp_path: Path) -> None:
    good = _video(tmp_path / "good.mp4", [(0.5, 1.5, "fine")])
    broken = _video(tmp_path / "broken.mp4", [(0.5, 1.5, "still read")])
    (tmp_path / "broken.en.srt").write_text("1\n00:00:01,000 --> garbage\nhi\n")
    (tmp_path / "broken.vtt").write_text("WEBVTT\n\n00:02.000 --> 00:03.000\nfrom vtt\n")
    table = pa.concat_tables(
        [_shards(str(good), [(0.0, 6.0)]), _shards(str(broken), [(0.0, 3.0), (3.0, 6.0)])]
    )
    with pytest.raises(RecordErrors) as caught:
        ReadSubtitles()(table)
    failure = caught.value
    assert sorted(failure.errors) == [1, 2]
    assert all(isinstance(e, SubtitleError) for e in failure.errors.values())
    assert "broken.en.srt: line 2" in str(failure.errors[1])
    output = failure.output
    assert output.num_rows == 3
    texts = [[c["text"] for c in cues] for cues in output.column("cues").to_pylist()]
    assert texts == [["fine"], ["still read", "from vtt"], []]
