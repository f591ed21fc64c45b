"""What a failed job tells its user: which checkpoint location failed, and an actor's error in
our own type with its own message first (not under Ray's wrapper)."""

from __future__ import annotations

import shutil
import socket
import traceback

import pytest
from _udfs import FullDiskSink, NoModel, rows

from tideflow.core.errors import CheckpointLocationError, ConfigError
from tideflow.streaming import ActorError, CheckpointConfig, JobAbortedError, Pipeline
from tideflow.streaming._user_error import user_error
from tideflow.streaming.errors import SinkError
from tideflow.streaming.testing import CollectingSink, TestSource

SECRET = "sup3r-s3cret-K3Y"


def _pipeline(tmp_path) -> Pipeline:
    return Pipeline.read(TestSource([rows(10)])).write(CollectingSink(str(tmp_path / "out")))


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# -- the checkpoint location -----------------------------------------------------------------


def test_a_checkpoint_location_under_a_file_fails_the_job_at_start_naming_it(ray_session, tmp_path):
    (tmp_path / "afile").write_text("not a directory")  # unwritable even for root
    location = tmp_path / "afile" / "ckpt"

    with pytest.raises(CheckpointLocationError) as failed:
        _pipeline(tmp_path).run(job_id="job", checkpoint=CheckpointConfig(uri=str(location)))

    message = str(failed.value)
    assert message.startswith(
        f"cannot take the job's lease at the checkpoint location '{location}/job': "
    )
    assert message.endswith(f"(expected {CheckpointLocationError.EXPECTED})")


def test_an_unreachable_checkpoint_endpoint_fails_the_job_at_start_without_credentials(
    ray_session, tmp_path
):
    port = _closed_port()
    endpoint = f"endpoint_override=127.0.0.1:{port}&scheme=http"
    checkpoint = CheckpointConfig(uri=f"s3://AKIDSECRETID:{SECRET}@bucket/ckpt?{endpoint}")

    with pytest.raises(CheckpointLocationError) as failed:
        _pipeline(tmp_path).run(job_id="job", checkpoint=checkpoint)

    assert str(failed.value).startswith(
        f"cannot take the job's lease at the checkpoint location "
        f"'s3://***@bucket/ckpt/job?{endpoint}': "
    )
    text = "".join(traceback.format_exception(failed.value))
    assert SECRET not in text and "AKIDSECRETID" not in text, text


def test_a_checkpoint_uri_that_cannot_be_opened_fails_at_start_without_credentials(
    ray_session, tmp_path
):
    checkpoint = CheckpointConfig(uri=f"zzz://AKIDSECRETID:{SECRET}@bucket/ckpt")

    with pytest.raises(ConfigError) as failed:
        _pipeline(tmp_path).run(job_id="job", checkpoint=checkpoint)

    assert str(failed.value).startswith(
        "cannot open the checkpoint location 'zzz://***@bucket/ckpt': "
    )
    text = "".join(traceback.format_exception(failed.value))
    assert SECRET not in text and "AKIDSECRETID" not in text, text


def test_a_checkpoint_that_cannot_be_saved_stops_the_job_naming_the_location(ray_session, tmp_path):
    checkpoints = tmp_path / "ckpt" / "save-fails" / "checkpoints"

    def break_the_location(ids: list[int]) -> None:  # after the first commit
        if checkpoints.is_dir():
            shutil.rmtree(checkpoints)
            checkpoints.write_text("a file where the checkpoints were")

    source = TestSource([rows(10, start) for start in range(0, 50, 10)])
    pipe = Pipeline.read(source, batch_size=10).write(CollectingSink(str(tmp_path / "out")))
    checkpoint = CheckpointConfig(uri=str(tmp_path / "ckpt"), interval_s=60, max_batches=1)

    with pytest.raises(JobAbortedError) as stopped:
        pipe.run(
            job_id="save-fails",
            checkpoint=checkpoint,
            on_complete=break_the_location,
            id_column="id",
        )

    message = str(stopped.value)
    assert message.startswith("job 'save-fails' stopped: checkpoint ")
    assert f"the checkpoint location '{checkpoints}': " in message
    assert f"(expected {CheckpointLocationError.EXPECTED})" in message


# -- errors raised inside actors ---------------------------------------------------------------


def test_an_error_raised_in_the_sink_actor_reaches_the_user_with_its_own_message_first(
    ray_session, tmp_path
):
    pipe = Pipeline.read(TestSource([rows(10)])).write(FullDiskSink(str(tmp_path / "out")))

    with pytest.raises(ActorError) as failed:
        pipe.run(job_id="full-disk")

    error = failed.value
    assert str(error) == "disk is full at /x"
    assert traceback.format_exception_only(error)[0] == (
        "tideflow.streaming.errors.ActorError(ValueError): disk is full at /x\n"
    )
    assert isinstance(error, ValueError)  # `except ValueError` still catches it, as with Ray
    assert type(error.__cause__) is ValueError and str(error.__cause__) == "disk is full at /x"
    notes = "\n".join(error.__notes__)  # where it was raised, for debugging; plain text
    assert "IOWorker.write" in notes and "\x1b[" not in notes


def _raised_in_the_io_actor(original: BaseException) -> BaseException:
    """``original`` as Ray raises it in the driver when ``IOWorker.write`` raised it."""
    from ray.exceptions import RayTaskError

    return RayTaskError(
        "IOWorker.write",
        f"Traceback (most recent call last):\n  ...\n{type(original).__name__}: {original}",
        original,
        proctitle="ray::IOWorker.write",
        pid=4242,
        ip="127.0.0.1",
    ).as_instanceof_cause()


def test_a_stage_whose_constructor_raises_fails_the_job_at_once_with_its_error(
    ray_session, tmp_path
):
    from structlog.testing import capture_logs

    pipe = (
        Pipeline.read(TestSource([rows(10)]))
        .map_batches(NoModel, fn_constructor_args=("/models/missing",), num_cpus=0.25)
        .write(CollectingSink(str(tmp_path / "out")))
    )
    with capture_logs() as logs, pytest.raises(ActorError) as failed:
        pipe.run(job_id="no-model")
    assert str(failed.value) == (
        "an actor of the job failed to start: FileNotFoundError: no model at /models/missing"
    )
    # not a lost part of the job: no restart from the last checkpoint (each would fail alike)
    assert not [e for e in logs if e["event"] == "job.restarting"]


def test_a_tideflow_error_raised_in_an_actor_is_raised_as_itself() -> None:
    original = SinkError("ParquetSink('/out'): column 'v': expected int64, found string")

    error = user_error(_raised_in_the_io_actor(original))

    assert error is original
    assert any("ray::IOWorker.write" in note for note in error.__notes__)


def test_a_key_error_raised_in_an_actor_keeps_its_message_quoted_once() -> None:
    original = KeyError("id_column 'uid' is not a column of the rows reaching the sink")

    error = user_error(_raised_in_the_io_actor(original))

    assert isinstance(error, ActorError) and isinstance(error, KeyError)
    assert str(error) == str(original)  # as Python shows the KeyError, not quoted twice
    assert traceback.format_exception_only(error)[0] == (
        f"tideflow.streaming.errors.ActorError(KeyError): {original}\n"
    )
