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

The names below are imported on first use: importing the package imports no Ray (and
changes no environment), so that ``video-ocr`` can give Ray its settings before Ray is
imported (``tideflow_ocr.cli``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tideflow.core.lazy import lazy_exports

if TYPE_CHECKING:
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

# Where each exported name lives.
_MODULES = {
    "VideoFolderSource": "tideflow.media.sources",
    "VideoTopicSource": "tideflow.media.sources",
    **dict.fromkeys(
        (
            "OUTPUT_SCHEMA",
            "OcrApp",
            "OcrRunResult",
            "VideoResult",
            "build_pipeline",
            "parse_output",
            "parse_source",
            "read_dead_letters",
            "read_results",
        ),
        "tideflow_ocr.app",
    ),
    "BUNDLED_LANGS": "tideflow_ocr.config",
    "OcrConfig": "tideflow_ocr.config",
    "ConfigError": "tideflow_ocr.errors",
    "OcrError": "tideflow_ocr.errors",
    "VideoError": "tideflow_ocr.errors",
    "Segment": "tideflow_ocr.filters",
    "layer1": "tideflow_ocr.filters",
    "layer2": "tideflow_ocr.filters",
    **dict.fromkeys(
        ("FAILURE_SCHEMA", "DeadLetters", "JSONLFileSink", "ResultSink", "VideoFailure"),
        "tideflow_ocr.sinks",
    ),
}


__getattr__, __dir__ = lazy_exports(__name__, _MODULES, __all__)
