"""The epoch coordinator, on a fake clock and a real store in a temporary directory."""

from __future__ import annotations

import random
import shutil
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import structlog

from tideflow.core.checkpoint import (
    CheckpointError,
    CheckpointId,
    CheckpointLocationError,
    CheckpointStore,
    EpochAbortedError,
    EpochCoordinator,
)
from tideflow.core.errors import ConfigError
from tideflow.core.testing import FakeClock

PARTICIPANTS = ("source", "stage", "sink")


class Journal:
    """Collects completion and abort callbacks in the order they ran."""

    def __init__(self) -> None:
        self.completed: list[tuple[int, dict[str, Any]]] = []
        self.aborted: list[tuple[int, str]] = []

    def complete(self, epoch: CheckpointId, states: Mapping[str, Any]) -> None:
        self.completed.append((int(epoch), dict(states)))

    def abort(self, epoch: CheckpointId, reason: str) -> None:
        self.aborted.append((int(epoch), reason))

    @property
    def completed_ids(self) -> list[int]:
        return [epoch for epoch, _ in self.completed]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(tmp_path: Path) -> CheckpointStore:
    return CheckpointStore(tmp_path / "ckpts", retain=None)


@pytest.fixture
def journal() -> Journal:
    return Journal()


def _coordinator(
    store: CheckpointStore | None, clock: FakeClock, journal: Journal, **kwargs: Any
) -> EpochCoordinator:
    coordinator = EpochCoordinator(store=store, clock=clock, **kwargs)
    for name in PARTICIPANTS:
        coordinator.register(name)
    coordinator.on_complete(journal.complete)
    coordinator.on_abort(journal.abort)
    return coordinator


@pytest.fixture
def coordinator(store: CheckpointStore, clock: FakeClock, journal: Journal) -> EpochCoordinator:
    return _coordinator(store, clock, journal, timeout_s=10)


def _ack_all(coordinator: EpochCoordinator, epoch: CheckpointId, **overrides: Any) -> None:
    for name in PARTICIPANTS:
        coordinator.ack(epoch, name, overrides.get(name, {"epoch": int(epoch), "by": name}))


def test_epoch_completes_once_every_participant_acked(
    coordinator: EpochCoordinator, store: CheckpointStore, journal: Journal
) -> None:
    epoch = coordinator.begin_epoch()
    coordinator.ack(epoch, "source", {"offset": 42})
    coordinator.ack(epoch, "stage", b"model-state")
    assert coordinator.last_completed is None and store.latest() is None

    coordinator.ack(epoch, "sink", {"txn": "t-1"})

    assert epoch == CheckpointId(1)
    assert coordinator.last_completed == epoch and coordinator.pending == ()
    assert store.load().states == {
        "source": {"offset": 42},
        "stage": b"model-state",
        "sink": {"txn": "t-1"},
    }
    assert journal.completed == [
        (1, {"sink": {"txn": "t-1"}, "source": {"offset": 42}, "stage": b"model-state"})
    ]


def test_out_of_order_acks_complete_epochs_in_order(
    coordinator: EpochCoordinator, store: CheckpointStore, journal: Journal
) -> None:
    first, second, third = (coordinator.begin_epoch() for _ in range(3))
    _ack_all(coordinator, third)
    _ack_all(coordinator, second)
    coordinator.ack(first, "sink", "s")
    coordinator.ack(first, "source", "s")
    assert journal.completed_ids == [] and coordinator.pending == (first, second, third)

    coordinator.ack(first, "stage", "s")

    assert journal.completed_ids == [1, 2, 3]
    assert store.ids() == [first, second, third]
    assert coordinator.last_completed == third


def test_later_epoch_waits_while_an_earlier_one_is_pending(
    coordinator: EpochCoordinator, store: CheckpointStore, journal: Journal
) -> None:
    first, second = coordinator.begin_epoch(), coordinator.begin_epoch()

    _ack_all(coordinator, second)

    assert coordinator.pending == (first, second)
    assert journal.completed_ids == [] and store.ids() == []


