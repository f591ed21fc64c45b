# --8<-- [start:example]
"""tideflow-cluster from Python: node pools → a KubeRay RayCluster (what `render` prints)."""

import tempfile
from pathlib import Path

from tideflow.cluster import load_config, render_raycluster

config_file = Path(tempfile.mkdtemp()) / "cluster.yaml"
config_file.write_text(
    """
name: tideflow
namespace: ray
image: rayproject/ray:2.60.0-py311
head: {cpu: "4", memory: 16Gi}
pools:
  - name: online
    node_shape: {CPU: 16, GPU: 1, memory: 64Gi}
    min_nodes: 1
    max_nodes: 4
    priority: 30
  - {name: offline, node_shape: {CPU: 32, memory: 128Gi}, max_nodes: 8, priority: 20}
  - {name: spot, tidal: true, node_shape: {CPU: 32, memory: 128Gi}, max_nodes: 20, priority: 10}
policy: {idle_timeout_s: 60, window_s: 120}
"""
)
manifest = render_raycluster(load_config(config_file))  # a dict: kubectl apply it as YAML
for group in manifest["spec"]["workerGroupSpecs"]:
    print(group["groupName"], group["minReplicas"], group["maxReplicas"], group["rayStartParams"])
assert [g["groupName"] for g in manifest["spec"]["workerGroupSpecs"]] == [
    "online",
    "offline",
    "spot",
]
# --8<-- [end:example]
