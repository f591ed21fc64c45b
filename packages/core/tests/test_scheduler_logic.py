"""The scheduler's decisions, queue, resource requests and futures, without Ray."""

from __future__ import annotations

import concurrent.futures

import pytest

from tideflow.core.errors import ConfigError
from tideflow.core.scheduler import (
    ActorLoad,
    ActorPool,
    ActorState,
    PoolFuture,
    ResourceRequest,
    WorkQueue,
    pick_actor,
    pick_actors_to_remove,
    retry_backoff,
)

READY, STARTING, DRAINING = ActorState.READY, ActorState.STARTING, ActorState.DRAINING


def load(name: str, in_flight: int, state: ActorState = READY, order: int = 0) -> ActorLoad:
    return ActorLoad(name=name, state=state, in_flight=in_flight, order=order)


# -- pick_actor ----------------------------------------------------------------------------


def test_pick_actor_takes_the_least_loaded() -> None:
    actors = [load("a", 2, order=1), load("b", 0, order=2), load("c", 1, order=3)]
    assert pick_actor(actors, max_in_flight=4) == "b"


def test_pick_actor_respects_the_in_flight_limit() -> None:
    actors = [load("a", 2, order=1), load("b", 2, order=2)]
    assert pick_actor(actors, max_in_flight=2) is None
    assert pick_actor(actors, max_in_flight=3) == "a"


def test_pick_actor_skips_starting_and_draining_actors() -> None:
    actors = [load("s", 0, STARTING, 1), load("d", 0, DRAINING, 2), load("r", 3, READY, 3)]
    assert pick_actor(actors, max_in_flight=4) == "r"
    assert pick_actor(actors[:2], max_in_flight=4) is None


def test_pick_actor_breaks_ties_by_age() -> None:
    actors = [load("new", 1, order=5), load("old", 1, order=2)]
    assert pick_actor(actors, max_in_flight=2) == "old"


# -- pick_actors_to_remove -----------------------------------------------------------------


def test_removal_prefers_starting_then_idle_then_least_loaded() -> None:
    actors = [
        load("busy", 3, order=1),
        load("idle", 0, order=2),
        load("light", 1, order=3),
        load("starting", 0, STARTING, 4),
        load("draining", 0, DRAINING, 5),
    ]
    assert pick_actors_to_remove(actors, 3) == ["starting", "idle", "light"]
    assert pick_actors_to_remove(actors, 10) == ["starting", "idle", "light", "busy"]
    assert pick_actors_to_remove(actors, 0) == []


def test_removal_among_equals_takes_the_newest() -> None:
    actors = [load("a", 0, order=1), load("b", 0, order=2)]
    assert pick_actors_to_remove(actors, 1) == ["b"]


# -- retry_backoff -------------------------------------------------------------------------


def test_backoff_doubles_and_is_capped() -> None:
    delays = [retry_backoff(r, base_s=0.5, max_s=3.0) for r in range(1, 6)]
    assert delays == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert retry_backoff(10_000, base_s=1.0, max_s=5.0) == 5.0
    assert retry_backoff(3, base_s=0.0, max_s=5.0) == 0.0
    with pytest.raises(ValueError, match="retry must be >= 1"):
        retry_backoff(0, base_s=1.0, max_s=5.0)


# -- WorkQueue -----------------------------------------------------------------------------


def test_queue_orders_by_priority_then_submission() -> None:
    q: WorkQueue[str] = WorkQueue()
    for seq, (item, priority) in enumerate([("a", 0), ("b", 5), ("c", 0), ("d", 5), ("e", -1)]):
        q.push(item, priority=priority, seq=seq)
    assert [q.pop() for _ in range(len(q))] == ["b", "d", "a", "c", "e"]


def test_delayed_items_wait_then_keep_their_place() -> None:
    q: WorkQueue[str] = WorkQueue()
    q.push("retry", priority=1, seq=1, not_before=10.0)
    q.push("later", priority=1, seq=2)
    assert (q.ready_count, len(q), q.next_due()) == (1, 2, 10.0)
    assert q.release_due(9.9) == 0
    assert q.release_due(10.0) == 1
    assert [q.pop(), q.pop()] == ["retry", "later"]


