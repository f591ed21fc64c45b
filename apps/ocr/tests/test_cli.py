"""The ``video-ocr`` command: help, clear errors for bad input, and a real run from a bucket
(an S3-protocol server) into Iceberg and JSON lines, then the same command again."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tideflow.core.testing import CTRL_C_WHILE_RAY_STARTS
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
        (["run", "SRC", "--out", "FILE"], ["output '{FILE}'", "is a file, not a directory"]),
        (["run", "SRC", "--out", "IN_FILE"], ["output '{IN_FILE}'", "is a file, not a dir"]),
        (
            ["run", "SRC", "--out", "DIR_JSONL"],
            ["output '{DIR_JSONL}' is a directory", "FILE.jsonl"],
        ),
        (
            ["run", "SRC", "--out", "OUT", "--dead-letters", "FILE"],
            ["dead-letter output '{FILE}'", "expected a directory"],
        ),
        (
            ["run", "SRC", "--out", "OUT", "--dead-letters", "OUT"],
            ["dead-letter output '{OUT}' is also the output '{OUT}'", "a folder of its own"],
        ),
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
    (tmp_path / "file").write_text("a file, not a folder")
    (tmp_path / "dir.jsonl").mkdir()
    replace["FILE"] = str(tmp_path / "file")
    replace["IN_FILE"] = str(tmp_path / "file" / "out")
    replace["DIR_JSONL"] = str(tmp_path / "dir.jsonl")
    code = main([replace.get(a, a) for a in argv])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("video-ocr: error:")
    for name in names:
        assert name.format(**replace) in err


@pytest.mark.parametrize("target", ["file", "file/sub"])
def test_samples_into_a_path_that_is_a_file_exits_2_naming_it(target, tmp_path, capsys):
    (tmp_path / "file").write_text("a file, not a folder")
    directory = str(tmp_path / target)

    code = main(["samples", directory])

    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith(f"video-ocr: error: cannot write the sample videos to {directory!r}")
    assert "expected a directory" in err


# The settings the CLI gives Ray; the child processes below start without them.
RAY_SETTINGS = ("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "RAY_enable_worker_prestart")


def _python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``code`` in a fresh interpreter whose environment has none of Ray's settings (this
    test process has them: conftest sets them)."""
    env = {k: v for k, v in os.environ.items() if k not in RAY_SETTINGS}
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        timeout=120,
    )


_IMPORT_EVERYTHING = """
import importlib, json, os, pkgutil
import ray  # first: Ray's own import-time settings (RAY_CLIENT_MODE) are Ray's
before = dict(os.environ)
import tideflow_ocr
for module in pkgutil.iter_modules(tideflow_ocr.__path__, "tideflow_ocr."):
    importlib.import_module(module.name)
after = dict(os.environ)
print(json.dumps({k: [before.get(k), after.get(k)] for k in {*before, *after}
                  if before.get(k) != after.get(k)}))
"""


def test_importing_the_package_and_its_modules_leaves_the_environment_as_it_was():
    done = _python(_IMPORT_EVERYTHING)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == {}


_RUN_WITHOUT_SOURCE = """
import json, os, sys
from tideflow_ocr.cli import main
imported = "ray" in sys.modules
code = main(["run", sys.argv[1], "--out", sys.argv[2]])  # no such folder: exits 2
from ray._private import ray_constants
print(json.dumps({
    "ray_imported_by_the_cli": imported,
    "code": code,
    "env": {k: os.environ.get(k) for k in sys.argv[3:]},
    "uv_run_workers": ray_constants.RAY_ENABLE_UV_RUN_RUNTIME_ENV,  # as Ray read it
}))
"""


