"""The autoscaler under test, wired to the API emulator, the fake operator and a fake clock."""

from __future__ import annotations

from dataclasses import dataclass

from _kube_emulator import RAYCLUSTERS, EmulatedKubernetes, FakeRayOperator

from tideflow.cluster import Autoscaler, ClusterConfig, NodeUsage, StaticDemand
from tideflow.core.testing import FakeClock


@dataclass
class Rig:
    """The autoscaler under test and what surrounds it."""

    config: ClusterConfig
    kube: EmulatedKubernetes
    operator: FakeRayOperator
    demand: StaticDemand
    clock: FakeClock
    scaler: Autoscaler

    def replicas(self) -> dict[str, int]:
        cluster = self.kube.get(RAYCLUSTERS, self.config.namespace, self.config.name)
        assert cluster is not None
        return {g["groupName"]: g["replicas"] for g in cluster["spec"]["workerGroupSpecs"]}

    def set_replicas(self, **replicas: int) -> None:
        """Start from these replicas (as if applied by hand), reconciled into pods."""
        cluster = self.kube.get(RAYCLUSTERS, self.config.namespace, self.config.name)
        assert cluster is not None
        for group in cluster["spec"]["workerGroupSpecs"]:
            group["replicas"] = replicas.get(group["groupName"], group["replicas"])
        self.kube.put(RAYCLUSTERS, cluster)
        self.operator.reconcile()

    def idle(self, seconds: float) -> None:
        """Every pod's Ray node has been idle ``seconds``; demand is unchanged."""
        nodes = {p["metadata"]["name"]: NodeUsage(idle_s=seconds) for p in self.operator.pods()}
        self.demand.set(self.demand.demand.bundles, **nodes)
