"""Tideflow media: video sources, decoding, OCR and speech operators for Tideflow pipelines.

>>> from tideflow.streaming import Pipeline
>>> from tideflow.media import DecodeFrames, OcrFrames, VideoFolderSource
>>> pipeline = (
...     Pipeline.read(VideoFolderSource(uri="videos/", shard_seconds=10), batch_size=1)
...     .map_batches(DecodeFrames, fn_constructor_kwargs={"fps": 1.0}, num_cpus=0)
...     .map_batches(OcrFrames, num_cpus=1, concurrency=(1, 8))
... )

* video — probe a video (any ``pyarrow.fs`` URI), cut it into shards, sample its frames;
* sources — a folder or bucket of videos (bounded, or followed for new files) and a Kafka
  topic of video URIs, both read as shard rows (:data:`SHARD_SCHEMA`);
* frames — decode shards into frames (:class:`DecodeFrames`), near-duplicate frames;
* text — OCR of frames (:class:`OcrFrames`), subtitles (embedded and sidecar);
* speech — audio and speech recognition.

Every name loads on first use: ``import tideflow.media`` imports neither PyAV nor an OCR or
speech model (extras ``video``, ``ocr``, ``asr``; a missing one fails with its install hint).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tideflow.core.lazy import lazy_exports
from tideflow.media.errors import (
    ConfigError,
    MediaError,
    MissingDependencyError,
    SubtitleError,
    VideoError,
)

if TYPE_CHECKING:
    from tideflow.media.audio import read_audio
    from tideflow.media.dedup import DedupFrames, frame_signature
    from tideflow.media.frames import FRAME_TYPE, DecodeFrames, frame_images
    from tideflow.media.ocr import LINE_TYPE, OcrFrames, OcrReader, ocr_engine
    from tideflow.media.sources import (
        SHARD_SCHEMA,
        VIDEO_EXTENSIONS,
        VideoFolderSource,
        VideoTopicSource,
        parse_message,
    )
    from tideflow.media.subtitles import Cue, ReadSubtitles, parse_srt, parse_vtt
    from tideflow.media.video import (
        Frame,
        VideoInfo,
        open_container,
        probe,
        sample_frames,
        shard_plan,
        uri_name,
    )

__all__ = [
    # video files
    "Frame",
    "VideoInfo",
    "open_container",
    "probe",
    "sample_frames",
    "shard_plan",
    "uri_name",
    # sources
    "SHARD_SCHEMA",
    "VIDEO_EXTENSIONS",
    "VideoFolderSource",
    "VideoTopicSource",
    "parse_message",
    "video_source",
    # frames
    "FRAME_TYPE",
    "DecodeFrames",
    "frame_images",
    "DedupFrames",
    "frame_signature",
    # text on screen and in subtitles
    "LINE_TYPE",
    "OcrFrames",
    "OcrReader",
    "ocr_engine",
    "Cue",
    "ReadSubtitles",
    "parse_srt",
    "parse_vtt",
    # speech
    "SpeechRecognizer",
    "has_audio",
    "read_audio",
    "whisper_model_dir",
    # text embeddings (through the LLM operator) and languages
    "TextEmbedder",
    "embedding_engine",
    "embedding_processor",
    "detect_language",
    # errors
    "ConfigError",
    "MediaError",
    "MissingDependencyError",
    "SubtitleError",
    "VideoError",
]

_LAZY = {
    "Frame": "video",
    "VideoInfo": "video",
    "open_container": "video",
    "probe": "video",
    "sample_frames": "video",
    "shard_plan": "video",
    "uri_name": "video",
    "SHARD_SCHEMA": "sources",
    "VIDEO_EXTENSIONS": "sources",
    "VideoFolderSource": "sources",
    "VideoTopicSource": "sources",
    "parse_message": "sources",
    "video_source": "sources",
    "FRAME_TYPE": "frames",
    "DecodeFrames": "frames",
    "frame_images": "frames",
    "DedupFrames": "dedup",
    "frame_signature": "dedup",
    "LINE_TYPE": "ocr",
    "OcrFrames": "ocr",
    "OcrReader": "ocr",
    "ocr_engine": "ocr",
    "Cue": "subtitles",
    "ReadSubtitles": "subtitles",
    "parse_srt": "subtitles",
    "parse_vtt": "subtitles",
    "SpeechRecognizer": "asr",
    "read_audio": "audio",
    "has_audio": "audio",
    "TextEmbedder": "embeddings",
    "embedding_engine": "embeddings",
    "embedding_processor": "embeddings",
    "detect_language": "language",
    "whisper_model_dir": "asr",
}


__getattr__, __dir__ = lazy_exports(__name__, {n: f".{m}" for n, m in _LAZY.items()}, __all__)
