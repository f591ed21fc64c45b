"""Near-duplicate frames, without a model: a perceptual hash, a colour histogram and a
coarse grey thumbnail per frame, and an operator that drops the frames that repeat the
last one kept.

>>> a, b = frame_signature(slide_1), frame_signature(slide_1_recompressed)  # doctest: +SKIP
>>> is_near_duplicate(a, b)                                                 # doctest: +SKIP
True

Why three parts. The 64-bit DCT hash and the 48-bin HSV histogram describe a frame's
layout and colours; they are what is stored (columns ``phash``, ``hist``) and what
query-by-frame compares (:func:`signature_distance`). Neither sees text: on a 320×180
slide, changing one number flips none of the hash's bits and moves the histogram by about
0.001. The OCR must see every distinct slide, so :func:`is_near_duplicate` also compares
the thumbnails (mean grey level of every 4×4-pixel cell). Measured on rendered slides
(white text, 12–24 px, on 320×180 to 1920×1080 frames): a changed digit or word moves
some cell by 25–180 grey levels, while Gaussian noise of σ = 8 moves none by more than 7
and JPEG at quality 30 none by more than 13. Hence ``max_cell_diff=20``. The hash and
histogram thresholds (6 bits, 0.2) sit above what noise of σ = 8 and JPEG do to them
(≤ 2 bits, ≤ 0.1) and below what a different slide does (≥ 12 bits) or a cut to another
scene.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from tideflow.media.errors import ConfigError

__all__ = [
    "HIST_BINS",
    "FrameSignature",
    "frame_signature",
    "hamming",
    "hist_l1",
    "signature_distance",
    "is_near_duplicate",
    "DedupFrames",
]

HUE_BINS = 16
VALUE_BINS = 3
HIST_BINS = HUE_BINS * VALUE_BINS
"""Length of :attr:`FrameSignature.hist`: 16 hue × 3 value bins, value-major."""
CELL_PX = 4
"""Side, in pixels, of the cells whose mean grey level makes :attr:`FrameSignature.thumb`."""

_HASH_SIDE = 32
_HASH_LOW = 8
_HASH_DEAD_ZONE = 2.0
"""How far (in orthonormal DCT units of grey levels) a coefficient must stand above the
median to be a 1 bit. A frame of one colour has no structure: its coefficients are all
≈ 0 and, without this margin, its bits were noise (JPEG at quality 95 flipped 20–40 of
them, so a screenshot of a blank frame matched no frame). Now only its DC bit (brightness
above 0) can be set. A frame with
any structure has low coefficients in the tens to thousands, which a margin of 2 leaves as
they were."""
_HIST_SAMPLES_SIDE = 160
_GREY_CHROMA = 0.1
"""Chroma (max − min of RGB, 0–1) up to which a pixel counts as grey: its hue is noise."""
_FULL_CHROMA = 0.25
"""Chroma above the grey level at which a pixel's hue gets all its weight."""
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


@dataclass(frozen=True, eq=False)
class FrameSignature:
    """What :func:`frame_signature` measures of a frame."""

    phash: int
    """64-bit DCT perceptual hash as a signed int64 (what an ``int64`` column stores)."""
    hist: np.ndarray
    """48 float32 summing to 1: hue (16 bins) × value (3 bins), soft-binned; grey pixels
    spread their weight over every hue of their value row."""
    thumb: np.ndarray
    """Mean grey level (0–255, float32) of each 4×4-pixel cell; shape ``(H // 4, W // 4)``."""


def frame_signature(image: np.ndarray) -> FrameSignature:
    """The signature of an H × W × 3 RGB (uint8) frame."""
    if image.ndim != 3 or image.shape[2] < 3 or image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"expected an H × W × 3 RGB image; got shape {image.shape}")
    rgb = image[:, :, :3]
    thumb = _cell_means(rgb.astype(np.float32) @ _LUMA, CELL_PX)
    return FrameSignature(phash=_dct_hash(thumb), hist=_hsv_hist(rgb), thumb=thumb)


def hamming(a: int, b: int) -> int:
    """How many of the 64 bits of two hashes differ (signed or unsigned int64 alike)."""
    return ((a ^ b) & 0xFFFF_FFFF_FFFF_FFFF).bit_count()


def hist_l1(a: np.ndarray, b: np.ndarray) -> float:
    """L1 distance of two normalised histograms: 0 (same) to 2 (disjoint)."""
    return float(np.abs(np.asarray(a, np.float32) - np.asarray(b, np.float32)).sum())