def test_queue_remove_and_drain() -> None:
    q: WorkQueue[str] = WorkQueue()
    q.push("x", priority=0, seq=1)
    q.push("y", priority=0, seq=2, not_before=5.0)
    q.push("z", priority=9, seq=3)
    assert q.remove(lambda item: item == "y") == ["y"]
    assert q.next_due() is None
    assert q.drain() == ["z", "x"]
    assert len(q) == 0


# -- ResourceRequest -----------------------------------------------------------------------


def test_resource_request_to_ray_options() -> None:
    request = ResourceRequest(
        num_cpus=2, num_gpus=0.5, accelerator_type="A100", memory=2**30, resources={"accel": 1}
    )
    assert request.to_ray_options() == {
        "num_cpus": 2.0,
        "num_gpus": 0.5,
        "accelerator_type": "A100",
        "memory": 2**30,
        "resources": {"accel": 1.0},
    }
    assert ResourceRequest().to_ray_options() == {"num_cpus": 1.0, "num_gpus": 0.0}
    assert hash(request) == hash(replace_resources(request))


def replace_resources(request: ResourceRequest) -> ResourceRequest:
    return ResourceRequest(
        num_cpus=request.num_cpus,
        num_gpus=request.num_gpus,
        accelerator_type=request.accelerator_type,
        memory=request.memory,
        resources=dict(request.resources),
    )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"num_cpus": -1}, "num_cpus must be a finite number >= 0"),
        ({"num_gpus": 1.5}, "above 1 must be whole"),
        ({"num_cpus": "2"}, "num_cpus must be a number"),
        ({"memory": 0}, "memory must be a positive int"),
        ({"accelerator_type": ""}, "accelerator_type must be a non-empty string"),
        ({"resources": {"GPU": 1}}, "'GPU' is reserved"),
        ({"resources": {"accel": -2}}, r"resources\['accel'\]"),
    ],
)
def test_resource_request_rejects_nonsense(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        ResourceRequest(**kwargs)  # type: ignore[arg-type]


def test_resource_request_is_immutable() -> None:
    request = ResourceRequest(resources={"accel": 1})
    with pytest.raises(TypeError):
        request.resources["accel"] = 2  # type: ignore[index]


# -- ActorPool configuration (checked before any actor starts) --------------------------------


class Plain:
    def run(self) -> None: ...


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"size": 0}, r"size must be within \[min_size, max_size\]"),
        ({"size": 3, "max_size": 2}, r"size must be within"),
        ({"min_size": 3, "max_size": 2, "size": 2}, "max_size must be >= min_size"),
        ({"max_in_flight_per_actor": 0}, "max_in_flight_per_actor must be >= 1"),
        ({"max_retries": -1}, "max_retries must be an int >= 0"),
        ({"sample_interval_s": 0}, "sample_interval_s must be > 0"),
        ({"actor_options": {"num_cpus": 2}}, "actor_options may not set"),
        ({"resources": {"num_cpus": 1}}, "resources must be a ResourceRequest"),
    ],
)
def test_pool_rejects_nonsense_configuration(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        ActorPool(Plain, **kwargs)  # type: ignore[arg-type]


def test_pool_rejects_what_is_not_a_class() -> None:
    with pytest.raises(ConfigError, match="actor_cls must be a class"):
        ActorPool(lambda: None)  # type: ignore[arg-type]


# -- PoolFuture ----------------------------------------------------------------------------


def test_future_gives_its_ref_and_works_with_concurrent_futures_wait() -> None:
    done, pending = (
        PoolFuture(pool="p", method="m", priority=0),
        PoolFuture(pool="p", method="m", priority=0),
    )
    assert done._dispatched() and done.running()
    done._succeed("ref-1")
    assert done.object_ref == "ref-1" and done.ref(timeout=0) == "ref-1"
    assert done.attempts == 1
    finished, not_finished = concurrent.futures.wait([done, pending], timeout=0)
    assert finished == {done} and not_finished == {pending}
    assert pending.object_ref is None


def test_future_cancel_only_while_queued() -> None:
    seen: list[PoolFuture] = []
    queued = PoolFuture(pool="p", method="m", priority=0)
    queued._on_cancel = seen.append
    assert queued.cancel() and seen == [queued]
    running = PoolFuture(pool="p", method="m", priority=0)
    running._dispatched()
    assert not running.cancel()
