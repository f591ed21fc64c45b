# --8<-- [start:example]
"""The anti-jitter autoscaler and the multi-pool planner, driven by a fake clock."""

from tideflow.core.autoscaler import (
    ClusterPlanner,
    NodePool,
    PoolScaler,
    ScalingConfig,
    UtilizationSample,
)
from tideflow.core.testing import FakeClock

clock = FakeClock()
scaler = PoolScaler("embed", ScalingConfig(min_size=1, max_size=8), clock=clock)
size = 2
for second in range(8):  # every actor busy and work waiting, sampled once a second
    clock.advance(1.0)
    scaler.observe(
        UtilizationSample(time=clock.now(), active=size, total=size, queued=9, in_flight=size)
    )
    decision = scaler.decide(current_size=size)
    print(f"t={second + 1}s scale={decision.scale} target={decision.target} ({decision.reason})")
    if decision.scale:
        size = decision.target
assert size > 2  # scaled up once the 5 s window was covered

planner = ClusterPlanner(
    [
        NodePool(name="online", node_shape={"GPU": 8}, max_nodes=4, priority=2, min_nodes=1),
        NodePool(name="tidal", node_shape={"GPU": 8}, max_nodes=10, priority=1, tidal=True),
    ]
)
targets = planner.plan([{"GPU": 1}] * 40, current={"online": 1, "tidal": 0}).targets
print(targets)  # {'online': 4, 'tidal': 1}: dedicated nodes first, then tidal
assert targets == {"online": 4, "tidal": 1}
# --8<-- [end:example]
