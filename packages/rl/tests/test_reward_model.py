"""A reward model scores samples in its own workers: rewards equal the model's own scores,
calls are batched, and bad reward configs are named clearly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tideflow.rl import ConfigError, RewardConfig, RewardModelConfig, config_from_dict
from tideflow.rl._data import Sample
from tideflow.rl._reward import RewardWorker, check_reward
from tideflow.rl.toy import DigitTask


@pytest.fixture(scope="module")
def reward_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A random tiny sequence classifier with the digit task's tokenizer."""
    from tideflow.rl.toy import build_digit_model
    from tideflow.streaming.llm.scoring import build_tiny_classifier

    root = tmp_path_factory.mktemp("rl-reward-model")
    policy = build_digit_model(root / "policy")
    return str(build_tiny_classifier(root / "rm", tokenizer_from=policy))


def _parts(n: int, workers: int = 2) -> list[dict[str, Any]]:
    """What ``workers`` rollout workers return for ``n`` samples of the digit task."""
    items = DigitTask().items(n, seed=9)
    samples = [
        Sample(
            batch=0,
            prompt_id=item["id"],
            group=f"0:{item['id']}",
            prompt_token_ids=[1, 2],
            response_token_ids=[3],
            behaviour_logprobs=[-0.5],
            version=0,
            response_text=" ".join(reversed(item["answer"].split()[: 1 + i % 3])),
            item=item,
        ).as_dict()
        for i, item in enumerate(items)
    ]
    return [
        {"samples": samples[r::workers], "generate_s": 0.1, "interval": (0.0, 0.1)}
        for r in range(workers)
    ]


