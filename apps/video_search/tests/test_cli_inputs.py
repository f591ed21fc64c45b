"""The command line refuses bad paths and addresses with a message and exit code 2, before
any work: no traceback, nothing announced that does not happen."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from _server_fixtures import Segment, TestIndex, write_segments_index

from tideflow_video_search.cli import main
from tideflow_video_search.samples import QUERIES_FILE, TRUTH_FILE, build_queries, plan_samples


@pytest.fixture(scope="module")
def small_index(tmp_path_factory: pytest.TempPathFactory) -> TestIndex:
    """A two-row index (MiniLM vectors): enough for eval and serve to open."""
    segments = [
        Segment("harbour", "subtitle", 0.0, 3.0, "the ferry leaves the harbour at noon"),
        Segment("market", "speech", 4.0, 7.0, "the baker pulls warm bread from the oven"),
    ]
    uris = {"harbour": "harbour.mp4", "market": "market.mp4"}
    return write_segments_index(tmp_path_factory.mktemp("cli-index"), segments, uris)


def _a_file(tmp_path: Path) -> Path:
    path = tmp_path / "notes.txt"
    path.write_text("not a folder\n")
    return path


# --- query -------------------------------------------------------------------------------


def test_query_refuses_an_index_whose_description_is_broken(tmp_path, capsys) -> None:
    (tmp_path / "segments.lance").mkdir()
    (tmp_path / "index.json").write_text("{not json")

    code = main(["query", "--index", str(tmp_path), "--json", "ferry"])

    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    assert "index.json' is not an index description" in captured.err


def test_query_refuses_a_table_folder_without_a_version(tmp_path, capsys) -> None:
    (tmp_path / "segments.lance").mkdir()  # as a crash before the first commit leaves it

    code = main(["query", "--index", str(tmp_path), "--json", "ferry"])

    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    assert "cannot be opened: segments.lance there is not a Lance table" in captured.err


# --- serve ------------------------------------------------------------------------------


def test_serve_refuses_a_missing_index_before_announcing_itself(tmp_path, capsys) -> None:
    code = main(["serve", "--index", str(tmp_path / "nowhere"), "--port", "8999"])

    err = capsys.readouterr().err
    assert code == 2
    assert "no index at" in err and "serving" not in err


def test_serve_refuses_a_port_in_use_with_exit_2(small_index: TestIndex, capsys) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = main(["serve", "--index", str(small_index.index_dir), "--port", str(port)])

    err = capsys.readouterr().err
    assert code == 2
    assert f"cannot listen on 127.0.0.1:{port}" in err and "serving" not in err


# --- eval -------------------------------------------------------------------------------


def _query_file(tmp_path: Path, kind: str) -> Path:
    if kind == "missing":
        return tmp_path / "missing.jsonl"
    if kind == "a-folder":
        return tmp_path
    path = tmp_path / "empty.jsonl"
    path.write_text("\n")
    return path


@pytest.mark.parametrize(
    ("kind", "fragment"),
    [
        ("missing", "cannot read the query file"),
        ("a-folder", "cannot read the query file"),
        ("empty", "holds no queries"),
    ],
)
def test_eval_refuses_a_query_file_it_cannot_use(
    small_index: TestIndex, tmp_path: Path, capsys, kind: str, fragment: str
) -> None:
    queries = _query_file(tmp_path, kind)

    code = main(["eval", "--index", str(small_index.index_dir), "--queries", str(queries)])

    assert code == 2
    assert fragment in capsys.readouterr().err


def test_eval_refuses_a_corpus_without_truth(small_index: TestIndex, tmp_path, capsys) -> None:
    code = main(["eval", "--index", str(small_index.index_dir), "--corpus", str(tmp_path)])

    assert code == 2
    assert "truth.json not found" in capsys.readouterr().err


def test_eval_refuses_an_out_path_under_a_file_before_running(
    small_index: TestIndex, tmp_path, capsys
) -> None:
    out = _a_file(tmp_path) / "report.json"

    code = main(["eval", "--index", str(small_index.index_dir), "--out", str(out)])

    captured = capsys.readouterr()
    assert code == 2
    assert "--out" in captured.err and "is not a folder" in captured.err
    assert captured.out == ""  # no report: nothing ran


def test_eval_of_a_samples_folder_asks_that_corpus_questions(
    small_index: TestIndex, tmp_path
) -> None:
    from tideflow_video_search.evaluation import evaluate_index

    corpus = plan_samples(6)
    (tmp_path / TRUTH_FILE).write_text(json.dumps(corpus.to_json()), encoding="utf-8")
    records = build_queries(corpus)
    lines = [json.dumps(r, ensure_ascii=False) for r in records]
    (tmp_path / QUERIES_FILE).write_text("\n".join(lines) + "\n", encoding="utf-8")

    report = evaluate_index(small_index.index_dir, corpus=tmp_path, index=small_index.open())

    assert report["queries"] == str(tmp_path / QUERIES_FILE)
    answerable = sum(r["answerable"] for r in records)
    assert report["hybrid"]["answerable"] == answerable < 20  # not the 64-video set's 143


# --- samples and ingest -----------------------------------------------------------------


def test_samples_refuses_a_folder_that_is_a_file(tmp_path, capsys) -> None:
    path = _a_file(tmp_path)

    code = main(["samples", str(path), "--count", "6"])

    assert code == 2
    assert "must be a directory, but it is a file" in capsys.readouterr().err


@pytest.mark.parametrize("under", [False, True], ids=["the-file", "under-the-file"])
def test_ingest_refuses_an_index_that_is_a_file_before_starting(
    tmp_path, capsys, under: bool
) -> None:
    videos = tmp_path / "videos"
    videos.mkdir()
    index = _a_file(tmp_path) / "index" if under else _a_file(tmp_path)

    code = main(["ingest", str(videos), "--index", str(index), "--no-progress"])

    err = capsys.readouterr().err
    assert code == 2
    assert "must be a directory" in err and "ingesting" not in err


# --- help -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "fragments"),
    [
        ("query", ["only this video", "only this channel", "only segments in this language"]),
        ("serve", ["address to listen on (127.0.0.1)", "port to listen on (8000)"]),
    ],
)
def test_help_says_what_each_option_does(capsys, command: str, fragments: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])

    out = capsys.readouterr().out
    assert exit_info.value.code == 0
    assert all(fragment in out for fragment in fragments), out
