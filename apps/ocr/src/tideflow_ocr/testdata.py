"""Generated test videos with known text: H.264 (PyAV), text drawn with DejaVu (Latin) and
WenQuanYi Micro Hei (Chinese), scenes that change text at known times, stretches without
text, a corrupt file and a truncated one. Used by the tests, the demo and the benchmark.

>>> specs = make_corpus("/tmp/videos")            # doctest: +SKIP
>>> [s.name for s in specs]                       # doctest: +SKIP
['en-news.mp4', 'en-lecture.mp4', 'zh-news.mp4', 'zz-corrupt.mp4', 'zz-truncated.mp4']

Truth for scoring: :meth:`VideoSpec.expected_text` (lines in order of appearance) and
:meth:`VideoSpec.truth` (each line with its start and end); :func:`character_error_rate`.
"""

from __future__ import annotations

import os
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tideflow.media.testing import Scene
from tideflow_ocr.filters import edit_distance

__all__ = [
    "CJK_FONT",
    "LATIN_FONT",
    "Scene",
    "VideoSpec",
    "bench_specs",
    "character_error_rate",
    "cjk_font_available",
    "default_specs",
    "make_corpus",
    "make_video",
]

LATIN_FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
CJK_FONT = "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"


@dataclass(frozen=True, kw_only=True)
class VideoSpec:
    """One generated video: its file name, size, frame rate and scenes."""

    name: str
    duration_s: float
    scenes: tuple[Scene, ...] = ()
    width: int = 320
    height: int = 180
    rate: int = 5
    """Frames per second of the encoded video."""
    cjk: bool = False
    """Drawn with the CJK font (needs ``fonts-wqy-microhei``)."""
    corrupt: bool = False
    """Not a video at all: bytes that no decoder accepts."""
    truncate: float | None = None
    """Cut the file to this fraction of its bytes (its index stays at the front, so it
    probes as whole but the later shards cannot be decoded)."""
    seed: int = 0
    background: tuple[int, int, int] = field(default=(24, 36, 72))

    def truth(self) -> list[tuple[str, float, float]]:
        """Each line on screen with its start and end, in order of appearance."""
        return [(line, s.start_s, s.end_s) for s in self.scenes for line in s.lines]

    def expected_text(self) -> str:
        """The lines in order of appearance, one per line."""
        return "\n".join(text for text, _, _ in self.truth())


def cjk_font_available() -> bool:
    """True when the CJK font the Chinese videos need is installed (``make system-deps``)."""
    return os.path.exists(CJK_FONT)


def default_specs(*, chinese: bool | None = None, corrupt: bool = True) -> list[VideoSpec]:
    """The small corpus of the tests and the demo (a few seconds per video)."""
    specs = [
        VideoSpec(
            name="en-news.mp4",
            duration_s=6.0,
            scenes=(
                Scene(start_s=0.0, end_s=2.0, lines=("Breaking news tonight", "Markets rally")),
                Scene(start_s=2.0, end_s=3.0),
                Scene(start_s=3.0, end_s=6.0, lines=("Weather: sunny and warm",)),
            ),
            seed=1,
        ),
        VideoSpec(
            name="en-lecture.mp4",
            duration_s=5.0,
            scenes=(
                Scene(start_s=0.0, end_s=3.0, lines=("Chapter 1 Introduction",)),
                Scene(start_s=3.0, end_s=5.0, lines=("Ray actors scale out",)),
            ),
            seed=2,
            background=(60, 20, 40),
        ),
    ]
    if chinese if chinese is not None else cjk_font_available():
        specs.append(
            VideoSpec(
                name="zh-news.mp4",
                duration_s=5.0,
                scenes=(
                    Scene(start_s=0.0, end_s=1.0),
                    Scene(start_s=1.0, end_s=3.0, lines=("欢迎收看新闻联播",)),
                    Scene(start_s=3.0, end_s=5.0, lines=("今天天气晴朗", "明天有小雨")),
                ),
                cjk=True,
                seed=3,
                background=(20, 60, 30),
            )
        )
    if corrupt:
        specs.append(VideoSpec(name="zz-corrupt.mp4", duration_s=0.0, corrupt=True, seed=4))
        specs.append(
            VideoSpec(
                name="zz-truncated.mp4",
                duration_s=6.0,
                scenes=(Scene(start_s=0.0, end_s=6.0, lines=("Half of this file is gone",)),),
                truncate=0.5,
                seed=5,
            )
        )
    return specs


