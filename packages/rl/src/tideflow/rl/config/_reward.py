"""The reward role: a Python rule function, or a served reward model (classifier or judge)."""

from __future__ import annotations

import math
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from tideflow.rl.config._checks import DTYPES, _check, _check_gpu_reserved
from tideflow.rl.errors import ConfigError

_TOY_REWARD = "tideflow.rl.toy:reward"

TEMPLATE_FIELDS = ("prompt", "response")
"""The fields a reward worker always fills in a template (besides the prompt item's own)."""


def template_fields(template: str) -> set[str]:
    """The names a ``str.format`` template fills (``{item.x}`` and ``{item[0]}`` name
    ``item``); :class:`ConfigError` when it does not parse or has a positional field."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as error:
        message = f"RewardModelConfig.template {template!r} is not a format string: {error}"
        raise ConfigError(message) from error
    names = set()
    for _, name, _, _ in parsed:
        if name is None:
            continue
        base = name.split(".", 1)[0].split("[", 1)[0]
        _check(base.isidentifier(), "RewardModelConfig.template", "a format string of named "
               "fields such as {prompt} and {response} (no {} or {0})", template)  # fmt: skip
        names.add(base)
    return names


@dataclass(frozen=True, kw_only=True)
class RewardModelConfig:
    """A reward model served through :mod:`tideflow.streaming.llm`: a sequence classifier,
    or a generative judge (a local model, or any OpenAI-protocol server)."""

    kind: Literal["classifier", "judge"] = "classifier"
    """``classifier``: a ``*ForSequenceClassification`` model; the score is the logit of
    ``label``. ``judge``: a generating model answers ``template``; the first number of its
    answer is the score."""
    path: str
    """A local model directory; for a judge behind ``base_url``, the served model's name."""
    base_url: str | None = None
    """A judge's OpenAI-protocol endpoint (``http://host:port/v1``); ``None``: the judge runs
    locally through the ``transformers`` engine."""
    template: str | None = None
    """What is scored, with ``{prompt}`` and ``{response}`` (the item's ``prompt`` text and
    the response text). Default: ``"{prompt} {response}"`` for a classifier; for a judge,
    a prompt asking for a score between 0 and 1."""
    label: int = 0
    """Classifier: which logit is the score."""
    max_tokens: int = 8
    """Judge: most tokens of an answer."""
    device: str = "cpu"
    """Torch device of a local model (``cpu``, ``cuda``)."""
    dtype: str = "float32"
    """Torch dtype of a local model's weights."""
    num_threads: int | None = 1
    """Torch CPU threads in each reward worker (``None``: torch's choice)."""
    unparsed_score: float | None = None
    """Judge: the score of an answer that holds no number; ``None``: such an answer fails
    the run (an :class:`~tideflow.rl.errors.RLError` naming the answer)."""
    stand_in_latency_s: float = 0.0
    """Seconds slept per reward-model call on top of the model's own time: a stand-in for a
    bigger or remote reward model, for benchmarks. Keep 0 in real use."""

    def __post_init__(self) -> None:
        kinds = ("classifier", "judge")
        _check(self.kind in kinds, "RewardModelConfig.kind", f"one of {kinds}", self.kind)
        _check(bool(self.path), "RewardModelConfig.path", "a model directory or name", self.path)
        if self.base_url is not None:
            _check(self.kind == "judge", "RewardModelConfig.base_url", "None for a classifier "
                   "(only a judge is reached over HTTP)", self.base_url)  # fmt: skip
            _check(self.base_url.startswith(("http://", "https://")), "RewardModelConfig.base_url",
                   "an http(s):// URL", self.base_url)  # fmt: skip
        else:
            _check(Path(self.path).is_dir(), "RewardModelConfig.path", "an existing model "
                   "directory", self.path)  # fmt: skip
        if self.template is not None:
            _check("response" in template_fields(self.template), "RewardModelConfig.template",
                   "a format string with a {response} field", self.template)  # fmt: skip
        _check(self.dtype in DTYPES, "RewardModelConfig.dtype", f"one of {DTYPES}", self.dtype)
        if self.unparsed_score is not None:
            score = self.unparsed_score
            finite = isinstance(score, int | float) and not isinstance(score, bool)
            _check(finite and math.isfinite(score), "RewardModelConfig.unparsed_score",
                   "a finite number or None", score)  # fmt: skip
        _check(self.label >= 0, "RewardModelConfig.label", ">= 0", self.label)
        _check(self.max_tokens >= 1, "RewardModelConfig.max_tokens", ">= 1", self.max_tokens)
        if self.num_threads is not None:
            _check(self.num_threads >= 1, "RewardModelConfig.num_threads", ">= 1",
                   self.num_threads)  # fmt: skip
        _check(self.stand_in_latency_s >= 0, "RewardModelConfig.stand_in_latency_s", ">= 0",
               self.stand_in_latency_s)  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class RewardConfig:
    """Reward workers, off the rollout's critical path: a Python rule function, or a reward
    model (``model``) served in its own pool of workers."""

    function: str | None = _TOY_REWARD
    """``"module:function"``, called as ``function(prompt_item, response_text) -> float``.
    With ``model`` set, leave it at its default or ``None`` (it is then ``None``)."""
    model: RewardModelConfig | None = None
    """A reward model instead of a function (``None``: the function scores)."""
    num_workers: int = 1
    """Reward workers; a batch is scored by one of them, round-robin."""
    num_cpus: float = 0.5
    """CPUs each reward worker reserves (Ray)."""
    num_gpus: float = 0.0
    """GPUs each reward worker reserves (Ray): > 0 for a reward model on ``cuda``."""
    batch_size: int = 64
    """Reward model: most samples per call into the model (a batch is scored in calls of
    this many)."""
    inline: bool = False
    """``True``: rollout waits for a batch's scores before generating the next one (the
    reward on the critical path, for comparison); ``False``: scoring overlaps generation."""

    def __post_init__(self) -> None:
        if self.model is not None:
            _check(isinstance(self.model, RewardModelConfig), "RewardConfig.model",
                   "a RewardModelConfig", self.model)  # fmt: skip
            if self.function == _TOY_REWARD:
                object.__setattr__(self, "function", None)  # the default yields to the model
            if self.function is not None:
                message = (
                    "RewardConfig: set either function or model, not both; got function "
                    f"{self.function!r} and a {self.model.kind} model at {self.model.path!r}"
                )
                raise ConfigError(message)
        else:
            _check(self.function is not None, "RewardConfig.function", "'module:function' "
                   "when no model is set", self.function)  # fmt: skip
            module, _, name = str(self.function).partition(":")
            _check(bool(module and name), "RewardConfig.function", "'module:function'",
                   self.function)  # fmt: skip
        _check(self.num_workers >= 1, "RewardConfig.num_workers", ">= 1", self.num_workers)
        _check(self.num_cpus >= 0, "RewardConfig.num_cpus", ">= 0", self.num_cpus)
        _check(self.num_gpus >= 0, "RewardConfig.num_gpus", ">= 0", self.num_gpus)
        if self.model is not None and self.model.base_url is None:
            _check_gpu_reserved(self.model.device, self.num_gpus, "RewardConfig")
        _check(self.batch_size >= 1, "RewardConfig.batch_size", ">= 1", self.batch_size)
