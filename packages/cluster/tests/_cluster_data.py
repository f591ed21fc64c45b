"""The cluster configuration the tests share, and a bearer token that must never be seen."""

from __future__ import annotations

from typing import Any

TOKEN = "tok-3f9a2c-SECRET-do-not-log"

CONFIG: dict[str, Any] = {
    "name": "tideflow",
    "namespace": "ray",
    "pools": [
        {"name": "online", "node_shape": {"CPU": 8}, "max_nodes": 3, "priority": 30},
        {"name": "batch", "node_shape": {"CPU": 8}, "max_nodes": 3, "priority": 20},
        {
            "name": "spot",
            "node_shape": {"CPU": 8, "spot": 1},
            "max_nodes": 6,
            "priority": 10,
            "tidal": True,
        },
    ],
    "policy": {"idle_timeout_s": 60, "window_s": 120, "reclaim_hold_s": 300},
    "kube": {"timeout_s": 5},
}