_WORDS = (
    "alpha beta gamma delta river mountain signal market vision stream actor shard frame "
    "window cloud table record engine planet ocean forest garden silver orange"
)


def bench_specs(count: int, *, seconds: float = 8.0, seed: int = 7) -> list[VideoSpec]:
    """``count`` English videos of ``seconds`` each, a new line every two seconds."""
    rng = random.Random(seed)
    specs = []
    for i in range(count):
        scenes = []
        t = 0.0
        previous = ""
        while t < seconds:
            end = min(seconds, t + 2.0)
            words = previous
            while words == previous:  # consecutive scenes always change their text
                words = " ".join(rng.sample(_WORDS.split(), 2))
            scenes.append(Scene(start_s=t, end_s=end, lines=(f"{words} {i}",)))
            previous, t = words, end
        specs.append(
            VideoSpec(name=f"bench-{i:03d}.mp4", duration_s=seconds, scenes=tuple(scenes), seed=i)
        )
    return specs


def make_video(spec: VideoSpec, path: str | os.PathLike[str]) -> Path:
    """Write ``spec`` as an H.264 MP4 (or, when ``corrupt``, as garbage) to ``path``."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    if spec.corrupt:
        rng = random.Random(spec.seed)
        target.write_bytes(
            b"\x00\x00\x00\x18ftypmp42" + bytes(rng.randrange(256) for _ in range(4096))
        )
        return target
    import av
    from PIL import Image, ImageDraw, ImageFont

    font_path = CJK_FONT if spec.cjk else LATIN_FONT
    if not os.path.exists(font_path):
        message = (
            f"test video {spec.name!r} needs the font {font_path} "
            "(make system-deps, or: apt-get install fonts-wqy-microhei fonts-dejavu-core)"
        )
        raise FileNotFoundError(message)
    font = ImageFont.truetype(font_path, size=max(12, spec.height // 9))
    frames = round(spec.duration_s * spec.rate)
    options = {"movflags": "faststart"} if spec.truncate is not None else {}
    with av.open(str(target), "w", options=options) as container:
        stream = container.add_stream("libx264", rate=spec.rate)
        stream.width, stream.height, stream.pix_fmt = spec.width, spec.height, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "20", "g": str(2 * spec.rate)}
        for index in range(frames):
            t = index / spec.rate
            image = Image.new("RGB", (spec.width, spec.height), spec.background)
            draw = ImageDraw.Draw(image)
            # A moving shape: frames differ even when the text stays (as in real video).
            x = int((t * 40) % spec.width)
            draw.ellipse((x, spec.height - 30, x + 24, spec.height - 6), fill=(200, 120, 40))
            lines = next((s.lines for s in spec.scenes if s.start_s <= t < s.end_s), ())
            for row, line in enumerate(lines):
                y = spec.height // 6 + row * (spec.height // 4)
                draw.text((spec.width // 16, y), line, font=font, fill=(250, 250, 250))
            frame = av.VideoFrame.from_image(image)
            frame.pts = index
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    if spec.truncate is not None:
        data = target.read_bytes()
        target.write_bytes(data[: int(len(data) * spec.truncate)])
    return target


def make_corpus(
    directory: str | os.PathLike[str], specs: Sequence[VideoSpec] | None = None
) -> list[VideoSpec]:
    """Write ``specs`` (default: :func:`default_specs`) into ``directory``; return them."""
    chosen = list(specs) if specs is not None else default_specs()
    for spec in chosen:
        make_video(spec, Path(directory) / spec.name)
    return chosen


def character_error_rate(expected: str, got: str) -> float:
    """Edit distance between the two texts ÷ the expected text's length (whitespace runs
    count as one space; line breaks as spaces)."""
    want = " ".join(expected.split())
    have = " ".join(got.split())
    if not want:
        return 0.0 if not have else 1.0
    return edit_distance(want, have) / len(want)
