# --8<-- [start:example]
"""The LLM operator against an OpenAI-protocol server (here a local echo model, no download)."""

from tideflow.streaming import Pipeline
from tideflow.streaming.llm import (
    OpenAIEngineConfig,
    ProcessorConfig,
    SamplingParams,
    build_processor,
)
from tideflow.streaming.llm.testing import OpenAIServer, sample_texts
from tideflow.streaming.testing import TestSource

rows = [{"id": i, "text": t} for i, t in enumerate(sample_texts(16))]
with OpenAIServer() as server:  # any OpenAI-compatible server: vLLM, SGLang, llama.cpp, hosted
    processor = build_processor(
        ProcessorConfig(
            engine=OpenAIEngineConfig(
                model_source=server.model_name,  # the served model's name
                base_url=server.base_url,
                api_key_env=None,  # a real server: the variable holding the key (OPENAI_API_KEY)
                max_concurrent_requests=8,  # requests in flight per engine actor
            ),
            sampling=SamplingParams(max_tokens=8),
            batch_size=8,
        ),
        preprocess=lambda row: {"messages": [{"role": "user", "content": row["text"]}]},
        postprocess=lambda row: {"answer": row["generated_text"]},
    )
    out = 0
    for table in processor(Pipeline.read(TestSource([rows]))).iter_batches():
        print(table.select(["id", "answer", "finish_reason", "latency_s"]))
        out += table.num_rows
assert out == 16
# --8<-- [end:example]