def signature_distance(a: FrameSignature, b: FrameSignature) -> float:
    """One number to rank frames by likeness (query-by-frame): the mean of the hash's
    Hamming distance over 64 and the histograms' L1 distance over 2, in ``[0, 1]``. Uses
    only what is stored (``phash``, ``hist``), so it blind to text; see
    :func:`is_near_duplicate`."""
    return 0.5 * hamming(a.phash, b.phash) / 64 + 0.5 * hist_l1(a.hist, b.hist) / 2


def is_near_duplicate(
    a: FrameSignature,
    b: FrameSignature,
    *,
    max_hamming: int = 6,
    max_hist_l1: float = 0.2,
    max_cell_diff: float | None = 20.0,
) -> bool:
    """Whether two frames show the same picture: hashes within ``max_hamming`` bits,
    histograms within ``max_hist_l1``, and (unless ``max_cell_diff`` is ``None``) no 4×4
    cell whose mean grey level differs by more than ``max_cell_diff`` — the part that tells
    slides differing by one word apart. Frames of different sizes are never duplicates
    unless the cell check is off."""
    if hamming(a.phash, b.phash) > max_hamming or hist_l1(a.hist, b.hist) > max_hist_l1:
        return False
    if max_cell_diff is None:
        return True
    if a.thumb.shape != b.thumb.shape:
        return False
    if a.thumb.size == 0:
        return True
    return float(np.abs(a.thumb - b.thumb).max()) <= max_cell_diff


class DedupFrames:
    """Operator: drop the frames of a row that repeat the last frame kept.

    Within each row (frames in time order), a frame that :func:`is_near_duplicate` finds
    equal to the last *kept* frame is dropped and the kept frame's ``t1`` grows to cover
    it. Output: the input columns with ``frames`` and ``pixels`` reduced, plus ``phash``
    (list<int64>) and ``hist`` (list<fixed_size_list<float32, 48>>) of the kept frames and
    ``frames_sampled`` (int32, the count before removal). Rows with an ``error`` pass
    through untouched (nulls in the new columns). ``remove=False`` keeps every frame and
    only adds the signatures (to measure what removal saves, or to index every frame).
    """

    def __init__(
        self,
        *,
        max_hamming: int = 6,
        max_hist_l1: float = 0.2,
        max_cell_diff: float | None = 20.0,
        remove: bool = True,
    ) -> None:
        problem = None
        if not 0 <= max_hamming <= 64:
            problem = f"max_hamming must be within 0..64 bits; got {max_hamming}"
        elif not 0.0 <= max_hist_l1 <= 2.0:
            problem = f"max_hist_l1 must be within 0..2 (an L1 distance); got {max_hist_l1}"
        elif max_cell_diff is not None and not 0.0 <= max_cell_diff <= 255.0:
            problem = f"max_cell_diff must be None (off) or 0..255 grey levels; got {max_cell_diff}"
        if problem is not None:
            raise ConfigError(problem)
        self.max_hamming = max_hamming
        self.max_hist_l1 = max_hist_l1
        self.max_cell_diff = max_cell_diff
        self.remove = remove

    def __call__(self, table: pa.Table) -> pa.Table:
        errors = (
            table.column("error").to_pylist()
            if "error" in table.column_names
            else [None] * table.num_rows
        )
        frames_col = table.column("frames")
        pixels_col = table.column("pixels")
        heights = table.column("frame_h").to_pylist()
        widths = table.column("frame_w").to_pylist()
        out = _Columns()
        for i in range(table.num_rows):
            frames = frames_col[i].as_py()
            pixels = pixels_col[i].values if pixels_col[i].is_valid else None
            if errors[i] is not None or frames is None or pixels is None:
                out.untouched(frames, pixels)
                continue
            shape = (int(heights[i] or 0), int(widths[i] or 0), 3)
            out.row(*self._dedup_row(frames, pixels, shape))
        return out.table(table)

    def _dedup_row(
        self, frames: list[dict[str, Any]], pixels: pa.Array, shape: tuple[int, int, int]
    ) -> tuple[list[dict[str, Any]], pa.Array, list[FrameSignature], int]:
        kept: list[int] = []
        kept_frames: list[dict[str, Any]] = []
        signatures: list[FrameSignature] = []
        for j, frame in enumerate(frames):
            buffer = pixels[j].as_buffer()
            if buffer is None or buffer.size != shape[0] * shape[1] * 3:
                size = None if buffer is None else buffer.size
                message = (
                    f"frame {j} has {size} bytes of pixels; expected frame_h × frame_w × 3 = "
                    f"{shape[0]} × {shape[1]} × 3"
                )
                raise ValueError(message)
            image = np.frombuffer(buffer, dtype=np.uint8).reshape(shape)
            signature = frame_signature(image)
            if (
                self.remove
                and signatures
                and is_near_duplicate(
                    signatures[-1],
                    signature,
                    max_hamming=self.max_hamming,
                    max_hist_l1=self.max_hist_l1,
                    max_cell_diff=self.max_cell_diff,
                )
            ):
                last = kept_frames[-1]
                last["t1"] = max(last["t1"], frame["t1"])
                continue
            kept.append(j)
            kept_frames.append(dict(frame))
            signatures.append(signature)
        return kept_frames, pixels.take(pa.array(kept, pa.int64())), signatures, len(frames)


