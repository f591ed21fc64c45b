"""Configuration: files load, and every mistake is named with what is allowed and what was seen."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from _cluster_data import CONFIG

from tideflow.cluster import (
    ClusterConfigError,
    config_from_dict,
    default_policy,
    load_config,
    render_raycluster,
)
from tideflow.core.errors import ConfigError

README = Path(__file__).resolve().parents[1] / "README.md"


def _with(path: str, value: Any) -> dict[str, Any]:
    """CONFIG with one field changed; ``path`` like ``pools.1.max_nodes``; value ... deletes."""
    data = copy.deepcopy(CONFIG)
    *parents, last = path.split(".")
    node: Any = data
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    if value is ...:
        del node[int(last) if last.isdigit() else last]
    elif last.isdigit():
        node[int(last)] = value
    else:
        node[last] = value
    return data


BAD = [
    # (field, value, words the message must hold)
    ("name", "Tide_Flow", ["ClusterConfig.name", "DNS-1123", "'Tide_Flow'"]),
    ("pools", [], ["pools", "non-empty list", "[]"]),
    ("pools.0.max_nodes", ..., ["pools[0]", "missing required field", "max_nodes"]),
    ("pools.0.max_nodes", -1, ["pools[0]", "max_nodes", "min_nodes", "-1"]),
    ("pools.1.name", "online", ["repeated", "online"]),
    ("pools.0.colour", "red", ["pools[0]", "unknown field", "colour", "allowed", "node_shape"]),
    ("pools.0.node_shape", {"CPU": "lots"}, ["node_shape['CPU']", "quantity", "'lots'"]),
    ("pools.2.tidal", "yes", ["tidal", "true or false", "'yes'"]),
    ("pools.0.priority", 2**31, ["priority", "int32"]),
    ("pools.0.labels", {"team": "a b"}, ["labels['team']", "Kubernetes label", "'a b'"]),
    ("pools.0.tolerations", "spot", ["tolerations", "list of mappings", "'spot'"]),
    ("autoscaler", {"interval_s": 0}, ["autoscaler.interval_s", "> 0", "0"]),
    ("kube", {"server": "ftp://x"}, ["kube.server", "http", "'ftp://x'"]),
    ("policy", ["fast"], ["policy", "mapping", "['fast']"]),
]


@pytest.mark.parametrize(("field", "value", "words"), BAD, ids=[b[0] for b in BAD])
def test_bad_config_names_the_field_what_is_allowed_and_what_was_seen(
    field: str, value: Any, words: list[str]
) -> None:
    with pytest.raises(ClusterConfigError) as info:
        config_from_dict(_with(field, value))
    for word in words:
        assert word in str(info.value)


def test_config_errors_are_tideflow_config_errors() -> None:
    with pytest.raises(ConfigError):
        config_from_dict({"name": "x"})


def test_unknown_policy_setting_fails_when_the_policy_is_built() -> None:
    config = config_from_dict(_with("policy", {"window": 5}))
    with pytest.raises(ClusterConfigError, match=r"policy: .*window"):
        default_policy(config)


def test_quantities_in_the_node_shape_are_read_as_numbers() -> None:
    config = config_from_dict(_with("pools.0.node_shape", {"CPU": "500m", "memory": "64Gi"}))
    assert dict(config.pools[0].node_shape) == {"CPU": 0.5, "memory": 64 * 1024**3}


def test_yaml_and_json_files_load_to_the_same_config(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(CONFIG))
    (tmp_path / "c.json").write_text(json.dumps(CONFIG))
    assert load_config(tmp_path / "c.yaml") == load_config(tmp_path / "c.json")


def test_unreadable_or_malformed_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ClusterConfigError, match="cannot read the configuration file"):
        load_config(tmp_path / "missing.yaml")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ClusterConfigError, match=r"bad\.json: not valid JSON"):
        load_config(tmp_path / "bad.json")


def test_the_readme_example_is_a_valid_config(tmp_path: Path) -> None:
    blocks = re.findall(r"```yaml\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    example = next(b for b in blocks if "pools:" in b)
    (tmp_path / "cluster.yaml").write_text(example)
    config = load_config(tmp_path / "cluster.yaml")
    assert [p.tidal for p in config.pools].count(True) >= 1
    assert render_raycluster(config)["spec"]["workerGroupSpecs"]
    default_policy(config)  # its policy settings are PolicyConfig's
