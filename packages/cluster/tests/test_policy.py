"""The multi-pool policy, one rule per test: pure, with a fake clock, no Ray, no Kubernetes."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from tideflow.cluster.policy import (
    ClusterView,
    GroupChange,
    HoldCode,
    MultiPoolPolicy,
    PolicyConfig,
    ScaleCause,
    WorkerNode,
)
from tideflow.core.autoscaler import NodePool
from tideflow.core.errors import ConfigError
from tideflow.core.testing import FakeClock

# Fill order by priority: tidal (6 CPU), online (8 CPU), offline (16 CPU). By fit, a queue of
# 4-CPU bundles would fill the 16-CPU offline nodes first (Ray's v2 ranks fit first).
TIDAL = NodePool(name="tidal", node_shape={"CPU": 6}, max_nodes=2, priority=20, tidal=True)
ONLINE = NodePool(name="online", node_shape={"CPU": 8}, max_nodes=3, priority=10, min_nodes=1)
OFFLINE = NodePool(name="offline", node_shape={"CPU": 16}, max_nodes=4, priority=5)
POOLS = (TIDAL, ONLINE, OFFLINE)
FOUR = {"CPU": 4.0}


def _policy(clock: FakeClock, **config: float) -> MultiPoolPolicy:
    settings = {"idle_timeout_s": 60.0, "window_s": 120.0, "reclaim_hold_s": 300.0, **config}
    return MultiPoolPolicy(POOLS, config=PolicyConfig(**settings), clock=clock)


def _busy(name: str, group: str, cpu: float) -> WorkerNode:
    return WorkerNode(name=name, group=group, used={"CPU": cpu})


def _idle(name: str, group: str, idle_s: float = 100.0) -> WorkerNode:
    return WorkerNode(name=name, group=group, idle_s=idle_s)


def _view(
    *nodes: WorkerNode, demand: int = 0, starting: Mapping[str, int] | None = None
) -> ClusterView:
    return ClusterView(nodes=nodes, starting=starting or {}, demand=(FOUR,) * demand)


def _by_group(changes: list[GroupChange]) -> dict[str, GroupChange]:
    return {c.group: c for c in changes}


# -- configuration ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "allowed"),
    [
        ("idle_timeout_s", -1.0, ">= 0"),
        ("idle_timeout_s", float("nan"), ">= 0"),
        ("window_s", 0.0, "> 0"),
        ("window_s", "2m", "> 0"),
        ("reclaim_hold_s", float("inf"), ">= 0"),
        ("release_dedicated", 1, "a bool"),
    ],
)
def test_config_rejects_a_bad_value_and_says_what_is_allowed(field, value, allowed):
    with pytest.raises(ConfigError, match=rf"PolicyConfig\.{field} must be .*{allowed}"):
        PolicyConfig(**{field: value})


def test_a_view_naming_an_unknown_group_is_refused():
    policy = _policy(FakeClock())
    with pytest.raises(ConfigError, match=r"unknown worker groups \['gpu'\].*known"):
        policy.decide(_view(_busy("g-1", "gpu", 1.0)))


# -- placement and scale-up -------------------------------------------------------------------


def test_demand_goes_to_free_room_on_running_pods_first():
    policy = _policy(FakeClock())
    assert policy.decide(_view(_busy("on-1", "online", 4.0), demand=1)) == []


def test_scale_up_fills_the_highest_priority_pool_first_not_the_best_fit():
    policy = _policy(FakeClock())
    changes = _by_group(policy.decide(_view(_busy("on-1", "online", 8.0), demand=2)))
    assert set(changes) == {"tidal"}
    assert changes["tidal"].replicas == 2
    assert "fill order #1" in changes["tidal"].reason


def test_scale_up_takes_the_next_pool_once_a_pool_is_at_max_nodes():
    policy = _policy(FakeClock())
    changes = _by_group(policy.decide(_view(_busy("on-1", "online", 8.0), demand=6)))
    assert {g: c.launched for g, c in changes.items()} == {"tidal": 2, "online": 2}


def test_pods_still_starting_take_demand_before_new_pods():
    policy = _policy(FakeClock())
    view = _view(_busy("on-1", "online", 8.0), demand=2, starting={"tidal": 2})
    assert policy.decide(view) == []


def test_a_pool_below_min_nodes_is_raised_to_it():
    policy = _policy(FakeClock())
    (change,) = policy.decide(_view())
    assert (change.group, change.replicas) == ("online", 1)
    assert policy.events[0].cause is ScaleCause.MIN_NODES


def test_demand_no_pool_can_take_is_reported_as_no_room():
    policy = _policy(FakeClock())
    policy.decide(ClusterView(nodes=(_busy("on-1", "online", 8.0),), demand=({"GPU": 1},)))
    assert [h.code for h in policy.holds] == [HoldCode.NO_ROOM]


# -- scale-down -------------------------------------------------------------------------------


def test_scale_down_releases_idle_tidal_pods_and_keeps_idle_dedicated_ones():
    policy = _policy(FakeClock())
    view = _view(
        _busy("on-1", "online", 4.0),
        _idle("on-2", "online"),
        _idle("t-1", "tidal"),
        _busy("t-2", "tidal", 2.0),
    )
    (change,) = policy.decide(view)
    assert (change.group, change.workers_to_delete, change.replicas) == ("tidal", ("t-1",), 1)
    assert any(h.group == "online" and h.code is HoldCode.TIDAL_FIRST for h in policy.holds)


def test_idle_dedicated_pods_go_on_the_tick_the_last_tidal_pods_go():
    policy = _policy(FakeClock())
    view = _view(_busy("on-1", "online", 4.0), _idle("on-2", "online"), _idle("t-1", "tidal"))
    changes = _by_group(policy.decide(view))
    assert {g: c.workers_to_delete for g, c in changes.items()} == {
        "tidal": ("t-1",),
        "online": ("on-2",),
    }


def test_an_idle_dedicated_pod_goes_once_no_tidal_pod_is_up():
    policy = _policy(FakeClock())
    (change,) = policy.decide(_view(_busy("on-1", "online", 4.0), _idle("on-2", "online")))
    assert (change.group, change.workers_to_delete, change.replicas) == ("online", ("on-2",), 1)


def test_a_busy_tidal_pod_keeps_idle_dedicated_pods():
    policy = _policy(FakeClock())
    view = _view(_busy("t-1", "tidal", 4.0), _idle("on-1", "online"), _idle("on-2", "online"))
    assert policy.decide(view) == []


def test_the_pod_idle_longest_goes_first():
    policy = _policy(FakeClock())
    view = _view(_idle("on-1", "online", 70.0), _idle("on-2", "online", 300.0))
    (change,) = policy.decide(view)
    assert change.workers_to_delete == ("on-2",)  # min_nodes 1 keeps the other


def test_a_pod_idle_less_than_idle_timeout_is_kept():
    policy = _policy(FakeClock())
    view = _view(_busy("on-1", "online", 4.0), _idle("t-1", "tidal", idle_s=59.0))
    assert policy.decide(view) == []


def test_an_idle_pod_that_pending_demand_lands_on_is_kept():
    policy = _policy(FakeClock())
    view = _view(_busy("on-1", "online", 8.0), _idle("t-1", "tidal"), demand=1)
    assert policy.decide(view) == []


def test_workers_to_delete_names_only_pods_of_its_group():
    policy = _policy(FakeClock())
    view = _view(
        _busy("on-1", "online", 8.0),
        _idle("t-1", "tidal"),
        _idle("t-2", "tidal", 200.0),
        _idle("off-1", "offline"),
    )
    changes = _by_group(policy.decide(view))
    assert {g: c.workers_to_delete for g, c in changes.items()} == {
        "tidal": ("t-2", "t-1"),
        "offline": ("off-1",),
    }


# -- reclaim ----------------------------------------------------------------------------------


def test_a_reclaimed_pod_is_named_and_its_work_planned_in_the_next_pool_on_the_same_tick():
    policy = _policy(FakeClock())
    reclaimed = WorkerNode(name="t-1", group="tidal", used={"CPU": 4.0}, reclaim_notice=True)
    changes = _by_group(policy.decide(_view(_busy("on-1", "online", 8.0), reclaimed)))
    assert changes["tidal"].workers_to_delete == ("t-1",)
    assert changes["tidal"].replicas == 0
    assert changes["online"].launched == 1


def test_a_reclaimed_pool_takes_no_new_pod_until_the_hold_ends():
    clock = FakeClock()
    policy = _policy(clock)
    reclaimed = WorkerNode(name="t-1", group="tidal", reclaim_notice=True)
    policy.decide(_view(_busy("on-1", "online", 8.0), reclaimed))
    clock.advance(299.0)
    held = _by_group(policy.decide(_view(_busy("on-1", "online", 8.0), demand=1)))
    clock.advance(1.0)
    freed = _by_group(policy.decide(_view(_busy("on-1", "online", 8.0), demand=1)))
    assert set(held) == {"online"}
    assert set(freed) == {"tidal"}


# -- pending deletes --------------------------------------------------------------------------


def test_a_pending_delete_in_one_pool_does_not_delay_launches_in_another():
    policy = _policy(FakeClock())
    deleting = WorkerNode(name="off-1", group="offline", idle_s=500.0, deleting=True)
    view = _view(_busy("on-1", "online", 8.0), deleting, demand=1)
    assert _by_group(policy.preview(view)) == _by_group(
        policy.preview(_view(_busy("on-1", "online", 8.0), demand=1))
    )
    assert _by_group(policy.decide(view))["tidal"].launched == 1


def test_a_pending_delete_counts_as_gone_in_its_own_group():
    policy = _policy(FakeClock())
    deleting = WorkerNode(name="t-1", group="tidal", deleting=True)
    changes = _by_group(policy.decide(_view(_busy("on-1", "online", 8.0), deleting, demand=1)))
    assert (changes["tidal"].from_replicas, changes["tidal"].replicas) == (0, 1)


# -- anti-jitter ------------------------------------------------------------------------------


def test_a_second_direction_change_within_the_window_is_held():
    clock = FakeClock()
    policy = _policy(clock)
    full = _busy("on-1", "online", 8.0)
    policy.decide(_view(full, demand=1))  # tidal up
    clock.advance(100.0)
    policy.decide(_view(full, _idle("t-1", "tidal", 60.0)))  # down: the first change
    clock.advance(10.0)
    assert policy.decide(_view(full, demand=1)) == []  # up again: a second change
    assert [h.code for h in policy.holds] == [HoldCode.ANTI_JITTER]


def test_a_scale_down_that_would_be_a_second_change_within_the_window_is_held():
    clock = FakeClock()
    policy = _policy(clock)
    full = _busy("on-1", "online", 8.0)
    policy.decide(_view(full, _idle("t-0", "tidal")))  # tidal down
    clock.advance(10.0)
    policy.decide(_view(full, demand=1))  # up: the first change
    clock.advance(10.0)
    assert policy.decide(_view(full, _idle("t-1", "tidal", 60.0))) == []  # down: a second
    assert [h.code for h in policy.holds] == [HoldCode.ANTI_JITTER]


def test_a_direction_change_is_allowed_again_after_the_window():
    clock = FakeClock()
    policy = _policy(clock)
    full = _busy("on-1", "online", 8.0)
    policy.decide(_view(full, demand=1))
    clock.advance(100.0)
    policy.decide(_view(full, _idle("t-1", "tidal", 60.0)))
    clock.advance(120.0)
    assert set(_by_group(policy.decide(_view(full, demand=1)))) == {"tidal"}


def test_a_reclaim_is_not_a_direction_change():
    clock = FakeClock()
    policy = _policy(clock, reclaim_hold_s=0.0)
    full = _busy("on-1", "online", 8.0)
    policy.decide(_view(full, demand=1))  # tidal up
    clock.advance(10.0)
    policy.decide(_view(full, WorkerNode(name="t-1", group="tidal", reclaim_notice=True)))
    clock.advance(10.0)
    assert set(_by_group(policy.decide(_view(full, demand=1)))) == {"tidal"}


# -- records ----------------------------------------------------------------------------------


def test_each_scale_is_an_event_with_time_group_direction_sizes_and_reason():
    clock = FakeClock(start=42.0)
    policy = _policy(clock)
    policy.decide(_view(_busy("on-1", "online", 8.0), demand=1))
    (event,) = policy.events
    assert (event.time, event.group, event.direction) == (42.0, "tidal", "up")
    assert (event.from_replicas, event.to_replicas, event.cause) == (0, 1, ScaleCause.DEMAND)
    assert event.reason.startswith("up 0 → 1")
    assert event.as_dict()["event_type"] == "cluster.group_scaled"


def test_preview_records_nothing():
    policy = _policy(FakeClock())
    assert policy.preview(_view(_busy("on-1", "online", 8.0), demand=1))
    assert policy.events == []
