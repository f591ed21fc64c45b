"""Subtitles: SRT and WebVTT files beside a video, text streams inside it, and an operator
that gives each shard the cues it overlaps.

>>> parse_srt("1\\n00:00:01,000 --> 00:00:02,500\\n<i>Hello</i>\\nworld\\n", name="a.srt")
[Cue(start_s=1.0, end_s=2.5, text='Hello world', language=None)]

Sidecar files sit next to the video: ``talk.srt``, ``talk.vtt``, ``talk.en.srt``,
``talk.zh-Hans.vtt`` for ``talk.mp4`` — locally or on any ``pyarrow.fs`` URI (the video
URI's credentials and query string are kept). Embedded text streams (mov_text, SubRip,
ASS, WebVTT) are decoded with PyAV; bitmap subtitles (DVD, PGS) have no text and are
skipped. Malformed input raises :class:`~tideflow.media.errors.SubtitleError` naming the
file (credentials masked) and the line.
"""

from __future__ import annotations

import html
import posixpath
import re
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import pyarrow as pa

from tideflow.core.observability import get_logger
from tideflow.core.uri import redact
from tideflow.media._shards import shard_spans
from tideflow.media.errors import ConfigError, MediaError, SubtitleError

__all__ = [
    "CUE_TYPE",
    "Cue",
    "parse_srt",
    "parse_vtt",
    "normalize_language",
    "sidecar_files",
    "read_sidecar",
    "embedded_cues",
    "ReadSubtitles",
]

CUE_TYPE = pa.struct(
    [
        ("start_s", pa.float64()),
        ("end_s", pa.float64()),
        ("text", pa.string()),
        ("language", pa.string()),
        ("origin", pa.string()),
    ]
)
"""One element of the ``cues`` column; ``origin`` is ``"embedded"`` or ``"sidecar"``."""

TEXT_SUBTITLE_CODECS = frozenset({"mov_text", "subrip", "srt", "ass", "ssa", "webvtt", "text"})
"""Subtitle codecs that carry text (the others are bitmaps)."""

_UNKNOWN_END_S = 2.0
"""How long the last cue of a stream lasts when its end is not recorded."""

_log = get_logger("tideflow.media.subtitles")


@dataclass(frozen=True)
class Cue:
    """One subtitle: text shown from ``start_s`` to ``end_s`` (seconds of the video)."""

    start_s: float
    end_s: float
    text: str
    """Tags removed, lines joined with a space."""
    language: str | None = None
    """``en``, ``zh-Hans``, … (ISO 639-1 where a 3-letter code maps to one), or ``None``."""


# ISO 639-2 (bibliographic and terminological) → ISO 639-1, for the common languages.
_ISO639_2 = {
    "ara": "ar", "ces": "cs", "chi": "zh", "cze": "cs", "dan": "da", "deu": "de",
    "dut": "nl", "ell": "el", "eng": "en", "fin": "fi", "fra": "fr", "fre": "fr",
    "ger": "de", "gre": "el", "heb": "he", "hin": "hi", "hun": "hu", "ind": "id",
    "ita": "it", "jpn": "ja", "kor": "ko", "msa": "ms", "may": "ms", "nld": "nl",
    "nor": "no", "pol": "pl", "por": "pt", "ron": "ro", "rum": "ro", "rus": "ru",
    "spa": "es", "swe": "sv", "tha": "th", "tur": "tr", "ukr": "uk", "vie": "vi",
    "zho": "zh",
}  # fmt: skip
_UNDEFINED = frozenset({"", "und", "unk", "mis", "mul", "zxx"})


def normalize_language(code: str | None) -> str | None:
    """``eng`` → ``en``, ``zho``/``chi`` → ``zh``; 2-letter codes and tags like ``zh-Hans``
    kept (the primary subtag lower-cased); ``und`` and empty → ``None``."""
    if code is None:
        return None
    code = code.strip().replace("_", "-")
    primary, _, rest = code.partition("-")
    primary = primary.lower()
    if primary in _UNDEFINED:
        return None
    primary = _ISO639_2.get(primary, primary)
    return f"{primary}-{rest}" if rest else primary


# --- parsing -------------------------------------------------------------------------------

