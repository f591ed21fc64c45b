from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import structlog

import tideflow.core
from tideflow.core.errors import ConfigError
from tideflow.core.observability import (
    CheckpointEvent,
    ScaleEvent,
    configure_logging,
    get_logger,
    log_event,
)
from tideflow.core.testing import FakeClock


@pytest.fixture(autouse=True)
def _reset_structlog():
    yield
    structlog.reset_defaults()


def test_json_logging_writes_one_object_per_line_with_event_fields():
    out = io.StringIO()
    configure_logging(format="json", stream=out)
    event = ScaleEvent(time=3.0, pool="embed", from_size=1, to_size=3, reason="backlog")
    log_event(get_logger("tideflow.test"), event)

    record = json.loads(out.getvalue().strip())
    assert record["event"] == "pool.scaled"
    assert record["pool"] == "embed"
    assert (record["from_size"], record["to_size"]) == (1, 3)
    assert record["component"] == "tideflow.test"
    assert record["level"] == "info"


def test_auto_format_uses_json_when_the_stream_is_not_a_terminal():
    out = io.StringIO()
    configure_logging(format="auto", stream=out)
    get_logger("x").info("hello", n=1)
    assert json.loads(out.getvalue())["n"] == 1


def test_level_filters_lower_levels():
    out = io.StringIO()
    configure_logging(format="json", level="warning", stream=out)
    log = get_logger("x")
    log.info("dropped")
    log.warning("kept")
    lines = out.getvalue().strip().splitlines()
    assert [json.loads(line)["event"] for line in lines] == ["kept"]


def test_bad_format_is_a_config_error_naming_the_choices():
    with pytest.raises(ConfigError, match="auto, console or json"):
        configure_logging(format="xml")  # type: ignore[arg-type]


def test_scale_event_direction_and_dict():
    up = ScaleEvent(time=0.0, pool="p", from_size=2, to_size=4, reason="r")
    down = ScaleEvent(time=0.0, pool="p", from_size=4, to_size=2, reason="r")
    assert up.direction == "up"
    assert down.as_dict()["direction"] == "down"
    assert (
        CheckpointEvent(time=1, checkpoint_id=7, status="completed").as_dict()["event_type"]
        == "checkpoint"
    )


def test_fake_clock_moves_only_forward():
    clock = FakeClock(start=10)
    assert clock.advance(0.25) == 10.25
    with pytest.raises(ConfigError):
        clock.advance(-1)
    with pytest.raises(ConfigError):
        clock.set(5)


def test_tideflow_is_a_namespace_package():
    # The three libraries share `tideflow`; none of them may own tideflow/__init__.py.
    src = Path(tideflow.core.__file__).resolve().parents[1]
    assert not (src / "__init__.py").exists()


def test_logging_follows_stderr_and_never_raises_on_a_closed_stream(monkeypatch):
    import io

    import structlog

    from tideflow.core.observability import configure_logging, get_logger

    first = io.StringIO()
    monkeypatch.setattr("sys.stderr", first)
    try:
        configure_logging(format="json", level="info")
        get_logger("t").info("one")
        first.close()  # a test's capture, or a CLI's redirected stderr, went away
        get_logger("t").warning("two")  # used to raise ValueError in whatever thread logged
        second = io.StringIO()
        monkeypatch.setattr("sys.stderr", second)
        get_logger("t").info("three")
        assert '"event": "three"' in second.getvalue()
        explicit = io.StringIO()
        configure_logging(format="json", stream=explicit)
        explicit.close()
        get_logger("t").error("four")  # dropped, not raised
    finally:
        structlog.reset_defaults()
