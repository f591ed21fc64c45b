"""The Processor: an LLM's stages, added to a Pipeline as elastic actor pools.

    processor = build_processor(
        ProcessorConfig(engine=TransformersEngineConfig(model_source="/models/qwen"),
                        sampling=SamplingParams(max_tokens=32), concurrency=(1, 4)),
        preprocess=lambda row: {"messages": [{"role": "user", "content": row["question"]}]},
        postprocess=lambda row: {"answer": row["generated_text"]},
    )
    pipeline = processor(Pipeline.read(source))   # or processor.apply(pipeline)

as ``ray.data.llm.build_llm_processor(config, preprocess=, postprocess=)`` and
``processor(dataset)`` do for Ray Data.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tideflow.streaming.errors import ConfigError
from tideflow.streaming.llm._config import ProcessorConfig
from tideflow.streaming.llm._engine import engine_target
from tideflow.streaming.llm._stages import (
    ChatTemplateStage,
    DetokenizeStage,
    EngineStage,
    RowFunctionStage,
    TokenizeStage,
)
from tideflow.streaming.pipeline import Pipeline

__all__ = ["Processor", "StageDef", "build_llm_processor", "build_processor"]

RowFn = Callable[[dict[str, Any]], Mapping[str, Any]]


@dataclass(frozen=True, kw_only=True)
class StageDef:
    """One stage of a processor: its batch class and its ``map_batches`` options."""

    name: str
    """Stage name in the pipeline (metrics, dead letters)."""
    udf: type
    """The batch class (one instance per actor)."""
    args: tuple[Any, ...] = ()
    """Constructor arguments."""
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    """Constructor keyword arguments."""
    options: Mapping[str, Any] = field(default_factory=dict)
    """``map_batches`` options (resources, concurrency, in-flight, retries)."""


class Processor:
    """preprocess → chat template → tokenize → engine → detokenize → postprocess.

    Stages with nothing to do are left out: no user function, ``apply_chat_template`` /
    ``tokenize`` / ``detokenize`` off, an engine that templates and tokenizes itself
    (``openai``), or embedding. Rows come out with every input column, plus
    ``generated_text`` (and ``generated_tokens`` for local engines), ``num_input_tokens``,
    ``num_generated_tokens``, ``finish_reason``, ``latency_s`` and ``generated_logprobs``
    (when asked) — or ``embeddings``. Rows that fail for good go to the job's dead-letter
    output with their error and stage.
    """

    def __init__(
        self,
        config: ProcessorConfig,
        *,
        preprocess: RowFn | None = None,
        postprocess: RowFn | None = None,
    ) -> None:
        if not isinstance(config, ProcessorConfig):
            raise ConfigError(f"Processor expects a ProcessorConfig; got {config!r}")
        for label, fn in (("preprocess", preprocess), ("postprocess", postprocess)):
            if fn is not None and not callable(fn):
                raise ConfigError(f"Processor: {label} must be a function row -> dict; got {fn!r}")
        self.config = config
        self.stages = _plan_stages(config, preprocess, postprocess)

    def apply(self, pipeline: Pipeline) -> Pipeline:
        """``pipeline`` followed by this processor's stages."""
        for stage in self.stages:
            pipeline = pipeline.map_batches(
                stage.udf,
                name=stage.name,
                fn_constructor_args=stage.args,
                fn_constructor_kwargs=dict(stage.kwargs),
                **stage.options,
            )
        return pipeline

    def __call__(self, pipeline: Pipeline) -> Pipeline:
        """Same as :meth:`apply` (``processor(dataset)`` in ``ray.data.llm``)."""
        return self.apply(pipeline)

    def __repr__(self) -> str:
        names = " → ".join(s.name for s in self.stages)
        return f"Processor({type(self.config.engine).__name__}: {names})"


def build_processor(
    config: ProcessorConfig,
    *,
    preprocess: RowFn | None = None,
    postprocess: RowFn | None = None,
) -> Processor:
    """A :class:`Processor` for ``config``; ``preprocess`` / ``postprocess`` map a row (dict)
    to a dict of columns to add or replace (the row's other columns are kept)."""
    return Processor(config, preprocess=preprocess, postprocess=postprocess)


build_llm_processor = build_processor
"""The name ``ray.data.llm`` users know."""


def _plan_stages(
    config: ProcessorConfig, preprocess: RowFn | None, postprocess: RowFn | None
) -> tuple[StageDef, ...]:
    engine = config.engine
    embed = engine.embeds
    local_text = not engine.tokenizes_itself and not embed
    cpu = {
        "num_cpus": config.cpu_stage_num_cpus,
        "concurrency": config.cpu_concurrency,
        "max_retries": config.max_retries,
    }
    prefix = config.stage_prefix
    source = engine.model_source
    stages: list[StageDef] = []
    if preprocess is not None:
        stages.append(
            StageDef(
                name=f"{prefix}_preprocess", udf=RowFunctionStage, args=(preprocess,), options=cpu
            )
        )
    if local_text and config.apply_chat_template:
        stages.append(
            StageDef(
                name=f"{prefix}_chat_template",
                udf=ChatTemplateStage,
                args=(source, config.chat_template),
                options=cpu,
            )
        )
    if local_text and config.tokenize:
        stages.append(
            StageDef(
                name=f"{prefix}_tokenize",
                udf=TokenizeStage,
                args=(source,),
                kwargs={"templated": config.apply_chat_template},
                options=cpu,
            )
        )
    engine_options: dict[str, Any] = {
        "num_cpus": config.num_cpus,
        "num_gpus": config.engine_num_gpus,
        "concurrency": config.concurrency,
        "max_in_flight": config.max_in_flight,
        "max_retries": config.max_retries,
    }
    if config.accelerator_type is not None:
        engine_options["accelerator_type"] = config.accelerator_type
    stages.append(
        StageDef(
            name=f"{prefix}_engine",
            udf=EngineStage,
            # Resolved here, in the driver: engines registered with register_engine() in this
            # process build in the actors too.
            args=(config, engine_target(engine)),
            options=engine_options,
        )
    )
    if local_text and config.detokenize:
        stages.append(
            StageDef(name=f"{prefix}_detokenize", udf=DetokenizeStage, args=(source,), options=cpu)
        )
    if postprocess is not None:
        stages.append(
            StageDef(
                name=f"{prefix}_postprocess", udf=RowFunctionStage, args=(postprocess,), options=cpu
            )
        )
    return tuple(stages)