_TIMESTAMP = re.compile(r"^(?:(\d+):)?(\d{1,2}):(\d{1,2})(?:[,.](\d{1,3}))?$")
_VTT_TIMESTAMP = re.compile(r"^(?:(\d+):)?(\d{2}):(\d{2})\.(\d{3})$")
_TIMING = re.compile(r"^\s*(\S+)\s*-->\s*(\S+)(?:\s.*)?$")
_HTML_TAG = re.compile(r"<[^>]*>")
_ASS_OVERRIDE = re.compile(r"\{\\[^}]*\}")
_WHITESPACE = re.compile(r"\s+")


def _clean(lines: Sequence[str]) -> str:
    """Cue text: tags (``<i>``, ``<c.x>``, ``<00:01.000>``) and ASS overrides (``{\\an8}``)
    removed, entities decoded, lines joined with one space."""
    text = " ".join(lines)
    text = _ASS_OVERRIDE.sub("", text).replace("\\N", " ").replace("\\n", " ").replace("\\h", " ")
    text = html.unescape(_HTML_TAG.sub("", text))
    return _WHITESPACE.sub(" ", text).strip()


def _blocks(text: str) -> list[tuple[int, list[str]]]:
    """Runs of non-blank lines with the 1-based number of each run's first line."""
    blocks: list[tuple[int, list[str]]] = []
    current: list[str] = []
    first = 0
    for number, line in enumerate(text.removeprefix("\ufeff").splitlines(), 1):
        if line.strip():
            if not current:
                first = number
            current.append(line.rstrip())
        elif current:
            blocks.append((first, current))
            current = []
    if current:
        blocks.append((first, current))
    return blocks


def _seconds(stamp: str, pattern: re.Pattern[str]) -> float | None:
    match = pattern.match(stamp)
    if match is None:
        return None
    hours, minutes, seconds, millis = match.groups()
    if int(minutes) >= 60 or int(seconds) >= 60:
        return None
    fraction = int(millis.ljust(3, "0")) / 1000 if millis else 0.0
    return int(hours or 0) * 3600 + int(minutes) * 60 + int(seconds) + fraction


def _timing(
    line: str, number: int, name: str, pattern: re.Pattern[str], expected: str
) -> tuple[float, float]:
    match = _TIMING.match(line)
    start = end = None
    if match is not None:
        start = _seconds(match.group(1), pattern)
        end = _seconds(match.group(2), pattern)
    problem = None
    if start is None or end is None:
        problem = f"expected a timing line {expected!r}; got {line.strip()[:80]!r}"
    elif end < start:
        problem = f"the cue ends ({end:g} s) before it starts ({start:g} s): {line.strip()!r}"
    if problem is not None:
        raise SubtitleError(f"{redact(name)}: line {number}: {problem}")
    assert start is not None and end is not None
    return start, end


def parse_srt(text: str, *, name: str, language: str | None = None) -> list[Cue]:
    """The cues of a SubRip file, in file order. ``name`` (a path or URI) is used in
    errors; ``language`` is given to every cue. A block of text without a timing line
    continues the previous cue (blank lines inside a cue); anything else malformed raises
    :class:`SubtitleError` naming ``name`` and the line."""
    expected = "HH:MM:SS,mmm --> HH:MM:SS,mmm"
    cues: list[Cue] = []
    pending: list[tuple[float, float, list[str]]] = []
    for first, lines in _blocks(text):
        numbered = bool(re.fullmatch(r"\s*\d+\s*", lines[0]))
        if "-->" in lines[0]:
            timing_at = 0
        elif numbered and len(lines) > 1:
            timing_at = 1
        elif pending and not numbered:  # a blank line inside the previous cue's text
            pending[-1][2].extend(lines)
            continue
        else:
            got = "the end of the cue" if numbered else repr(lines[0].strip()[:80])
            at = first + 1 if numbered else first
            message = f"{redact(name)}: line {at}: expected a timing line {expected!r}; got {got}"
            raise SubtitleError(message)
        start, end = _timing(lines[timing_at], first + timing_at, name, _TIMESTAMP, expected)
        pending.append((start, end, list(lines[timing_at + 1 :])))
    for start, end, body in pending:
        cleaned = _clean(body)
        if cleaned:
            cues.append(Cue(start, end, cleaned, language))
    return cues


