"""The rollout pool's plain parts, without Ray: how a batch is cut into shards, how the pool
and the trainer read as autoscaler samples, and the scaling that follows (fake clock)."""

from __future__ import annotations

import pytest

from tideflow.core.autoscaler import DecisionCode, PoolScaler
from tideflow.core.testing import FakeClock
from tideflow.rl import (
    ConfigError,
    RolloutAutoscaleConfig,
    RolloutConfig,
    config_from_dict,
    config_to_dict,
)
from tideflow.rl._rollout_plan import (
    plan_shards,
    prompts_per_request,
    rollout_sample,
    scaling_config,
)

AUTO = RolloutAutoscaleConfig(min_workers=1, max_workers=4, window_s=2.0, debounce_s=3.0)


def _scaler(clock: FakeClock) -> PoolScaler:
    return PoolScaler("rollout", scaling_config(AUTO), clock=clock)


def _feed(
    scaler: PoolScaler, clock: FakeClock, seconds: float, size: int, *, busy: bool, **reading: float
) -> list[DecisionCode]:
    """Sample every 0.25 s for ``seconds`` (every worker busy, or none) and decide after each
    sample; the pool takes the size each decision asks for at once."""
    codes = []
    for _ in range(int(seconds / 0.25)):
        clock.advance(0.25)
        scaler.observe(
            rollout_sample(
                clock.now(),
                total=size,
                starting=0,
                busy=size if busy else 0,
                queued=int(reading["queued"]),
                trainer_wait=reading["trainer_wait"],
                wait_share=AUTO.trainer_wait_share,
            )
        )
        decision = scaler.decide(size)
        codes.append(decision.code)
        size = decision.target
    return codes


def test_a_batch_is_cut_into_shards_that_keep_their_positions_and_the_batch_seed() -> None:
    items = [{"id": i} for i in range(7)]
    shards = plan_shards(5, items, per_request=3, seed=11)
    assert [s.positions for s in shards] == [(0, 1, 2), (3, 4, 5), (6,)]
    assert [[item["id"] for item in s.items] for s in shards] == [[0, 1, 2], [3, 4, 5], [6]]
    assert shards[0].seed == 11  # one shard per batch draws as one whole generate call
    assert len({s.seed for s in shards}) == 3
    assert plan_shards(5, items, per_request=3, seed=11) == shards  # regenerated alike


def test_by_default_a_batch_is_split_over_the_largest_pool() -> None:
    assert prompts_per_request(RolloutConfig(), 16) == 16
    assert prompts_per_request(RolloutConfig(num_workers=3), 16) == 6
    assert prompts_per_request(RolloutConfig(autoscale=AUTO), 16) == 4
    assert prompts_per_request(RolloutConfig(autoscale=AUTO, prompts_per_request=1), 16) == 1


def test_queued_shards_are_backlog_only_while_the_trainer_waits_for_samples() -> None:
    reading = {"total": 2, "starting": 0, "busy": 2, "queued": 5}
    busy_trainer = rollout_sample(0.0, **reading, trainer_wait=0.1, wait_share=0.25)
    waiting_trainer = rollout_sample(0.0, **reading, trainer_wait=0.6, wait_share=0.25)
    assert busy_trainer.queued == 0 and busy_trainer.utilization == 1.0
    assert waiting_trainer.queued == 6  # the shards, and the batch the trainer waits for


def test_the_pool_grows_while_the_trainer_waits_and_every_worker_is_busy() -> None:
    clock = FakeClock()
    scaler = _scaler(clock)
    codes = _feed(scaler, clock, 2.5, 1, busy=True, queued=3, trainer_wait=0.8)
    assert codes.count(DecisionCode.SCALE_UP) == 1
    (event,) = scaler.events
    assert (event.from_size, event.to_size) == (1, 2)  # at most twice the pool at once


def test_the_pool_holds_while_the_trainer_keeps_up() -> None:
    clock = FakeClock()
    scaler = _scaler(clock)
    codes = _feed(scaler, clock, 6.0, 2, busy=True, queued=3, trainer_wait=0.1)
    assert scaler.events == []
    assert codes[-1] == DecisionCode.NO_BACKLOG


def test_the_pool_shrinks_while_the_buffer_stays_full_once_per_debounce_window() -> None:
    clock = FakeClock()
    scaler = _scaler(clock)
    _feed(scaler, clock, 2.5, 4, busy=False, queued=0, trainer_wait=0.0)
    (down,) = scaler.events
    assert (down.from_size, down.to_size) == (4, 1)  # no worker was busy: to the minimum
    # At once the trainer starves: the pool may grow again only after the debounce window.
    codes = _feed(scaler, clock, 4.0, 1, busy=True, queued=4, trainer_wait=1.0)
    assert DecisionCode.DEBOUNCED in codes
    down, up = scaler.events
    assert (up.from_size, up.to_size) == (1, 2)
    assert up.time - down.time >= AUTO.debounce_s


@pytest.mark.parametrize(
    ("rollout", "expected"),
    [
        (
            {"num_workers": 3, "autoscale": {"max_workers": 2}},
            "RolloutConfig.num_workers must be within autoscale's [min_workers, max_workers] "
            "= [1, 2]",
        ),
        (
            {"autoscale": {"min_workers": 3, "max_workers": 2}},
            "RolloutConfig.autoscale.max_workers must be >= min_workers (3); got 2",
        ),
        ({"prompts_per_request": 0}, "RolloutConfig.prompts_per_request must be >= 1"),
        ({"segment_tokens": 0}, "RolloutConfig.segment_tokens must be >= 1; got 0"),
        (
            {"autoscale": {"window_s": 1.0, "sample_interval_s": 2.0}},
            "RolloutConfig.autoscale.sample_interval_s must be > 0 and < window_s",
        ),
        ({"autoscale": {"workers": 2}}, "rollout.autoscale: unknown field(s) ['workers']"),
    ],
)
def test_a_bad_rollout_pool_setting_is_named_with_what_was_expected(
    rollout: dict, expected: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        config_from_dict({"model": {"path": "m"}, "rollout": rollout})
    assert expected in str(raised.value)


def test_an_elastic_partial_rollout_config_reads_back_from_a_mapping() -> None:
    document = {
        "model": {"path": "m"},
        "rollout": {
            "num_workers": 2,
            "autoscale": {"min_workers": 1, "max_workers": 3, "debounce_s": 2},
            "partial_rollout": True,
            "segment_tokens": 2,
        },
    }
    config = config_from_dict(document)
    assert config.rollout.autoscale == RolloutAutoscaleConfig(max_workers=3, debounce_s=2.0)
    assert config_from_dict(config_to_dict(config)) == config
