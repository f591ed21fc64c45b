"""The command line: query's JSON shape (other programs rely on it), errors and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tideflow.core.testing import CTRL_C_WHILE_RAY_STARTS
from tideflow_video_search.cli import main


def test_query_json_is_one_list_of_hits_with_the_promised_fields(indexed, capsys) -> None:
    code = main(["query", "--index", str(indexed.index), "--json", "--k", "3", "copper", "mine"])
    out = capsys.readouterr().out
    hits = json.loads(out)
    assert code == 0 and isinstance(hits, list) and 1 <= len(hits) <= 3
    for hit in hits:
        assert {"uri", "video_id", "start_s", "end_s", "text", "source", "score"} <= set(hit)
    assert hits[0]["video_id"] == "sidecar.mp4" and hits[0]["source"] == "subtitle"


def test_query_filters_by_source(indexed, capsys) -> None:
    main(["query", "--index", str(indexed.index), "--json", "--source", "speech", "train"])
    hits = json.loads(capsys.readouterr().out)
    assert hits and {h["source"] for h in hits} == {"speech"}


def test_a_missing_index_exits_2_with_a_message(tmp_path, capsys) -> None:
    code = main(["query", "--index", str(tmp_path / "nowhere"), "anything"])
    assert code == 2
    assert "no index at" in capsys.readouterr().err


def test_an_empty_query_exits_2(indexed, capsys) -> None:
    assert main(["query", "--index", str(indexed.index), "   "]) == 2
    assert "empty" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["query", "--index", "x", "--k", "0", "q"], ["ingest"]])
def test_bad_arguments_exit_2(argv) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2


@pytest.mark.parametrize("count", ["5", "65"])
def test_samples_refuses_a_count_outside_6_to_64_before_writing(tmp_path, capsys, count) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["samples", str(tmp_path / "corpus"), "--count", count])
    assert exit_info.value.code == 2
    assert "--count: expected an integer from 6 to 64" in capsys.readouterr().err
    assert not (tmp_path / "corpus").exists()


def test_a_missing_source_exits_2(tmp_path, capsys) -> None:
    code = main(["ingest", str(tmp_path / "missing"), "--index", str(tmp_path / "i")])
    assert code == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.ray
@pytest.mark.slow
def test_an_ingest_whose_every_video_is_a_dead_letter_exits_1_saying_so(tmp_path) -> None:
    from tideflow.media.testing import make_video

    videos = tmp_path / "videos"
    videos.mkdir()
    make_video(videos / "corrupt.mp4", duration_s=0.0, corrupt=True, seed=11)
    command = [
        sys.executable, "-m", "tideflow_video_search.cli", "ingest", str(videos),
        "--index", str(tmp_path / "index"), "--no-progress", "--num-cpus", "2",
        "--no-ocr", "--no-speech",
    ]  # fmt: skip

    done = subprocess.run(command, capture_output=True, text=True, timeout=240, check=False)

    assert done.returncode == 1, done.stderr[-2000:]
    assert "nothing was indexed: every input went to the dead letters (1)" in done.stderr
    assert str(tmp_path / "index" / "_state") in done.stderr.splitlines()[-1]
    assert "job.all_dead_lettered" in done.stderr  # the engine's warning


def test_ctrl_c_stops_a_followed_ingest_with_exit_130_saying_it_goes_on(tmp_path) -> None:
    import select
    import signal
    import time

    videos = tmp_path / "videos"
    videos.mkdir()
    command = [
        sys.executable, "-m", "tideflow_video_search.cli", "ingest", str(videos), "--follow",
        "--index", str(tmp_path / "index"), "--no-progress", "--num-cpus", "2",
        "--no-ocr", "--no-speech",
    ]  # fmt: skip
    child = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    assert child.stderr is not None
    try:
        deadline = time.monotonic() + 180
        seen = ""
        while "ingesting" not in seen and time.monotonic() < deadline:
            if select.select([child.stderr], [], [], 1.0)[0]:
                seen += child.stderr.readline()
        assert "ingesting" in seen, seen[-2000:]
        state = tmp_path / "index" / "_state"
        while not list(state.glob("*/lease/*.json")) and time.monotonic() < deadline:
            time.sleep(0.2)  # the job holds its lease: it has started
        time.sleep(2.0)  # and is reading the (empty, watched) folder
        child.send_signal(signal.SIGINT)
        _, err = child.communicate(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 130, (seen + err)[-2000:]
    assert "stopped; what was read is indexed" in err


def test_ctrl_c_while_ray_starts_exits_130_and_leaves_no_ray_process(tmp_path) -> None:
    videos = tmp_path / "videos"
    videos.mkdir()
    driver = CTRL_C_WHILE_RAY_STARTS + (
        "from tideflow_video_search.cli import main\nfinish(main(sys.argv[1:]))\n"
    )
    command = [
        sys.executable, "-c", driver, "ingest", str(videos), "--follow",
        "--index", str(tmp_path / "index"), "--no-progress", "--num-cpus", "2",
        "--no-ocr", "--no-speech",
    ]  # fmt: skip

    done = subprocess.run(command, capture_output=True, text=True, timeout=240, check=False)

    assert "raylet started" in done.stderr, done.stderr[-3000:]
    assert done.returncode == 130, done.stderr[-3000:]
    assert json.loads(done.stdout.splitlines()[-1]) == []  # no gcs_server, raylet, …


@pytest.mark.ray
def test_a_bounded_ingest_of_a_folder_without_videos_exits_2_saying_so(
    ray_session, tmp_path, capsys
) -> None:
    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "notes.txt").write_text("not a video\n")
    command = ["ingest", str(videos), "--index", str(tmp_path / "index"), "--no-progress"]

    code = main([*command, "--no-ocr", "--no-speech"])

    assert code == 2
    assert f"no videos found in {str(videos)!r}" in capsys.readouterr().err