def parse_vtt(text: str, *, name: str, language: str | None = None) -> list[Cue]:
    """The cues of a WebVTT file, in file order. ``NOTE``, ``STYLE`` and ``REGION``
    blocks are skipped; cue settings are ignored; a ``Language:`` header is used when
    ``language`` is not given. Raises :class:`SubtitleError` naming ``name`` and the line."""
    expected = "[HH:]MM:SS.mmm --> [HH:]MM:SS.mmm"
    blocks = _blocks(text)
    if not blocks or not re.match(r"WEBVTT(?:[ \t]|$)", blocks[0][1][0]):
        seen = blocks[0][1][0].strip()[:80] if blocks else "an empty file"
        where = blocks[0][0] if blocks else 1
        message = f"{redact(name)}: line {where}: expected 'WEBVTT' first; got {seen!r}"
        raise SubtitleError(message)
    header = blocks[0][1]
    if language is None:
        for line in header[1:]:
            key, _, value = line.partition(":")
            if key.strip().lower() == "language" and value.strip():
                language = normalize_language(value)
    cues: list[Cue] = []
    for first, lines in blocks[1:]:
        if re.match(r"(NOTE|STYLE|REGION)(?:\s|$)", lines[0]):
            continue
        if "-->" in lines[0]:
            timing_at = 0
        elif len(lines) > 1 and "-->" in lines[1]:
            timing_at = 1  # a cue identifier first
        else:
            at = first + min(1, len(lines) - 1)
            seen = lines[min(1, len(lines) - 1)].strip()[:80]
            message = f"{redact(name)}: line {at}: expected a timing line {expected!r}; got "
            raise SubtitleError(message + repr(seen))
        start, end = _timing(lines[timing_at], first + timing_at, name, _VTT_TIMESTAMP, expected)
        cleaned = _clean(lines[timing_at + 1 :])
        if cleaned:
            cues.append(Cue(start, end, cleaned, language))
    return cues


def _decode_text(data: bytes) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


# --- sidecar files --------------------------------------------------------------------------

_SIDECAR_LANGUAGE = re.compile(r"[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})*")


def _is_remote(uri: str) -> bool:
    return "://" in uri and not uri.startswith("file://")


def _sidecar_language(video_name: str, name: str) -> tuple[bool, str | None]:
    """Whether ``name`` is a subtitle file of the video named ``video_name``, and the
    language its name gives."""
    stem = video_name.rsplit(".", 1)[0] if "." in video_name else video_name
    base, dot, extension = name.rpartition(".")
    if not dot or extension.lower() not in ("srt", "vtt") or name == video_name:
        return False, None
    if base == stem:
        return True, None
    if base.startswith(stem + ".") and _SIDECAR_LANGUAGE.fullmatch(base[len(stem) + 1 :]):
        return True, normalize_language(base[len(stem) + 1 :])
    return False, None


def sidecar_files(video_uri: str) -> list[tuple[str, str | None]]:
    """``(uri, language)`` of each subtitle file beside the video, sorted by name:
    ``<stem>.srt``, ``<stem>.vtt`` and ``<stem>.<lang>.srt|vtt`` (``lang`` a 2–3 letter
    code or a tag like ``zh-Hans``). Works for local paths, ``file://`` and any
    ``pyarrow.fs`` URI; sidecar URIs keep the video URI's credentials and query string.
    A folder that does not exist has none; one that cannot be listed raises
    :class:`SubtitleError`."""
    if _is_remote(video_uri):
        return _remote_sidecars(video_uri)
    local = video_uri.removeprefix("file://")
    prefix = "file://" if video_uri.startswith("file://") else ""
    video = Path(local)
    problem = None
    names: list[str] = []
    try:
        names = sorted(p.name for p in video.parent.iterdir() if p.is_file())
    except FileNotFoundError:
        return []
    except OSError as error:
        problem = f"{type(error).__name__}: {error}"
    if problem is not None:
        raise SubtitleError(f"cannot list the folder of {redact(video_uri)!r}: {problem}")
    found = []
    for name in names:
        matches, language = _sidecar_language(video.name, name)
        if matches:
            found.append((prefix + str(video.parent / name), language))
    return found


def _remote_sidecars(video_uri: str) -> list[tuple[str, str | None]]:
    from pyarrow import fs as pafs

    problem = None
    infos: list[Any] = []
    try:
        filesystem, path = pafs.FileSystem.from_uri(video_uri)
        selector = pafs.FileSelector(posixpath.dirname(path), allow_not_found=True)
        infos = filesystem.get_file_info(selector)
    except Exception as error:  # a listing failure names the video, credentials masked
        problem = f"{type(error).__name__}: {redact(str(error))}"
    if problem is not None:
        raise SubtitleError(f"cannot list the folder of {redact(video_uri)!r}: {problem}")
    parts = urlsplit(video_uri)
    video_name = posixpath.basename(path)
    folder = posixpath.dirname(parts.path)
    found = []
    for info in sorted(infos, key=lambda i: i.base_name):
        if info.type != pafs.FileType.File:
            continue
        matches, language = _sidecar_language(video_name, info.base_name)
        if matches:
            sidecar_path = posixpath.join(folder, quote(info.base_name))
            uri = urlunsplit(parts._replace(path=sidecar_path, fragment=""))
            found.append((uri, language))
    return found


