"""Text on screen: rapidocr (PP-OCR, onnxruntime) on frames, and a stage for
``Pipeline.map_batches``.

>>> reader = OcrReader()                                     # doctest: +SKIP
>>> reader.read_frame(rgb)                                   # doctest: +SKIP
[{'text': 'Breaking news', 'score': 0.98, 'x0': 0.1, 'y0': 0.8, 'x1': 0.6, 'y1': 0.9}]
>>> pipeline.map_batches(DecodeFrames).map_batches(OcrFrames, num_cpus=1, concurrency=(1, 8))
...                                                          # doctest: +SKIP

rapidocr and onnxruntime are imported when a reader is made (extra ``ocr``). The settings
are tuned for video frames (see :func:`ocr_engine`). A reader's onnxruntime threads sleep
rather than spin when idle, so a second thread costs little while the cores are busy with
other work and reads a frame about a third faster when they are not.
"""

from __future__ import annotations

import functools
import os
from typing import Any

import numpy as np
import pyarrow as pa

from tideflow.core.observability import get_logger
from tideflow.media._deps import require
from tideflow.media.errors import ConfigError
from tideflow.media.frames import _check_retries, _with_columns, _with_retries, frame_images

__all__ = ["LINE_TYPE", "OcrFrames", "OcrReader", "ocr_engine"]

LINE_TYPE = pa.struct(
    [
        ("t", pa.float64()),
        ("text", pa.string()),
        ("score", pa.float64()),
        ("x0", pa.float64()),
        ("y0", pa.float64()),
        ("x1", pa.float64()),
        ("y1", pa.float64()),
    ]
)
"""A line of text read on the frame at ``t``: the recognizer's ``score`` and its box
``(x0, y0)``–``(x1, y1)`` in fractions of the frame's width and height."""


def _check_threads(owner: str, threads: object) -> None:
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ConfigError(f"{owner}.threads must be an int >= 1; got {threads!r}")


def ocr_engine(threads: int = 1) -> Any:
    """rapidocr with the settings tuned for video frames: no angle classifier (text on
    screen is upright), a detector that never upscales (``limit_type="max"``, 736 px), and
    ``threads`` onnxruntime threads that sleep, not spin, between operators (see
    :func:`_without_spinning`). Its models ship in the wheel (no download)."""
    _check_threads("ocr_engine", threads)
    rapidocr = require("rapidocr", "ocr")
    engine = rapidocr.RapidOCR(
        params={
            "Global.use_cls": False,
            "Global.log_level": "critical",
            "Det.limit_type": "max",
            "Det.limit_side_len": 736,
            "EngineConfig.onnxruntime.intra_op_num_threads": threads,
            "EngineConfig.onnxruntime.inter_op_num_threads": 1,
        }
    )
    if threads > 1:
        _without_spinning(engine)
    return engine


def _without_spinning(engine: Any) -> None:
    """Reload the detector's and recognizer's onnxruntime sessions with intra-op spinning
    off (one thread has no pool to spin; rapidocr has no setting for it).

    onnxruntime's pool threads spin while they wait for the next operator. On a machine
    whose cores are shared (other actors, other stages) the spinning takes the cores from
    the work: measured on the 2-core machine (112 frames of the Chinese sample videos,
    ``docs/benchmarks.md#video_search``), 2 spinning threads read them in 3.9–4.2 s on
    7.7–8.3 CPU seconds, slower than 1 thread (3.5–3.7 s); 2 threads without spinning in
    2.3–2.8 s on 4.0–4.6 CPU seconds, and beside two busy processes in 4.1 s where 1 thread
    took 4.8 s and 2 spinning threads 8.4 s. Uses rapidocr 3's model loaders and the
    loaded session's model path (the version is pinned in ``uv.lock``)."""
    import onnxruntime

    for model in (engine._load_det_model(), engine._load_rec_model()):
        loaded = model.session.session
        options = loaded.get_session_options()
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        model.session.session = onnxruntime.InferenceSession(
            loaded._model_path, sess_options=options, providers=loaded.get_providers()
        )


class OcrReader:
    """Reads the lines of text on RGB frames. Loads its models when made."""

    def __init__(self, threads: int = 1) -> None:
        self._engine = ocr_engine(threads)
        self._engine(np.zeros((64, 256, 3), np.uint8))  # load the models now, not on a frame

    def read_frame(self, image: np.ndarray) -> list[dict[str, Any]]:
        """The lines of one H × W × 3 uint8 RGB frame: ``text``, ``score`` and the box
        ``x0, y0, x1, y1`` in fractions of the frame's width and height."""
        height, width = image.shape[:2]
        result: Any = self._engine(np.ascontiguousarray(image[:, :, ::-1]))  # it expects BGR
        if result.boxes is None or result.txts is None:
            return []
        lines = []
        for box, text, score in zip(result.boxes, result.txts, result.scores, strict=True):
            xs, ys = box[:, 0], box[:, 1]
            lines.append(
                {
                    "text": str(text),
                    "score": float(score),
                    "x0": float(xs.min()) / width,
                    "y0": float(ys.min()) / height,
                    "x1": float(xs.max()) / width,
                    "y1": float(ys.max()) / height,
                }
            )
        return lines


class OcrFrames:
    """OCR: every frame of each decoded row (the columns of
    :class:`~tideflow.media.frames.DecodeFrames`) through :class:`OcrReader`.

    Adds ``lines`` (list of :data:`LINE_TYPE`, in frame order). A row whose ``error`` is set
    is passed on without lines; a row whose OCR fails ``retries + 1`` times gets no lines
    and ``error = "ocr: …"``. ``keep_pixels=False`` leaves the frames' pixels behind
    (``pixels``, ``frame_h``, ``frame_w``) once read: later stages then move only text.
    """

    def __init__(self, threads: int = 1, retries: int = 2, *, keep_pixels: bool = True) -> None:
        _check_threads("OcrFrames", threads)
        _check_retries("OcrFrames", retries)
        self.retries = retries
        self.keep_pixels = keep_pixels
        self._log = get_logger("tideflow.media.ocr", pid=os.getpid())
        self._reader = OcrReader(threads)

    def read_frame(self, image: np.ndarray) -> list[dict[str, Any]]:
        """The lines of one RGB frame (see :meth:`OcrReader.read_frame`)."""
        return self._reader.read_frame(image)

    def _row_lines(self, row: dict[str, Any]) -> list[dict[str, Any]]:
        lines = []
        for frame, image in zip(row["frames"], frame_images(row), strict=True):
            lines += [{"t": frame["t"], **line} for line in self.read_frame(image)]
        return lines

    def __call__(self, table: pa.Table) -> pa.Table:
        wanted = ["frames", "pixels", "frame_h", "frame_w", "error", "video_id", "shard"]
        found, errors = [], []
        for row in table.select([c for c in wanted if c in table.column_names]).to_pylist():
            lines: list[dict[str, Any]] = []
            error = row.get("error")
            if error is None:
                read, problem = _with_retries(
                    "ocr",
                    self.retries,
                    functools.partial(self._row_lines, row),
                    self._log,
                    video_id=row.get("video_id"),
                    shard=row.get("shard"),
                )
                lines, error = read or [], f"ocr: {problem}" if problem else None
            found.append(lines)
            errors.append(error)
        out = _with_columns(
            table,
            {
                "lines": pa.array(found, pa.list_(LINE_TYPE)),
                "error": pa.array(errors, pa.string()),
            },
        )
        if self.keep_pixels:
            return out
        return out.drop_columns(
            [c for c in ("pixels", "frame_h", "frame_w") if c in out.column_names]
        )
