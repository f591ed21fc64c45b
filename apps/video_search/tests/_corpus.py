"""The small corpus of the tests: what is in each video, where, and in which channel."""

from __future__ import annotations

from pathlib import Path

from tideflow.media.testing import Cue, Scene, make_video, speak, write_srt, write_vtt
from tideflow_video_search.config import IngestConfig

SMALL_CONFIG = IngestConfig(
    shard_seconds=4.0,
    whisper_model="tiny.en",
    speech_language="en",
    checkpoint_interval_s=1.0,
    ocr_pool=(1, 2),
    speech_pool=(1, 1),
)
"""Short shards (several per video) and the fast English Whisper."""

SPEECH = "The night train to Korval leaves from platform nine at midnight."


def write_small_corpus(folder: Path) -> None:
    make_video(
        folder / "slides.mp4",
        duration_s=10,
        scenes=[
            Scene(start_s=0, end_s=5, lines=("The Varnholt ferry", "carries 340 passengers")),
            Scene(start_s=5, end_s=10, lines=("Lake Emmer is", "twelve km long")),
        ],
        motion=False,
    )
    make_video(
        folder / "zh-slides.mp4",
        duration_s=6,
        scenes=[Scene(start_s=0, end_s=6, lines=("青石桥建于1932年",))],
        motion=False,
    )
    make_video(folder / "sidecar.mp4", duration_s=8, motion=False)
    write_srt(
        folder / "sidecar.srt",
        [
            Cue(start_s=1.0, end_s=3.0, text="The copper mine closed in 1987"),
            Cue(start_s=4.5, end_s=7.5, text="after the great flood of the valley"),
        ],
    )
    write_vtt(
        folder / "sidecar.es.vtt",
        [Cue(start_s=1.0, end_s=3.0, text="La mina de cobre cerró en 1987", language="es")],
    )
    make_video(
        folder / "embedded.mp4",
        duration_s=8,
        subtitles=[Cue(start_s=2.0, end_s=5.0, text="Orchard apples ripen in late September")],
        motion=False,
    )
    make_video(folder / "speech.mp4", duration_s=8, audio=speak(SPEECH), motion=False)
