"""ActorPool against a real local Ray: retries after deaths, priorities, resizing, resources."""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from tideflow.core.errors import ConfigError, PoolClosedError, SchedulerError, WorkFailedError
from tideflow.core.observability import ActorEvent, RetryEvent, ScaleEvent
from tideflow.core.scheduler import ActorPool, ResourceRequest

pytestmark = pytest.mark.ray

SMALL = ResourceRequest(num_cpus=0.25)
FAST_RETRY = {"retry_backoff_s": 0.05, "retry_backoff_max_s": 0.2}


def eventually(check: Callable[[], bool], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s")
        time.sleep(0.02)


@pytest.fixture(scope="module")
def worker_cls(ray_session: None) -> type:
    import _actors  # importable here and on the workers once ray_session ran

    return _actors.Worker


@pytest.fixture(scope="module")
def single(worker_cls: type) -> Iterator[ActorPool]:
    """One actor, one piece of work at a time; tests leave it idle."""
    with ActorPool(worker_cls, size=1, resources=SMALL, name="single") as pool:
        assert pool.wait_ready(timeout=30)
        yield pool


def test_killed_actor_work_is_retried_on_a_replacement(worker_cls: type, tmp_path: Path) -> None:
    import ray

    marker = tmp_path / "first-attempt-started"
    with ActorPool(worker_cls, size=1, resources=SMALL, name="kill", **FAST_RETRY) as pool:
        future = pool.submit("block_first_time", str(marker), 21)
        eventually(marker.exists)  # the first attempt is running (and will hang)
        (victim,) = pool.actors.values()
        ray.kill(victim)

        assert future.result(timeout=30) == 42
        assert ray.get(future.object_ref) == 42
        assert future.attempts == 2
        stats = pool.stats
        assert (stats.retries, stats.deaths, stats.completed, stats.failed) == (1, 1, 1, 0)
        statuses = [e.status for e in pool.events if isinstance(e, ActorEvent)]
        assert "died" in statuses and "replaced" in statuses
        (retry,) = [e for e in pool.events if isinstance(e, RetryEvent)]
        assert retry.attempt == 2 and "ActorDiedError" in retry.error


def test_exhausted_retries_fail_with_the_original_error(worker_cls: type) -> None:
    import ray

    with ActorPool(
        worker_cls, size=1, resources=SMALL, name="crash", max_retries=1, **FAST_RETRY
    ) as pool:
        future = pool.submit("crash")
        with pytest.raises(WorkFailedError, match="failed after 2 attempt") as caught:
            future.result(timeout=60)
        assert "ActorDiedError" in str(caught.value)
        assert isinstance(caught.value.__cause__, ray.exceptions.ActorDiedError)
        assert caught.value.attempts == 2
        assert (pool.stats.deaths, pool.stats.retries, pool.stats.failed) == (2, 1, 1)


def test_actors_that_cannot_start_break_the_pool_with_the_original_error(
    ray_session: None,
) -> None:
    import _actors

    with ActorPool(
        _actors.BrokenInit, size=1, resources=SMALL, max_start_failures=1, **FAST_RETRY
    ) as pool:
        future = pool.submit("run")
        with pytest.raises(WorkFailedError, match="no actor could start") as caught:
            future.result(timeout=60)
        assert "weights file missing" in str(caught.value.__cause__)
        with pytest.raises(SchedulerError, match="broken"):
            pool.submit("run")
        assert pool.stats.deaths == 2


def test_user_exception_fails_at_once_with_its_type(single: ActorPool) -> None:
    before = single.stats
    names = set(single.actors)
    future = single.submit("fail", "no such row")
    with pytest.raises(KeyError, match="no such row"):
        future.result(timeout=30)
    assert isinstance(future.exception(), KeyError)
    assert future.attempts == 1
    after = single.stats
    assert (after.retries, after.deaths) == (before.retries, before.deaths)
    assert after.failed == before.failed + 1
    assert set(single.actors) == names  # the actor is still the same


def test_higher_priority_runs_first(single: ActorPool, tmp_path: Path) -> None:
    release = tmp_path / "release"
    blocker = single.submit("wait_for", str(release))
    eventually(lambda: single.utilization().in_flight == 1)
    low = [single.submit("record", f"low{i}") for i in range(2)]
    high = single.submit("record", "high", priority=10)
    mid = single.submit("record", "mid", priority=5)
    release.touch()

    assert blocker.result(timeout=30) == "released"
    ran = sorted((f.result(timeout=30) for f in [*low, high, mid]), key=lambda r: r[1])
    assert [label for label, _ in ran] == ["high", "mid", "low0", "low1"]


def test_utilization_counts_busy_actors_and_backlog(single: ActorPool, tmp_path: Path) -> None:
    release = tmp_path / "release"
    blocker = single.submit("wait_for", str(release))
    eventually(lambda: single.utilization().in_flight == 1)
    queued = single.submit("add", 1)
    sample = single.utilization()
    assert (sample.active, sample.total, sample.in_flight, sample.queued) == (1, 1, 1, 1)
    assert sample.utilization == 1.0
    release.touch()

    concurrent.futures.wait([blocker, queued], timeout=30)
    idle = single.utilization()
    assert (idle.active, idle.total, idle.in_flight, idle.queued) == (0, 1, 0, 0)


def test_a_backlog_noted_from_outside_counts_as_queued(single: ActorPool) -> None:
    single.note_backlog(3)
    assert single.utilization().queued == 3  # nothing submitted: all of it waits outside
    single.note_backlog(0)
    assert single.utilization().queued == 0
    for bad in (-1, 1.5, True, "2"):
        with pytest.raises(ConfigError, match="note_backlog needs an int >= 0"):
            single.note_backlog(bad)  # type: ignore[arg-type]


def test_object_refs_and_keyword_arguments_reach_the_method(single: ActorPool) -> None:
    import ray

    future = single.submit("add", ray.put(2), fn=ray.put(3))  # `fn` clashes with __ray_call__
    assert future.result(timeout=30) == 5


def test_cancel_removes_queued_work(single: ActorPool, tmp_path: Path) -> None:
    release = tmp_path / "release"
    blocker = single.submit("wait_for", str(release))
    eventually(lambda: single.utilization().in_flight == 1)
    queued = single.submit("add", 1)
    cancelled_before = single.stats.cancelled

    assert queued.cancel()
    done, _ = concurrent.futures.wait([queued], timeout=0)
    assert done == {queued} and queued.cancelled()
    assert not blocker.cancel()  # already running
    assert (single.stats.cancelled, single.stats.queued) == (cancelled_before + 1, 0)
    release.touch()
    assert blocker.result(timeout=30) == "released"


def test_shutdown_can_fail_queued_work_and_refuses_more(worker_cls: type, tmp_path: Path) -> None:
    release = tmp_path / "release"
    pool = ActorPool(worker_cls, size=1, resources=SMALL, name="closing")
    blocker = pool.submit("wait_for", str(release))
    eventually(lambda: pool.utilization().in_flight == 1)
    queued = [pool.submit("add", i) for i in range(2)]

    pool.shutdown(wait=False, cancel_pending=True)
    for future in queued:
        with pytest.raises(PoolClosedError):
            future.result(timeout=5)
    with pytest.raises(PoolClosedError):
        pool.submit("add", 1)
    release.touch()
    assert blocker.result(timeout=60) == "released"  # dispatched work still finishes
    pool.shutdown()


def test_resize_down_while_busy_loses_nothing(worker_cls: type) -> None:
    import ray

    with ActorPool(worker_cls, size=3, resources=SMALL, name="shrink") as pool:
        assert pool.wait_ready(timeout=60)
        handles = dict(pool.actors)
        futures = [pool.submit("slow", i, 0.2) for i in range(9)]
        eventually(lambda: pool.utilization().active == 3)

        assert pool.resize(1) == 1
        assert pool.size == 1
        assert sorted(f.result(timeout=60) for f in futures) == [2 * i for i in range(9)]

        eventually(lambda: pool.stats.draining == 0)
        (kept,) = pool.actors
        for name, handle in handles.items():
            if name != kept:
                with pytest.raises(ray.exceptions.RayActorError):
                    ray.get(handle.__ray_ready__.remote(), timeout=30)
        removed = [e for e in pool.events if isinstance(e, ActorEvent) and e.status == "removed"]
        assert len(removed) == 2
        assert pool.stats.completed == 9 and pool.stats.failed == 0


def test_resize_up_spreads_work(worker_cls: type) -> None:
    with ActorPool(worker_cls, size=1, max_size=3, resources=SMALL, name="grow") as pool:
        assert pool.resize(5) == 3  # clamped to max_size
        assert pool.size == 3  # starting actors count at once
        assert pool.wait_ready(timeout=60)
        pids = {f.result(timeout=30) for f in [pool.submit("whoami", 0.3) for _ in range(6)]}
        assert len(pids) == 3
        (scale,) = [e for e in pool.events if isinstance(e, ScaleEvent)]
        assert (scale.from_size, scale.to_size) == (1, 3) and scale.duration_s is not None


def test_custom_resource_limits_how_many_actors_start(worker_cls: type) -> None:
    accel = ResourceRequest(num_cpus=0, resources={"accel": 1})  # the session has accel=2
    with ActorPool(worker_cls, size=3, resources=accel, name="accel") as pool:
        assert pool.wait_ready(2, timeout=60)
        time.sleep(0.5)
        stats = pool.stats
        assert (stats.ready, stats.starting) == (2, 1)  # the third waits for resources
        assert pool.utilization().total == 3
        assert pool.resize(2) == 2  # a scale-down removes the pending actor first
        assert (pool.stats.ready, pool.stats.starting) == (2, 0)
        assert pool.submit("add", 1, fn=1).result(timeout=30) == 2


@dataclass(frozen=True, kw_only=True)
class _Decision:
    target: int
    reason: str
    event: ScaleEvent | None

    @property
    def scale(self) -> bool:
        return self.event is not None


class ScriptedScaler:
    """Asks once for ``target`` actors, then holds; records what the pool told it."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.samples: list[Any] = []
        self.completed: list[ScaleEvent] = []
        self.asked = False

    def observe(self, sample: Any) -> None:
        self.samples.append(sample)

    def decide(self, current_size: int) -> _Decision:
        if self.asked or current_size == self.target:
            return _Decision(target=current_size, reason="hold", event=None)
        self.asked = True
        event = ScaleEvent(
            time=time.monotonic(),
            pool="scripted",
            from_size=current_size,
            to_size=self.target,
            reason="scripted",
        )
        return _Decision(target=self.target, reason="scripted", event=event)

    def resize_completed(self, event: ScaleEvent, *, at: float | None = None) -> ScaleEvent:
        done = replace(event, duration_s=(at or time.monotonic()) - event.time)
        self.completed.append(done)
        return done


def test_scaler_hook_resizes_the_pool(worker_cls: type) -> None:
    scaler = ScriptedScaler(target=2)
    with ActorPool(
        worker_cls, size=1, resources=SMALL, name="scripted", scaler=scaler, sample_interval_s=0.05
    ) as pool:
        eventually(lambda: bool(scaler.completed), timeout_s=60)
        assert pool.size == 2 and pool.stats.ready == 2
        assert scaler.samples and all(s.total >= 1 for s in scaler.samples)
        (done,) = scaler.completed
        assert (done.from_size, done.to_size) == (1, 2) and done.duration_s is not None
        assert done in pool.events


def test_pool_scaler_scales_up_on_backlog(worker_cls: type) -> None:
    from tideflow.core.autoscaler import PoolScaler, ScalingConfig

    # the long debounce keeps the test about scaling up: with 1 busy + 1 starting actor the
    # utilization is 0.5, which this policy's default down threshold (0.5) would act on
    config = ScalingConfig(min_size=1, max_size=2, window_s=0.3, debounce_s=30)
    scaler = PoolScaler("auto", config)
    with ActorPool(
        worker_cls,
        size=1,
        max_size=2,
        resources=SMALL,
        name="auto",
        scaler=scaler,
        sample_interval_s=0.05,
    ) as pool:
        futures = [pool.submit("slow", i, 0.25) for i in range(10)]
        eventually(lambda: any(e.duration_s is not None for e in scaler.events), timeout_s=60)
        assert pool.size == 2
        assert scaler.events[0].direction == "up"
        assert sorted(f.result(timeout=60) for f in futures) == [2 * i for i in range(10)]


@pytest.mark.ray
def test_with_meta_gives_the_metadata_without_fetching_the_value(ray_session):
    import ray
    from _actors import Splitter

    with ActorPool(Splitter, size=1, resources=ResourceRequest(num_cpus=0.1)) as pool:
        future = pool.submit("split", 1000)
        future.ref(timeout=60)
        assert future.meta == {"count": 1000}
        assert ray.get(future.object_ref) == list(range(1000))
        assert future.result() == list(range(1000))


def test_isolated_work_runs_alone_on_its_actor(worker_cls: type, tmp_path: Path) -> None:
    """Two calls may share an actor (max_concurrency=2); an isolated one never does."""
    release = tmp_path / "release"
    with ActorPool(
        worker_cls,
        size=1,
        resources=SMALL,
        name="isolated",
        max_in_flight_per_actor=2,
        actor_options={"max_concurrency": 2},
    ) as pool:
        assert pool.wait_ready(timeout=30)
        # Control: a normal call runs next to a blocked one.
        blocked = pool.submit("wait_for", str(release))
        beside = pool.submit("add", 1, fn=1)
        assert beside.result(timeout=30) == 2
        assert not blocked.done()
        release.touch()
        assert blocked.result(timeout=30) == "released"

        release.unlink()
        alone = pool.submit("wait_for", str(release), isolated=True)
        after = pool.submit("add", 2, fn=2)
        time.sleep(1.0)
        assert not after.done()  # held back while the isolated call runs
        assert pool.stats.in_flight == 1
        release.touch()
        assert alone.result(timeout=30) == "released"
        assert after.result(timeout=30) == 4


def test_work_retried_after_an_actor_death_runs_alone(worker_cls: type, tmp_path: Path) -> None:
    marker = tmp_path / "first-attempt-started"
    release = tmp_path / "release"
    with ActorPool(
        worker_cls,
        size=1,
        resources=SMALL,
        name="retry-alone",
        max_in_flight_per_actor=2,
        actor_options={"max_concurrency": 2},
        **FAST_RETRY,
    ) as pool:
        import ray

        future = pool.submit("block_first_time", str(marker), 21)
        eventually(marker.exists)
        (victim,) = pool.actors.values()
        ray.kill(victim)
        eventually(lambda: future.attempts == 2 or future.done())
        # While the retry is pending or running, a new call waits for it.
        other = pool.submit("wait_for", str(release))
        assert future.result(timeout=30) == 42
        release.touch()
        assert other.result(timeout=30) == "released"


def test_retiring_a_node_replaces_its_actors_after_their_work_and_sends_them_no_more(
    worker_cls: type,
) -> None:
    import ray

    node = ray.get_runtime_context().get_node_id()  # the one node of this Ray
    with ActorPool(worker_cls, size=2, resources=SMALL, name="retire") as pool:
        assert pool.wait_ready(2, timeout=60)
        before = set(pool.actors)
        busy = pool.submit("slow", 7, 0.5)
        time.sleep(0.1)  # the call is on its actor

        assert pool.retire_nodes({node}) == 2
        assert busy.result(timeout=30) == 14  # work in flight finishes on the retired actor
        eventually(lambda: len(pool.actors) == 2 and not set(pool.actors) & before, 60)
        # Ray placed the replacements on that node anyway (it is not draining): they stay
        # and take work, instead of being retired and replaced for ever.
        assert pool.submit("add", 1, 2).result(timeout=30) == 3
        assert pool.retire_nodes({node}) == 0  # already retired
        assert len(pool.actors) == 2
        statuses = [e.status for e in pool.events if isinstance(e, ActorEvent)]
        assert statuses.count("replaced") == 2
