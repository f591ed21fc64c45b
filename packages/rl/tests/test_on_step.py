"""``on_step`` callbacks: ``(metrics, trainer)``, or ``(metrics)`` for a one-parameter one."""

from __future__ import annotations

from typing import Any

from tideflow.rl.trainer import step_caller

METRICS, TRAINER = object(), object()


def test_a_one_parameter_callback_gets_the_metrics_only() -> None:
    seen: list[Any] = []

    step_caller(seen.append)(METRICS, TRAINER)  # type: ignore[arg-type]

    assert seen == [METRICS]


def test_a_two_parameter_callback_gets_the_metrics_and_the_trainer() -> None:
    seen: list[Any] = []

    def callback(metrics: Any, trainer: Any, extra: int = 0) -> None:
        seen.append((metrics, trainer))

    step_caller(callback)(METRICS, TRAINER)  # type: ignore[arg-type]

    assert seen == [(METRICS, TRAINER)]


def test_a_callback_whose_signature_cannot_be_read_gets_two_arguments() -> None:
    class Opaque:
        __signature__ = "not a signature"

        def __call__(self, *args: Any) -> None:
            self.args = args

    callback = Opaque()
    step_caller(callback)(METRICS, TRAINER)  # type: ignore[arg-type]

    assert callback.args == (METRICS, TRAINER)


def test_an_awaitable_a_one_parameter_callback_returns_reaches_the_trainer() -> None:
    import asyncio

    pause = step_caller(lambda metrics: asyncio.sleep(0))(METRICS, TRAINER)  # type: ignore[arg-type]

    assert pause is not None
    asyncio.run(pause)  # type: ignore[arg-type]
