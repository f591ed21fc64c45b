"""Starting the roles: one that Ray cannot place is reported while the run waits for it."""

from __future__ import annotations

import pytest

from tideflow.rl import RLTrainer, TrainerConfig


def test_a_role_ray_cannot_place_is_reported_while_the_run_waits(
    ray_session, digit_model, tmp_path, monkeypatch
) -> None:
    """A trainer asking for a GPU the cluster lacks: the run waits (a cluster may add a GPU
    node), and says so, naming the role, what it needs and what the cluster has."""
    import asyncio

    from _rl_runs import PROMPTS, _config, _prompts_file
    from structlog.testing import capture_logs

    from tideflow.rl import trainer as trainer_module

    monkeypatch.setattr(trainer_module, "ROLES_WAIT_REPORT_S", 0.5)
    config = _config(
        digit_model,
        _prompts_file(tmp_path, PROMPTS * 2),
        total_steps=2,
        trainer=TrainerConfig(lr=1e-3, device="cuda", num_gpus=1),
    )

    async def run_briefly() -> None:
        run = asyncio.ensure_future(RLTrainer(config).run_async())
        await asyncio.sleep(4.0)
        assert not run.done()  # still waiting for a GPU
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await run

    with capture_logs() as logs:
        asyncio.run(run_briefly())
    waiting = [e for e in logs if e["event"] == "rl_roles_waiting"]
    assert waiting, [e["event"] for e in logs]
    assert "trainer" in waiting[-1]["roles"]  # (the rollout worker may still be loading)
    assert waiting[-1]["needs"]["trainer"]["GPU"] == 1
    assert waiting[-1]["cluster"].get("GPU", 0) == 0
