"""The multi-pool cluster planner: one rule per test."""

from __future__ import annotations

import pytest

from tideflow.core.autoscaler import ClusterPlanner, NodePool
from tideflow.core.errors import ConfigError

CPU8 = {"CPU": 8.0}
GPU_NODE = {"CPU": 16.0, "GPU": 4.0}


def _cpu_pools(*, online_max: int = 4, tidal_max: int = 10, **kw: object) -> ClusterPlanner:
    return ClusterPlanner(
        [
            NodePool(name="online", node_shape=CPU8, max_nodes=online_max, priority=10),
            NodePool(name="offline", node_shape=CPU8, max_nodes=4, priority=1),
            NodePool(name="tidal", node_shape=CPU8, max_nodes=tidal_max, priority=5, tidal=True),
        ],
        **kw,  # type: ignore[arg-type]
    )


def _bundles(n: int, cpu: float = 4.0) -> list[dict[str, float]]:
    return [{"CPU": cpu}] * n


def test_scale_up_fills_pools_in_priority_order():
    plan = _cpu_pools().plan(_bundles(14), current={})  # 14 × 4 CPU = 7 nodes of 8 CPU
    assert plan.targets == {"online": 4, "offline": 0, "tidal": 3}
    assert plan.satisfied
    assert "fill order #2" in plan.pools["tidal"].reason


def test_equal_priority_fills_dedicated_before_tidal():
    planner = ClusterPlanner(
        [
            NodePool(name="a-tidal", node_shape=CPU8, max_nodes=4, tidal=True),
            NodePool(name="b-dedicated", node_shape=CPU8, max_nodes=4),
        ]
    )
    assert planner.plan(_bundles(2), current={}).targets == {"a-tidal": 0, "b-dedicated": 1}


def test_existing_nodes_take_demand_before_new_nodes_are_added():
    plan = _cpu_pools().plan(_bundles(4), current={"offline": 2})
    assert plan.targets == {"online": 0, "offline": 2, "tidal": 0}
    assert plan.changes == {}


def test_scale_down_releases_tidal_nodes_before_dedicated_ones():
    current = {"online": 4, "offline": 0, "tidal": 3}
    plan = _cpu_pools().plan(_bundles(8), current=current)  # demand fell to 4 nodes
    assert plan.targets == {"online": 4, "offline": 0, "tidal": 0}
    assert "3 idle tidal node(s) released" in plan.pools["tidal"].reason


def test_scale_down_releases_the_lowest_priority_dedicated_pool_first():
    current = {"online": 2, "offline": 2, "tidal": 0}
    plan = _cpu_pools().plan(_bundles(4), current=current)  # 2 nodes' worth
    assert plan.targets == {"online": 2, "offline": 0, "tidal": 0}
    assert "no tidal capacity in use" in plan.pools["offline"].reason


def test_dedicated_nodes_are_kept_while_tidal_nodes_are_in_use():
    planner = ClusterPlanner(
        [
            NodePool(name="cpu", node_shape=CPU8, max_nodes=4, priority=10),
            NodePool(name="gpu-tidal", node_shape=GPU_NODE, max_nodes=4, tidal=True),
        ]
    )
    # Only GPU work is left: it runs on tidal GPU nodes; the idle dedicated CPU nodes stay.
    plan = planner.plan([{"CPU": 2.0, "GPU": 1.0}] * 4, current={"cpu": 3, "gpu-tidal": 1})
    assert plan.targets == {"cpu": 3, "gpu-tidal": 1}
    assert "kept (tidal pools still hold nodes)" in plan.pools["cpu"].reason


def test_dedicated_pools_never_shrink_when_release_is_off():
    plan = _cpu_pools(release_idle_dedicated=False).plan([], current={"online": 3, "offline": 2})
    assert plan.targets == {"online": 3, "offline": 2, "tidal": 0}


def test_min_and_max_nodes_bound_the_targets():
    planner = ClusterPlanner(
        [
            NodePool(name="online", node_shape=CPU8, max_nodes=2, min_nodes=1),
            NodePool(name="tidal", node_shape=CPU8, max_nodes=3, min_nodes=1, tidal=True),
        ]
    )
    assert planner.plan([], current={}).targets == {"online": 1, "tidal": 1}
    plan = planner.plan([], current={"online": 5, "tidal": 0})
    assert plan.targets == {"online": 1, "tidal": 1}
    assert "raised to min_nodes" in plan.pools["tidal"].reason


def test_demand_beyond_every_pool_is_reported_as_unmet():
    plan = _cpu_pools(online_max=1, tidal_max=1).plan(_bundles(16), current={})
    assert plan.targets == {"online": 1, "offline": 4, "tidal": 1}
    assert len(plan.unmet) == 4
    assert "at max_nodes" in plan.unmet_reasons[0]
    assert not plan.satisfied


def test_a_bundle_that_fits_no_node_shape_is_reported():
    plan = _cpu_pools().plan([{"CPU": 1.0, "GPU": 1.0}], current={})
    assert plan.unmet == ({"CPU": 1.0, "GPU": 1.0},)
    assert "no pool's node shape fits" in plan.unmet_reasons[0]


def test_bundles_go_to_pools_whose_shape_holds_them():
    planner = ClusterPlanner(
        [
            NodePool(name="cpu", node_shape=CPU8, max_nodes=4, priority=10),
            NodePool(name="gpu", node_shape=GPU_NODE, max_nodes=4, priority=1),
        ]
    )
    # GPU bundles need the GPU pool despite its lower priority; CPU work fills the CPU pool.
    plan = planner.plan([{"GPU": 1.0, "CPU": 4.0}] * 8 + _bundles(2), current={})
    assert plan.targets == {"cpu": 1, "gpu": 2}


def test_divisible_demand_is_spread_over_node_shapes():
    plan = _cpu_pools().plan({"CPU": 44.0}, current={})  # 5.5 nodes of 8 CPU
    assert plan.targets == {"online": 4, "offline": 0, "tidal": 2}
    assert plan.satisfied


def test_a_plan_is_stable_when_applied():
    planner = _cpu_pools()
    demand = _bundles(13)
    first = planner.plan(demand, current={"offline": 1})
    assert planner.plan(demand, current=first.targets).changes == {}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "x", "node_shape": {}, "max_nodes": 1}, "node_shape"),
        ({"name": "x", "node_shape": {"CPU": -1}, "max_nodes": 1}, "node_shape"),
        ({"name": "x", "node_shape": CPU8, "max_nodes": 1, "min_nodes": 2}, "max_nodes"),
        ({"name": "", "node_shape": CPU8, "max_nodes": 1}, "name"),
    ],
)
def test_invalid_node_pools_are_rejected(kwargs, message):
    with pytest.raises(ConfigError, match=rf"NodePool\.{message}"):
        NodePool(**kwargs)


def test_unknown_pool_in_current_is_rejected():
    with pytest.raises(ConfigError, match="unknown pools"):
        _cpu_pools().plan([], current={"gpu": 1})