def test_abort_fails_the_epoch_and_keeps_the_last_complete_one(
    coordinator: EpochCoordinator, store: CheckpointStore, journal: Journal
) -> None:
    first = coordinator.begin_epoch()
    _ack_all(coordinator, first)
    second = coordinator.begin_epoch()
    coordinator.ack(second, "source", "s")

    assert coordinator.abort(second, "stage crashed") is True

    assert journal.aborted == [(2, "stage crashed")]
    assert coordinator.last_completed == first and store.ids() == [first]
    assert coordinator.pending == ()
    with pytest.raises(EpochAbortedError, match="epoch 2 was aborted: stage crashed"):
        coordinator.ack(second, "stage", "s")
    assert coordinator.abort(second, "again") is False
    assert journal.aborted == [(2, "stage crashed")]


def test_aborting_an_earlier_epoch_releases_later_complete_ones(
    coordinator: EpochCoordinator, journal: Journal
) -> None:
    first, second = coordinator.begin_epoch(), coordinator.begin_epoch()
    _ack_all(coordinator, second)

    coordinator.abort(first, "sink failed")

    assert journal.aborted == [(1, "sink failed")]
    assert journal.completed_ids == [2]
    assert coordinator.last_completed == second


def test_completed_epoch_cannot_be_aborted(coordinator: EpochCoordinator) -> None:
    epoch = coordinator.begin_epoch()
    _ack_all(coordinator, epoch)

    with pytest.raises(CheckpointError, match="epoch 1 is already completed"):
        coordinator.abort(epoch, "too late")

    assert coordinator.last_completed == epoch


def test_timeout_fails_only_epochs_older_than_the_limit(
    coordinator: EpochCoordinator, clock: FakeClock, journal: Journal
) -> None:
    old = coordinator.begin_epoch()
    clock.advance(6)
    young = coordinator.begin_epoch()
    clock.advance(4)
    assert coordinator.check_timeouts() == []  # exactly 10 s old is not older than 10 s

    clock.advance(1)

    assert coordinator.check_timeouts() == [old]
    assert journal.aborted == [(1, "timed out after 10 s")]
    assert coordinator.pending == (young,)
    _ack_all(coordinator, young)
    assert journal.completed_ids == [2]


def test_failed_save_fails_the_epoch_and_keeps_the_last_complete_one(
    coordinator: EpochCoordinator, store: CheckpointStore, journal: Journal
) -> None:
    first = coordinator.begin_epoch()
    _ack_all(coordinator, first)
    second = coordinator.begin_epoch()

    _ack_all(coordinator, second, sink=object())  # not encodable: the save fails

    assert len(journal.aborted) == 1
    epoch, reason = journal.aborted[0]
    assert epoch == 2 and "saving its state failed" in reason and "'sink'" in reason
    assert journal.completed_ids == [1]
    assert coordinator.last_completed == first and store.ids() == [first]


def test_a_save_that_fails_at_the_checkpoint_location_names_it_in_the_abort_reason(
    coordinator: EpochCoordinator, journal: Journal, tmp_path: Path
) -> None:
    _ack_all(coordinator, coordinator.begin_epoch())
    location = tmp_path / "ckpts"
    shutil.rmtree(location)
    location.write_text("a file where the checkpoints were")  # the location breaks mid-job

    _ack_all(coordinator, coordinator.begin_epoch())

    [(epoch, reason)] = journal.aborted
    assert epoch == 2 and reason.startswith("saving its state failed: cannot ")
    assert f"the checkpoint location {str(location)!r}" in reason
    assert "(expected a directory (or bucket prefix)" in reason
    assert journal.completed_ids == [1]


def test_restore_from_an_unusable_location_raises_a_location_error(
    clock: FakeClock, journal: Journal, tmp_path: Path
) -> None:
    location = tmp_path / "ckpts"
    location.write_text("a file, not a directory")
    coordinator = _coordinator(CheckpointStore(location), clock, journal)

    with pytest.raises(CheckpointLocationError, match="cannot list the checkpoint location"):
        coordinator.restore()