def test_run_gives_ray_its_settings_before_ray_is_imported(tmp_path):
    done = _python(
        _RUN_WITHOUT_SOURCE, str(tmp_path / "no-such"), str(tmp_path / "out"), *RAY_SETTINGS
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == {
        "ray_imported_by_the_cli": False,
        "code": 2,
        "env": dict.fromkeys(RAY_SETTINGS, "0"),
        "uv_run_workers": False,
    }


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize(
    ("src", "names"),
    [
        (
            "s3://KEY:SECRET@bucket/videos?endpoint_override=127.0.0.1:{port}&scheme=http",
            ["'s3://***@bucket/videos?endpoint_override=127.0.0.1:{port}", "cannot be read"],
        ),
        ("{tmp}/no/such/folder", ["'{tmp}/no/such/folder' does not exist"]),
    ],
    ids=["unreachable-bucket", "missing-folder"],
)
def test_a_source_that_cannot_be_read_exits_2_with_one_line_naming_it(src, names, tmp_path):
    fill = {"port": _closed_port(), "tmp": tmp_path}
    argv = ["run", src.format(**fill), "--out", str(tmp_path / "out")]
    done = subprocess.run(
        [sys.executable, "-m", "tideflow_ocr.cli", *argv, "--state", str(tmp_path / "state")],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    (line,) = done.stderr.splitlines()
    assert line.startswith("video-ocr: error: video source ")
    for name in names:
        assert name.format(**fill) in line
    assert "expected a folder of videos" in line
    assert "SECRET" not in line and "KEY:" not in line


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
    captured = capsys.readouterr()
    again = captured.out
    assert "video-ocr: nothing new was read from 's3://***@" in captured.err  # and says so
    assert "give a new --job-id" in captured.err and s3_server.secret_key not in captured.err
    assert "resumed from checkpoint" in again
    assert "shards_ocr=0 " in again  # (callbacks may repeat: at least once after a restore)
    assert len(read_results("iceberg://ocr.cli", catalog=properties)) == 1
    assert len((tmp_path / "results.jsonl").read_text().splitlines()) == 1


@pytest.mark.ray
def test_progress_on_off_a_terminal_prints_plain_progress_lines(ray_session, tmp_path, capsys):
    spec = default_specs(chinese=False)[1]
    make_video(spec, tmp_path / "videos" / spec.name)
    argv = ["run", str(tmp_path / "videos"), "--out", str(tmp_path / "out")]
    argv += ["--state", str(tmp_path / "state"), "--shard-seconds", "2", "--progress", "on"]

    assert main(argv) == 0

    err = capsys.readouterr().err  # captured: not a terminal
    lines = [x for x in err.splitlines() if x.startswith("progress: job ocr-")]
    assert lines, err
    assert "rows out" in lines[-1] and "stages: " in lines[-1] and " ocr " in lines[-1]


@pytest.mark.ray
def test_a_run_whose_every_video_is_a_dead_letter_exits_1_saying_so(ray_session, tmp_path, capsys):
    corrupt = [s for s in default_specs(chinese=False) if s.corrupt]
    make_video(corrupt[0], tmp_path / "videos" / corrupt[0].name)
    argv = [
        "run",
        str(tmp_path / "videos"),
        "--out",
        str(tmp_path / "results.jsonl"),
        "--state",
        str(tmp_path / "state"),
        "--progress",
        "off",
    ]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "every video went to the dead letters (1)" in err
    assert str(tmp_path / "state") in err  # where they are


def test_ctrl_c_while_ray_starts_exits_130_and_leaves_no_ray_process(tmp_path):
    (tmp_path / "videos").mkdir()
    driver = CTRL_C_WHILE_RAY_STARTS + "from tideflow_ocr.cli import main\nfinish(main())\n"
    command = [
        sys.executable, "-c", driver, "run", str(tmp_path / "videos"), "--follow",
        "--out", str(tmp_path / "out"), "--state", str(tmp_path / "state"),
    ]  # fmt: skip

    done = subprocess.run(command, capture_output=True, text=True, timeout=240, check=False)

    assert "raylet started" in done.stderr, done.stderr[-3000:]
    assert done.returncode == 130, done.stderr[-3000:]
    assert json.loads(done.stdout.splitlines()[-1]) == []  # no gcs_server, raylet, …
