"""The demo's LLM part: a Processor on generated text, end to end on a local Ray.

A tiny random Qwen2 model is built into the work directory (no weights are downloaded);
generated "captions" go through preprocess → chat template → tokenize → transformers
engine → detokenize → postprocess, each stage its own actor pool; one caption is far too
long for the model and lands in the dead-letter output with its error. The summary shows
rows, tokens, latency per row and the stages.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

import tideflow_tools  # noqa: F401  (sets Ray's environment before Ray is imported)
from tideflow.streaming import CheckpointConfig, Pipeline
from tideflow.streaming.llm import (
    ProcessorConfig,
    SamplingParams,
    TransformersEngineConfig,
    build_processor,
)
from tideflow.streaming.llm.testing import build_tiny_model, sample_texts
from tideflow.streaming.testing import CollectingSink, TestSource

__all__ = ["run_llm_demo"]


def _ask(row: dict[str, Any]) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": f"summarise: {row['caption']}"}]}


def _answer(row: dict[str, Any]) -> dict[str, Any]:
    return {"summary": row["generated_text"]}


def run_llm_demo(
    console: Console | None = None, *, workdir: str | Path | None = None, rows: int = 96
) -> bool:
    """Run the LLM part of the demo; print a summary; True when every good row came out."""
    import os

    import ray

    console = console or Console(stderr=True)
    if not ray.is_initialized():
        # Six small pools and the I/O actor: logical CPUs beyond the cores let them all be
        # placed on a 2-core laptop (the CPU stages are mostly idle).
        ray.init(num_cpus=max(4, os.cpu_count() or 1), include_dashboard=False)
    with tempfile.TemporaryDirectory(prefix="tideflow-llm-demo-") as tmp:
        work = Path(workdir) if workdir is not None else Path(tmp)
        model = build_tiny_model(work / "tiny-qwen2")
        console.print(f"built a tiny random Qwen2 model in {model}")
        data = [{"id": i, "caption": t} for i, t in enumerate(sample_texts(rows, seed=42))]
        data.append({"id": rows, "caption": "tide " * 400})  # too long: a dead letter
        config = ProcessorConfig(
            engine=TransformersEngineConfig(model_source=str(model)),
            sampling=SamplingParams(max_tokens=16),
            batch_size=16,
            cpu_stage_num_cpus=0.25,
            num_cpus=0.5,
        )
        processor = build_processor(config, preprocess=_ask, postprocess=_answer)
        console.print(repr(processor))
        source = TestSource([data[i : i + 32] for i in range(0, len(data), 32)])
        result = (
            processor(Pipeline.read(source, batch_size=16))
            .write(CollectingSink(str(work / "out")))
            .run(
                job_id="llm-demo",
                checkpoint=CheckpointConfig(uri=str(work / "ckpt")),
                dead_letter=CollectingSink(str(work / "dead")),
            )
        )
        out = CollectingSink.read(str(work / "out"))
        dead = CollectingSink.read(str(work / "dead"))
        table = Table(title="LLM stage on generated text")
        for column in ("stage", "rows out", "dead letters", "busy s"):
            table.add_column(column, justify="right" if column != "stage" else "left")
        for name, stage in result.stages.items():
            table.add_row(
                name, f"{stage.rows_out:,}", str(stage.dead_letters), f"{stage.busy_s:.2f}"
            )
        console.print(table)
        tokens = sum(out.column("num_generated_tokens").to_pylist())
        latency = out.column("latency_s").to_pylist()
        console.print(
            f"{out.num_rows} rows, {tokens} generated tokens, mean engine latency "
            f"{sum(latency) / max(len(latency), 1):.3f} s/row; {dead.num_rows} dead letter(s): "
            f"{dead.column('error')[0].as_py()[:80] if dead.num_rows else '-'}"
        )
        first = out.sort_by("id").slice(0, 1).to_pylist()[0]
        console.print(f"e.g. {first['caption']!r} → {first['summary']!r}")
        return out.num_rows == rows and dead.num_rows == 1


if __name__ == "__main__":
    raise SystemExit(0 if run_llm_demo() else 1)