def test_restore_returns_the_latest_states_and_continues_after_them(
    store: CheckpointStore, clock: FakeClock, journal: Journal, tmp_path: Path
) -> None:
    before = _coordinator(store, clock, journal)
    for _ in range(3):
        _ack_all(before, before.begin_epoch())
    crashed = before.begin_epoch()
    before.ack(crashed, "source", "lost")
    leftover = tmp_path / "ckpts" / CheckpointId(4).dir_name  # as if killed mid-save
    leftover.mkdir()
    (leftover / "0000-source.json").write_text('"lost"')

    after = _coordinator(store, clock, Journal())
    checkpoint = after.restore()

    assert checkpoint is not None and checkpoint.checkpoint_id == CheckpointId(3)
    assert checkpoint.states["source"] == {"epoch": 3, "by": "source"}
    assert after.last_completed == CheckpointId(3)
    assert not leftover.exists()
    assert after.begin_epoch() == CheckpointId(4)


def test_restore_from_an_empty_store_returns_none(
    coordinator: EpochCoordinator,
) -> None:
    assert coordinator.restore() is None
    assert coordinator.begin_epoch() == CheckpointId(1)


def test_restore_refuses_while_epochs_are_pending(coordinator: EpochCoordinator) -> None:
    coordinator.begin_epoch()

    with pytest.raises(CheckpointError, match="no epoch in progress"):
        coordinator.restore()


def test_completion_callbacks_run_in_epoch_order_across_threads(
    coordinator: EpochCoordinator, journal: Journal
) -> None:
    epochs = [coordinator.begin_epoch() for _ in range(30)]
    errors: list[BaseException] = []

    def participant(name: str, seed: int) -> None:
        order = list(epochs)
        random.Random(seed).shuffle(order)
        try:
            for epoch in order:
                coordinator.ack(epoch, name, {"by": name})
        except BaseException as e:
            errors.append(e)

    threads = [
        threading.Thread(target=participant, args=(n, i)) for i, n in enumerate(PARTICIPANTS)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)

    assert errors == []
    assert journal.completed_ids == list(range(1, 31))
    assert coordinator.pending == ()


def test_a_failing_callback_is_logged_and_the_others_still_run(
    coordinator: EpochCoordinator, journal: Journal
) -> None:
    def broken(epoch: CheckpointId, states: Mapping[str, Any]) -> None:
        raise RuntimeError("commit failed")

    coordinator.on_complete(broken)
    coordinator.on_complete(lambda epoch, states: journal.complete(epoch, {}))

    with structlog.testing.capture_logs() as logs:
        _ack_all(coordinator, coordinator.begin_epoch())

    assert journal.completed_ids == [1, 1]
    assert any(
        e["event"] == "checkpoint.callback_failed" and "commit failed" in e["error"] for e in logs
    )


def test_events_carry_durations_from_the_clock(
    coordinator: EpochCoordinator, clock: FakeClock
) -> None:
    first = coordinator.begin_epoch()
    clock.advance(2.5)
    _ack_all(coordinator, first)
    second = coordinator.begin_epoch()
    clock.advance(1)
    coordinator.abort(second, "operator request")

    summary = [(e.checkpoint_id, e.status, e.duration_s, e.reason) for e in coordinator.events]

    assert summary == [
        (1, "started", None, None),
        (1, "completed", 2.5, None),
        (2, "started", None, None),
        (2, "aborted", 1.0, "operator request"),
    ]


def test_coordinator_without_store_still_reports_completions(
    clock: FakeClock, journal: Journal
) -> None:
    coordinator = _coordinator(None, clock, journal)

    _ack_all(coordinator, coordinator.begin_epoch())

    assert journal.completed_ids == [1]
    assert coordinator.restore() is None


def test_ack_from_unknown_participant_is_refused(coordinator: EpochCoordinator) -> None:
    epoch = coordinator.begin_epoch()

    with pytest.raises(CheckpointError, match="unknown participant 'ghost'"):
        coordinator.ack(epoch, "ghost", {})


