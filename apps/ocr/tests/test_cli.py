"""The ``video-ocr`` command: help, clear errors for bad input, and a real run from a bucket
(an S3-protocol server) into Iceberg and JSON lines, then the same command again."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tideflow_ocr import read_results
from tideflow_ocr.cli import main
from tideflow_ocr.testdata import character_error_rate, default_specs, make_video


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """``main()`` configures logging for the process onto the (captured) stderr of the
    test; later tests' loggers must not write to that closed capture."""
    yield
    import structlog

    structlog.reset_defaults()


def test_help_lists_the_run_command_and_its_flags():
    top = subprocess.run(
        [sys.executable, "-m", "tideflow_ocr.cli", "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert top.returncode == 0 and "run" in top.stdout
    run = subprocess.run(
        [sys.executable, "-m", "tideflow_ocr.cli", "run", "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0
    for flag in ("--out", "--lang", "--shard-seconds", "--fps", "--catalog", "--priority"):
        assert flag in run.stdout


@pytest.mark.parametrize(
    ("argv", "names"),
    [
        (["run", "/no/such/folder", "--out", "OUT"], ["/no/such/folder", "expected a folder"]),
        (["run", "SRC", "--out", "ftp://host/x"], ["ftp://host/x", "expected iceberg://"]),
        (["run", "SRC", "--out", "iceberg://notable"], ["iceberg://notable", "NAMESPACE.TABLE"]),
        (["run", "SRC", "--out", "OUT", "--lang", "en,xx"], ["'xx'", "bundled model reads"]),
        (["run", "kafka://host:9092", "--out", "OUT"], ["kafka://host:9092", "TOPIC"]),
        (["run", "EMPTY", "--out", "OUT"], ["holds no videos", ".mp4"]),
    ],
)
def test_bad_input_fails_with_an_error_naming_it_and_what_was_expected(
    argv, names, tmp_path, capsys
):
    (tmp_path / "src").mkdir()
    make_video(default_specs(chinese=False)[1], tmp_path / "src" / "a.mp4")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no videos here")
    replace = {"SRC": str(tmp_path / "src"), "OUT": str(tmp_path / "out")}
    replace["EMPTY"] = str(tmp_path / "empty")
    code = main([replace.get(a, a) for a in argv])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("video-ocr: error:")
    for name in names:
        assert name in err


def test_a_bad_flag_value_is_refused_by_the_parser(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["run", "SRC", "--out", "OUT", "--fps", "0"])
    assert exit_.value.code == 2
    assert "--fps" in capsys.readouterr().err


@pytest.mark.ray
@pytest.mark.slow
def test_run_from_a_bucket_into_iceberg_and_jsonl_then_again_resumes_and_adds_nothing(
    ray_session, s3_server, tmp_path, capsys
):
    specs = [
        s for s in default_specs(chinese=False) if s.name in ("en-lecture.mp4", "zz-corrupt.mp4")
    ]
    bucket = s3_server.new_bucket("cli")
    fs = s3_server.filesystem()
    for spec in specs:
        local = make_video(spec, tmp_path / "local" / spec.name)
        with fs.open_output_stream(f"{bucket}/videos/{spec.name}") as out:
            out.write(Path(local).read_bytes())
    catalog = [f"uri=sqlite:///{tmp_path}/catalog.db", f"warehouse={tmp_path}/warehouse"]
    argv = [
        "run",
        s3_server.uri(bucket, "videos"),
        "--out",
        "iceberg://ocr.cli",
        "--out",
        str(tmp_path / "results.jsonl"),
        "--shard-seconds",
        "2",
        "--fps",
        "1",
        "--ocr-actors",
        "1",
        "--state",
        str(tmp_path / "state"),
        "--progress",
        "off",
        *[x for c in catalog for x in ("--catalog", c)],
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "done    en-lecture.mp4  2 segments" in out
    assert "FAILED  zz-corrupt.mp4  [probe]" in out
    assert s3_server.secret_key not in out
    assert "resumed from checkpoint" not in out
    assert "shards_ocr=3 " in out
    properties = dict(c.split("=", 1) for c in catalog)
    rows = read_results("iceberg://ocr.cli", catalog=properties)
    assert [r["video_id"] for r in rows] == ["en-lecture.mp4"]
    assert character_error_rate(specs[0].expected_text(), rows[0]["text"]) <= 0.02
    assert s3_server.secret_key not in rows[0]["uri"]
    lines = (tmp_path / "results.jsonl").read_text().splitlines()
    assert [json.loads(x)["video_id"] for x in lines] == ["en-lecture.mp4"]

    assert main(argv) == 0  # the same command again: the finished job resumes, adds nothing
    again = capsys.readouterr().out
    assert "resumed from checkpoint" in again
    assert "shards_ocr=0 " in again  # (callbacks may repeat: at least once after a restore)
    assert len(read_results("iceberg://ocr.cli", catalog=properties)) == 1
    assert len((tmp_path / "results.jsonl").read_text().splitlines()) == 1