class _Columns:
    """The output columns of :class:`DedupFrames`, built row by row."""

    def __init__(self) -> None:
        self.frames: list[list[dict[str, Any]] | None] = []
        self.pixels: list[pa.Array | None] = []
        self.phash: list[list[int] | None] = []
        self.hist: list[np.ndarray | None] = []
        self.sampled: list[int | None] = []

    def untouched(self, frames: list[dict[str, Any]] | None, pixels: pa.Array | None) -> None:
        self.frames.append(frames)
        self.pixels.append(pixels)
        self.phash.append(None)
        self.hist.append(None)
        self.sampled.append(None)

    def row(
        self,
        frames: list[dict[str, Any]],
        pixels: pa.Array,
        signatures: list[FrameSignature],
        sampled: int,
    ) -> None:
        self.frames.append(frames)
        self.pixels.append(pixels)
        self.phash.append([s.phash for s in signatures])
        self.hist.append(
            np.stack([s.hist for s in signatures])
            if signatures
            else np.zeros((0, HIST_BINS), np.float32)
        )
        self.sampled.append(sampled)

    def table(self, source: pa.Table) -> pa.Table:
        frames_type = source.schema.field("frames").type
        pixels_type = source.schema.field("pixels").type
        table = source.set_column(
            source.schema.get_field_index("frames"),
            source.schema.field("frames"),
            pa.array(self.frames, frames_type),
        )
        table = table.set_column(
            table.schema.get_field_index("pixels"),
            source.schema.field("pixels"),
            _list_of(self.pixels, pixels_type),
        )
        hist_values = [h for h in self.hist if h is not None]
        flat_hist = np.concatenate(hist_values).ravel() if hist_values else np.zeros(0, np.float32)
        hist_parts = pa.FixedSizeListArray.from_arrays(pa.array(flat_hist, pa.float32()), HIST_BINS)
        lengths = [None if h is None else len(h) for h in self.hist]
        return (
            table.append_column("phash", pa.array(self.phash, pa.list_(pa.int64())))
            .append_column("hist", _list_from_lengths(lengths, hist_parts))
            .append_column("frames_sampled", pa.array(self.sampled, pa.int32()))
        )


def _list_of(parts: list[pa.Array | None], list_type: pa.DataType) -> pa.Array:
    """A list array whose rows are ``parts`` (``None`` for a null row)."""
    values = [p for p in parts if p is not None]
    flat = (
        pa.concat_arrays([v.cast(list_type.value_type) for v in values])
        if values
        else pa.array([], list_type.value_type)
    )
    return _list_from_lengths([None if p is None else len(p) for p in parts], flat, list_type)


def _list_from_lengths(
    lengths: list[int | None], flat: pa.Array, list_type: pa.DataType | None = None
) -> pa.Array:
    offsets = np.zeros(len(lengths) + 1, np.int32)
    np.cumsum([n or 0 for n in lengths], out=offsets[1:])
    mask = pa.array([n is None for n in lengths], pa.bool_())
    return pa.ListArray.from_arrays(
        pa.array(offsets),
        flat,
        type=list_type,
        mask=mask if any(n is None for n in lengths) else None,
    )