def _direct_scores(path: str, texts: list[str]) -> list[float]:
    """The classifier called directly, one text at a time."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path).eval()
    with torch.inference_mode():
        return [float(model(**tokenizer(t, return_tensors="pt")).logits[0, 0]) for t in texts]


@pytest.mark.ray
def test_rewards_from_a_reward_worker_actor_equal_the_models_direct_scores(
    ray_session, reward_model
) -> None:
    import ray

    config = RewardConfig(model=RewardModelConfig(path=reward_model), batch_size=5)
    worker = ray.remote(RewardWorker).options(num_cpus=0.5).remote(config)
    parts = _parts(13)

    batch = ray.get(worker.score.remote(4, *parts))
    stats = ray.get(worker.stats.remote())
    ray.kill(worker)

    texts = [f"{s.item['prompt']} {s.response_text}" for s in batch.samples]
    assert batch.index == 4 and len(batch.samples) == 13
    assert [s.reward for s in batch.samples] == pytest.approx(
        _direct_scores(reward_model, texts), abs=1e-5
    )
    assert stats["call_sizes"] == [5, 5, 3]  # 13 samples in calls of at most batch_size


def test_the_template_decides_what_the_model_scores(reward_model) -> None:
    plain = RewardWorker(RewardConfig(model=RewardModelConfig(path=reward_model)))
    answer_only = RewardWorker(
        RewardConfig(model=RewardModelConfig(path=reward_model, template="{response}"))
    )
    parts = _parts(6, workers=1)

    with_prompt = plain.score(0, *parts)
    without = answer_only.score(0, *parts)

    texts = [s.response_text for s in without.samples]
    assert [s.reward for s in without.samples] == pytest.approx(
        _direct_scores(reward_model, texts), abs=1e-5
    )
    assert [s.reward for s in with_prompt.samples] != pytest.approx(
        [s.reward for s in without.samples], abs=1e-5
    )


def test_a_judge_behind_an_openai_protocol_server_scores_with_its_answers() -> None:
    from tideflow.streaming.llm.testing import OpenAIServer

    # The echo server answers the words of the prompt reversed: with the template
    # "{response}", the judge's answer starts with the response's last digit.
    with OpenAIServer(model_name="judge") as server:
        model = RewardModelConfig(
            kind="judge", path="judge", base_url=server.base_url, template="{response}"
        )
        worker = RewardWorker(RewardConfig(model=model, batch_size=4))
        batch = worker.score(1, *_parts(6))

    assert [s.reward for s in batch.samples] == [
        float(s.response_text.split()[-1]) for s in batch.samples
    ]
    assert server.requests == 6
    assert worker.stats()["call_sizes"] == [4, 2]


def test_a_rule_function_still_scores_when_given_alone() -> None:
    worker = RewardWorker("tideflow.rl.toy:reward")
    batch = worker.score(0, *_parts(4))

    from tideflow.rl.toy import reward

    assert [s.reward for s in batch.samples] == [
        reward(s.item, s.response_text) for s in batch.samples
    ]


def test_a_model_replaces_the_default_function(reward_model) -> None:
    config = RewardConfig(model=RewardModelConfig(path=reward_model))

    assert config.function is None
    assert config_from_dict(
        {"model": {"path": "m"}, "reward": {"model": {"path": reward_model}, "inline": True}}
    ).reward == RewardConfig(model=RewardModelConfig(path=reward_model), inline=True)


@pytest.mark.parametrize(
    ("reward", "expected"),
    [
        (
            {"function": "my_rewards:score", "model": {"path": "MODEL"}},
            "set either function or model, not both",
        ),
        ({"model": {"path": "/no/such/model"}}, "RewardModelConfig.path must be an existing"),
        ({"model": {"path": "MODEL", "template": "{prompt}"}}, "with a {response} field"),
        ({"model": {"path": "MODEL", "template": "{response} {}"}}, "of named fields"),
        ({"model": {"path": "MODEL", "template": "{response"}}, "is not a format string"),
        ({"model": {"path": "MODEL", "dtype": "int3"}}, "RewardModelConfig.dtype must be one of"),
        (
            {"model": {"path": "MODEL", "unparsed_score": float("nan")}},
            "RewardModelConfig.unparsed_score must be a finite number or None; got nan",
        ),
        (
            {"model": {"path": "MODEL", "base_url": "http://127.0.0.1:1/v1"}},
            "RewardModelConfig.base_url must be None for a classifier",
        ),
        ({"model": {"path": "MODEL", "kind": "ranker"}}, "kind must be one of"),
        ({"batch_size": 0}, "RewardConfig.batch_size must be >= 1; got 0"),
        ({"inline": "yes"}, "reward.inline must be true or false"),
        ({"function": None}, "RewardConfig.function must be 'module:function' when no model"),
    ],
)
def test_a_bad_reward_config_names_the_field(
    reward: dict[str, Any], expected: str, reward_model: str
) -> None:
    document = {"model": {"path": "m"}, "reward": _with_model(reward, reward_model)}
    with pytest.raises(ConfigError) as raised:
        config_from_dict(document)
    assert expected in str(raised.value)


def _with_model(reward: dict[str, Any], path: str) -> dict[str, Any]:
    if "model" in reward and reward["model"].get("path") == "MODEL":
        return {**reward, "model": {**reward["model"], "path": path}}
    return reward


def test_a_template_field_no_worker_fills_fails_in_the_driver(reward_model: str) -> None:
    model = {"path": reward_model, "template": "{response} {foo}"}
    config = config_from_dict({"model": {"path": "m"}, "reward": {"model": model}})
    items = DigitTask().items(3)

    with pytest.raises(ConfigError, match=r"has fields \['foo'\] that a reward worker does"):
        check_reward(config.reward, items)
    fields_items_have = RewardModelConfig(
        path=reward_model, template="{prompt} {answer} {response}"
    )
    check_reward(RewardConfig(model=fields_items_have), items)


def test_a_reward_model_folder_without_config_json_fails_in_the_driver(tmp_path: Path) -> None:
    config = RewardConfig(model=RewardModelConfig(path=str(tmp_path)))

    with pytest.raises(ConfigError, match=r"RewardModelConfig.path .* \(no config.json in it\)"):
        check_reward(config)


def test_a_label_the_classifier_lacks_fails_in_the_driver(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"id2label": {"0": "bad", "1": "good"}}')
    check_reward(RewardConfig(model=RewardModelConfig(path=str(tmp_path), label=1)))

    with pytest.raises(ConfigError) as raised:
        check_reward(RewardConfig(model=RewardModelConfig(path=str(tmp_path), label=5)))
    assert "RewardModelConfig.label must be in 0..1" in str(raised.value)
    assert "has 2 labels; got 5" in str(raised.value)


def test_a_judge_answer_without_a_number_scores_unparsed_score() -> None:
    from tideflow.streaming.llm.testing import OpenAIServer

    # The echo server answers the prompt's last words reversed, at most max_tokens (8) of
    # them: here, the eight letters.
    with OpenAIServer(model_name="judge") as server:
        model = RewardModelConfig(
            kind="judge",
            path="judge",
            base_url=server.base_url,
            template="{response} a b c d e f g h",
            unparsed_score=-1.0,
        )
        batch = RewardWorker(RewardConfig(model=model)).score(0, *_parts(2))

    assert [s.reward for s in batch.samples] == [-1.0, -1.0]


def test_a_function_that_cannot_be_imported_fails_in_the_driver(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot import 'no_such_module'"):
        check_reward(RewardConfig(function="no_such_module:score"))


def test_a_token_id_prompt_reaches_the_template_as_text(reward_model, tmp_path: Path) -> None:
    """A prompt given only as token ids: the rollout worker decodes it, and the reward
    model's ``{prompt}`` is that text, not an empty string."""
    import asyncio

    from tideflow.rl import ModelConfig, RolloutConfig
    from tideflow.rl._reward_model import RewardModelScorer
    from tideflow.rl._rollout import RolloutWorker
    from tideflow.rl.toy import build_digit_model

    item = DigitTask().items(1, seed=3)[0]
    policy = build_digit_model(tmp_path / "policy")
    worker = RolloutWorker(
        RolloutConfig(samples_per_prompt=2, max_tokens=2), ModelConfig(path=str(policy))
    )

    async def generate() -> list[Sample]:
        await worker.start()
        ids = worker._prompt_ids(item)
        done = await worker.generate(0, [{"id": 0, "prompt_token_ids": ids}], seed=0)
        return [Sample.from_dict(s) for s in done["samples"]]

    samples = asyncio.run(generate())
    scorer = RewardModelScorer(RewardConfig(model=RewardModelConfig(path=reward_model)))
    # the digit tokenizer decodes without spaces: "3 6 9 =" comes back as "369="
    decoded = item["prompt"].replace(" ", "")

    assert [s.prompt_text for s in samples] == [decoded] * 2
    assert scorer.texts(samples) == [f"{decoded} {s.response_text}" for s in samples]
