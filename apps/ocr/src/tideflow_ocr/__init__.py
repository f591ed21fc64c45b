"""Video OCR at scale, built on Tideflow.

Videos (a folder, a bucket, or a Kafka topic of URIs) are probed and cut into shards; the
shards are decoded (PyAV) and OCR'd (rapidocr, onnxruntime) in elastic actor pools with
shard-level retry; a keyed, checkpointed stage gathers each video's shards and lets the
video go on as soon as all of them are in; two filter layers turn lines into timed text
segments; results go to Iceberg and/or JSON lines, failures to a dead-letter output and a
callback.

>>> from tideflow_ocr import OcrApp, OcrConfig
>>> app = OcrApp("videos/", ["iceberg://ocr.results"], config=OcrConfig(langs=("en", "ch")))
>>> result = app.run(on_complete=print, on_failure=print)   # doctest: +SKIP
"""

from __future__ import annotations

import os

# The app's choice, made before anything imports Ray (setdefault keeps the user's): under
# `uv run`, Ray 2.60 would start every worker through `uv run` (~2 s per actor); the
# workers share this venv. Prestarted idle workers cost memory for nothing on a small box.
os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
os.environ.setdefault("RAY_enable_worker_prestart", "0")

from tideflow.media.sources import VideoFolderSource, VideoTopicSource
from tideflow_ocr.app import (
    OUTPUT_SCHEMA,
    OcrApp,
    OcrRunResult,
    VideoResult,
    build_pipeline,
    parse_output,
    parse_source,
    read_dead_letters,
    read_results,
)
from tideflow_ocr.config import BUNDLED_LANGS, OcrConfig
from tideflow_ocr.errors import ConfigError, OcrError, VideoError
from tideflow_ocr.filters import Segment, layer1, layer2
from tideflow_ocr.sinks import (
    FAILURE_SCHEMA,
    DeadLetters,
    JSONLFileSink,
    ResultSink,
    VideoFailure,
)

__all__ = [
    # the app
    "OcrApp",
    "OcrConfig",
    "OcrRunResult",
    "build_pipeline",
    "BUNDLED_LANGS",
    # inputs and outputs
    "VideoFolderSource",
    "VideoTopicSource",
    "ResultSink",
    "JSONLFileSink",
    "DeadLetters",
    "parse_source",
    "parse_output",
    "read_results",
    "read_dead_letters",
    "OUTPUT_SCHEMA",
    "FAILURE_SCHEMA",
    # callbacks
    "VideoResult",
    "VideoFailure",
    # filters
    "Segment",
    "layer1",
    "layer2",
    # errors
    "ConfigError",
    "OcrError",
    "VideoError",
]