def read_sidecar(uri: str, language: str | None = None) -> list[Cue]:
    """The cues of one subtitle file (``.srt`` or ``.vtt``, local or a ``pyarrow.fs`` URI).
    Raises :class:`SubtitleError` when it cannot be read or parsed."""
    problem = None
    data = b""
    try:
        if _is_remote(uri):
            from pyarrow import fs as pafs

            filesystem, path = pafs.FileSystem.from_uri(uri)
            with filesystem.open_input_stream(path) as stream:
                data = stream.read()
        else:
            data = Path(uri.removeprefix("file://")).read_bytes()
    except Exception as error:  # any read failure names the file, credentials masked
        problem = f"{type(error).__name__}: {redact(str(error))}"
    if problem is not None:
        raise SubtitleError(f"cannot read the subtitle file {redact(uri)!r}: {problem}")
    text = _decode_text(data)
    name = redact(uri)
    if urlsplit(uri).path.lower().endswith(".vtt") or uri.lower().endswith(".vtt"):
        return parse_vtt(text, name=name, language=language)
    return parse_srt(text, name=name, language=language)


# --- embedded streams -----------------------------------------------------------------------


def _ass_text(ass: str) -> str:
    """The text of an ASS event line (``ReadOrder,Layer,Style,Name,MarginL,MarginR,
    MarginV,Effect,Text`` as FFmpeg hands it, or a full ``Dialogue:`` line)."""
    if ass.startswith("Dialogue:"):
        fields = ass.split(",", 9)
        body = fields[9] if len(fields) == 10 else ""
    else:
        fields = ass.split(",", 8)
        body = fields[8] if len(fields) == 9 else ass
    return _clean([body])


def embedded_cues(video_uri: str) -> list[Cue]:
    """The cues of every text subtitle stream of a video (PyAV), in time order per stream;
    language from each stream's ``language`` tag. Raises
    :class:`~tideflow.media.errors.VideoError` when the video cannot be opened and
    :class:`SubtitleError` when a stream cannot be decoded."""
    from tideflow.media.video import open_container

    cues: list[Cue] = []
    with open_container(video_uri) as container:
        streams = []
        for stream in container.streams.subtitles:
            codec = stream.codec_context.name
            if codec in TEXT_SUBTITLE_CODECS:
                streams.append(stream)
            else:
                _log.info("subtitles.stream_skipped", stream=stream.index, codec=codec)
        if not streams:
            return []
        problem = None
        try:
            cues = _decode_streams(container, streams)
        except Exception as error:  # decode failures name the video, credentials masked
            problem = f"{type(error).__name__}: {redact(str(error))}"
    if problem is not None:
        message = f"cannot decode the subtitle streams of {redact(video_uri)!r}: {problem}"
        raise SubtitleError(message)
    return cues


def _decode_streams(container: Any, streams: list[Any]) -> list[Cue]:
    timed: dict[int, list[list[Any]]] = {s.index: [] for s in streams}
    languages = {s.index: normalize_language(s.metadata.get("language")) for s in streams}
    for packet in container.demux(*streams):
        if packet.size == 0 or packet.pts is None:
            continue
        subtitles = packet.stream.decode2(packet)
        if subtitles is None:
            continue
        base = float(packet.pts * packet.time_base)
        start = base + subtitles.start_display_time / 1000
        end: float | None = None
        if subtitles.end_display_time > subtitles.start_display_time:
            end = base + subtitles.end_display_time / 1000
        elif packet.duration:
            end = base + float(packet.duration * packet.time_base)
        texts = [
            _ass_text(rect.ass.decode("utf-8", errors="replace"))
            for rect in subtitles
            if getattr(rect, "type", None) in (b"ass", b"text")
        ]
        text = " ".join(t for t in texts if t)
        if text:
            timed[packet.stream.index].append([start, end, text])
    cues = []
    for index, entries in timed.items():
        entries.sort(key=lambda entry: entry[0])
        for i, (start, recorded_end, text) in enumerate(entries):
            end = recorded_end
            if end is None:  # shown until the next cue of the stream
                end = entries[i + 1][0] if i + 1 < len(entries) else start + _UNKNOWN_END_S
            cues.append(Cue(start, max(start, end), text, languages[index]))
    return cues


