"""Fixtures: a cluster configuration, the Kubernetes API emulator with a fake KubeRay operator,
and an autoscaler wired to both with a fake clock. Nothing here starts Ray.

Helper modules of this folder (``_kube_emulator``, ``_raycluster_crd``, ``_rig``,
``_cluster_data``) import by plain name.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

TESTS_DIR = Path(__file__).resolve().parent
if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))

from _cluster_data import CONFIG, TOKEN  # noqa: E402
from _kube_emulator import RAYCLUSTERS, EmulatedKubernetes, FakeRayOperator  # noqa: E402
from _rig import Rig  # noqa: E402

from tideflow.cluster import (  # noqa: E402
    Autoscaler,
    ClusterConfig,
    KubeClient,
    StaticDemand,
    config_from_dict,
    render_raycluster,
)
from tideflow.core.testing import FakeClock  # noqa: E402


@pytest.fixture
def config() -> ClusterConfig:
    return config_from_dict(CONFIG)


@pytest.fixture
def kube() -> Iterator[EmulatedKubernetes]:
    with EmulatedKubernetes() as emulated:
        yield emulated


@pytest.fixture
def rig(config: ClusterConfig, kube: EmulatedKubernetes) -> Rig:
    kube.put(RAYCLUSTERS, render_raycluster(config))
    clock = FakeClock(1000.0)
    operator = FakeRayOperator(kube, namespace=config.namespace, name=config.name, clock=clock)
    operator.reconcile()
    demand = StaticDemand()
    scaler = Autoscaler(config, kube=KubeClient(kube.url, token=TOKEN), demand=demand, clock=clock)
    return Rig(config, kube, operator, demand, clock, scaler)