def _cell_means(gray: np.ndarray, cell: int) -> np.ndarray:
    """Mean of each ``cell`` × ``cell`` block (edge pixels that fill no block are dropped;
    a side shorter than a cell is one block)."""
    height, width = gray.shape
    rows, cols = max(1, height // cell), max(1, width // cell)
    cell_h, cell_w = min(cell, height), min(cell, width)
    block = gray[: rows * cell_h, : cols * cell_w]
    return block.reshape(rows, cell_h, cols, cell_w).mean(axis=(1, 3), dtype=np.float32)


def _area_matrix(size: int, out: int) -> np.ndarray:
    """``out`` × ``size`` matrix whose product with a signal averages it over ``out`` bins."""
    edges = np.linspace(0.0, size, out + 1)
    lo = np.maximum(edges[:-1, None], np.arange(size)[None, :])
    hi = np.minimum(edges[1:, None], np.arange(size)[None, :] + 1)
    weights = np.clip(hi - lo, 0.0, None)
    return weights / weights.sum(axis=1, keepdims=True)


def _dct_matrix(n: int) -> np.ndarray:
    k = np.arange(n)[:, None]
    x = np.arange(n)[None, :]
    matrix = np.cos(np.pi * (2 * x + 1) * k / (2 * n))
    matrix[0] *= np.sqrt(1 / n)
    matrix[1:] *= np.sqrt(2 / n)
    return matrix


_DCT = _dct_matrix(_HASH_SIDE)


def _dct_hash(gray: np.ndarray) -> int:
    """pHash: 32 × 32 area-averaged grey, 2-D DCT, the 8 × 8 lowest frequencies, one bit
    per coefficient above their median (the DC term excluded from the median) by more than
    :data:`_HASH_DEAD_ZONE`."""
    height, width = gray.shape
    small = (
        _area_matrix(height, _HASH_SIDE)
        @ gray.astype(np.float64)
        @ _area_matrix(width, _HASH_SIDE).T
    )
    low = (_DCT @ small @ _DCT.T)[:_HASH_LOW, :_HASH_LOW].ravel()
    bits = low > np.median(low[1:]) + _HASH_DEAD_ZONE
    value = int.from_bytes(np.packbits(bits).tobytes(), "big")
    return value - (1 << 64) if value >= 1 << 63 else value


def _hsv_hist(rgb: np.ndarray) -> np.ndarray:
    """48-bin hue × value histogram, L1-normalised. Soft (linear) binning in hue and value,
    and a pixel's hue weight is its chroma: the hue of near-grey pixels is noise, so their
    weight spreads evenly over all hues of their value row."""
    step = max(1, max(rgb.shape[0], rgb.shape[1]) // _HIST_SAMPLES_SIDE)
    pixels = rgb[::step, ::step].reshape(-1, 3).astype(np.float32) / 255.0
    high = pixels.max(axis=1)
    chroma = high - pixels.min(axis=1)
    r, g, b = pixels[:, 0], pixels[:, 1], pixels[:, 2]
    safe = np.where(chroma > 0, chroma, 1.0)
    hue = (
        np.where(
            high == r,
            ((g - b) / safe) % 6.0,
            np.where(high == g, (b - r) / safe + 2.0, (r - g) / safe + 4.0),
        )
        / 6.0
    )
    hue_weight = np.clip((chroma - _GREY_CHROMA) / _FULL_CHROMA, 0.0, 1.0)

    h_pos = hue * HUE_BINS - 0.5
    h_lo = np.floor(h_pos)
    h_frac = h_pos - h_lo
    h_lo_i = h_lo.astype(np.int64) % HUE_BINS
    h_hi_i = (h_lo_i + 1) % HUE_BINS

    v_pos = np.clip(high * VALUE_BINS - 0.5, 0.0, VALUE_BINS - 1.0)
    v_lo_i = np.minimum(np.floor(v_pos).astype(np.int64), VALUE_BINS - 2)
    v_frac = v_pos - v_lo_i

    hist = np.zeros((VALUE_BINS, HUE_BINS), np.float64)
    for v_index, v_weight in ((v_lo_i, 1.0 - v_frac), (v_lo_i + 1, v_frac)):
        coloured = v_weight * hue_weight
        for h_index, h_weight in ((h_lo_i, 1.0 - h_frac), (h_hi_i, h_frac)):
            cells = np.bincount(
                v_index * HUE_BINS + h_index, weights=coloured * h_weight, minlength=HIST_BINS
            )
            hist += cells.reshape(VALUE_BINS, HUE_BINS)
        grey = np.bincount(v_index, weights=v_weight * (1.0 - hue_weight), minlength=VALUE_BINS)
        hist += grey[:, None] / HUE_BINS
    total = hist.sum()
    return (hist / total if total > 0 else hist).astype(np.float32).ravel()