def test_ack_for_an_epoch_never_started_is_refused(coordinator: EpochCoordinator) -> None:
    coordinator.begin_epoch()

    with pytest.raises(CheckpointError, match="epoch 5 was not started"):
        coordinator.ack(5, "source", {})


def test_ack_for_a_completed_epoch_is_refused(coordinator: EpochCoordinator) -> None:
    epoch = coordinator.begin_epoch()
    _ack_all(coordinator, epoch)

    with pytest.raises(CheckpointError, match="epoch 1 is already completed"):
        coordinator.ack(epoch, "source", {})


def test_second_ack_of_a_participant_is_refused(coordinator: EpochCoordinator) -> None:
    epoch = coordinator.begin_epoch()
    coordinator.ack(epoch, "source", {"offset": 1})

    with pytest.raises(CheckpointError, match="already acknowledged epoch 1"):
        coordinator.ack(epoch, "source", {"offset": 2})


def test_participant_registered_later_joins_from_the_next_epoch(
    coordinator: EpochCoordinator, journal: Journal
) -> None:
    running = coordinator.begin_epoch()
    coordinator.register("late")
    with pytest.raises(CheckpointError, match="registered after epoch 1 began"):
        coordinator.ack(running, "late", {})
    _ack_all(coordinator, running)
    following = coordinator.begin_epoch()

    _ack_all(coordinator, following)

    assert coordinator.pending == (following,)
    coordinator.ack(following, "late", {})
    assert journal.completed_ids == [1, 2]


def test_begin_epoch_needs_a_participant(store: CheckpointStore) -> None:
    with pytest.raises(CheckpointError, match="no participant is registered"):
        EpochCoordinator(store=store).begin_epoch()


@pytest.mark.parametrize("name", ["", "a/b", "source"])
def test_invalid_or_duplicate_participant_names_are_refused(
    coordinator: EpochCoordinator, name: str
) -> None:
    with pytest.raises(ConfigError, match="participant"):
        coordinator.register(name)


@pytest.mark.parametrize("timeout_s", [0, -1, float("inf")])
def test_invalid_timeout_is_refused(timeout_s: float) -> None:
    with pytest.raises(ConfigError, match="timeout_s"):
        EpochCoordinator(store=None, timeout_s=timeout_s)


def test_a_failed_commit_halts_later_checkpoints_when_asked(
    store: CheckpointStore, clock: FakeClock, journal: Journal
) -> None:
    """Epoch 2 is ready when epoch 1 completes and its commit fails: with
    ``halt_on_commit_error`` checkpoint 2 is never saved (a restore would skip epoch 1)."""
    coordinator = _coordinator(store, clock, journal, timeout_s=10, halt_on_commit_error=True)

    def commit(epoch: CheckpointId, states: Mapping[str, Any]) -> None:
        if int(epoch) == 1:
            raise RuntimeError("commit failed")

    coordinator.on_complete(commit)
    first, second = coordinator.begin_epoch(), coordinator.begin_epoch()
    _ack_all(coordinator, second)
    for name in PARTICIPANTS[:-1]:
        coordinator.ack(first, name, {})
    coordinator.ack(first, PARTICIPANTS[-1], {})  # completes 1, whose commit fails

    assert store.ids() == [first]
    assert journal.completed_ids == [1]
    assert coordinator.pending == (second,)


def test_a_completed_event_reports_the_save_apart_from_the_epoch_latency(
    store: CheckpointStore, clock: FakeClock, journal: Journal
) -> None:
    class SlowStore:
        """The real store; each save takes 0.75 s of the fake clock."""

        def save(self, *args: Any, **kwargs: Any) -> Any:
            clock.advance(0.75)
            return store.save(*args, **kwargs)

        def __getattr__(self, name: str) -> Any:
            return getattr(store, name)

    coordinator = _coordinator(SlowStore(), clock, journal)  # type: ignore[arg-type]
    epoch = coordinator.begin_epoch()
    clock.advance(2.0)
    _ack_all(coordinator, epoch)
    (done,) = [e for e in coordinator.events if e.status == "completed"]
    assert (done.duration_s, done.save_s) == (2.75, 0.75)