# --- the operator ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _VideoCues:
    cues: list[tuple[Cue, str]]
    """Every cue of the video with its origin, by start time."""
    problems: list[MediaError]
    """What could not be read (a broken sidecar, an undecodable stream)."""


class ReadSubtitles:
    """Operator: the subtitle cues of each shard.

    For each shard row (rows with an ``error`` pass through with null ``cues``), the cues
    of the video — embedded streams and sidecar files — that overlap ``[start_s, end_s)``,
    clipped to it, as column ``cues`` (list of :data:`CUE_TYPE`). Parsed cues are cached
    per video (LRU of ``cache_videos`` URIs), so the shards of one video parse once.

    When a sidecar or a stream cannot be read, every row of that video still comes out
    (with the cues that could be read) and the batch raises
    :class:`~tideflow.streaming.RecordErrors` naming those rows, so the engine sends each
    one's error to the dead letters: every shard of the video, on every run, whatever the
    cache holds.
    """

    def __init__(
        self, *, embedded: bool = True, sidecars: bool = True, cache_videos: int = 16
    ) -> None:
        if cache_videos < 1:
            raise ConfigError(f"cache_videos must be at least 1; got {cache_videos}")
        self.embedded = embedded
        self.sidecars = sidecars
        self.cache_videos = cache_videos
        self._cache: OrderedDict[str, _VideoCues] = OrderedDict()

    def __call__(self, table: pa.Table) -> pa.Table:
        column: list[list[dict[str, Any]] | None] = []
        failed: dict[int, BaseException] = {}
        for i, span in enumerate(shard_spans(table)):
            if span is None:
                column.append(None)
                continue
            uri, start, end = span
            video = self._video(uri)
            column.append(_clipped(video.cues, start, end))
            if video.problems:
                failed[i] = _combined(video.problems)
        index = table.schema.get_field_index("cues")
        array = pa.array(column, pa.list_(CUE_TYPE))
        output = (
            table.set_column(index, pa.field("cues", array.type), array)
            if index >= 0
            else table.append_column(pa.field("cues", array.type), array)
        )
        if failed:
            from tideflow.streaming.errors import RecordErrors

            raise RecordErrors(failed, output=output)
        return output

    def _video(self, uri: str) -> _VideoCues:
        cached = self._cache.get(uri)
        if cached is not None:
            self._cache.move_to_end(uri)
            return cached
        video = self._read(uri)
        self._cache[uri] = video
        while len(self._cache) > self.cache_videos:
            self._cache.popitem(last=False)
        return video

    def _read(self, uri: str) -> _VideoCues:
        cues: list[tuple[Cue, str]] = []
        problems: list[MediaError] = []

        def collect(origin: str, read: Callable[..., Any], *args: Any) -> Any:
            try:
                found = read(*args)
            except MediaError as error:
                problems.append(error)
                _log.warning("subtitles.read_failed", video=redact(uri), error=str(error)[:300])
                return []
            if origin:
                cues.extend((cue, origin) for cue in found)
            return found

        if self.embedded:
            collect("embedded", embedded_cues, uri)
        if self.sidecars:
            for sidecar, language in collect("", sidecar_files, uri):
                collect("sidecar", read_sidecar, sidecar, language)
        cues.sort(key=lambda item: (item[0].start_s, item[0].end_s))
        return _VideoCues(cues, problems)


def _clipped(cues: list[tuple[Cue, str]], start_s: float, end_s: float) -> list[dict[str, Any]]:
    out = []
    for cue, origin in cues:
        if cue.start_s >= end_s:
            break
        if cue.end_s > start_s or cue.start_s >= start_s:  # zero-length cues count too
            clipped = replace(cue, start_s=max(start_s, cue.start_s), end_s=min(end_s, cue.end_s))
            out.append(
                {
                    "start_s": clipped.start_s,
                    "end_s": clipped.end_s,
                    "text": clipped.text,
                    "language": clipped.language,
                    "origin": origin,
                }
            )
    return out


def _combined(problems: list[MediaError]) -> MediaError:
    if len(problems) == 1:
        return problems[0]
    return SubtitleError("; ".join(str(p) for p in problems))
