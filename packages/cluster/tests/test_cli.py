"""``tideflow-cluster``: --help, render, and autoscale --once against the API emulator."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from _cluster_data import CONFIG, TOKEN
from _kube_emulator import RAYCLUSTERS, EmulatedKubernetes, FakeRayOperator

from tideflow.cluster import config_from_dict, render_raycluster
from tideflow.cluster.autoscale import Autoscaler
from tideflow.cluster.cli import main
from tideflow.core.testing import FakeClock


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump(CONFIG))
    return path


def test_help_lists_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "render" in out and "autoscale" in out
    with pytest.raises(SystemExit):
        main(["autoscale", "--help"])
    out = capsys.readouterr().out
    for flag in ("--once", "--interval", "--metrics-port", "--demand-file", "--ray-address"):
        assert flag in out


def test_render_prints_the_raycluster_yaml(
    config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["render", "--config", str(config_file)]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed == render_raycluster(config_from_dict(CONFIG))


def test_bad_config_exits_2_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({**CONFIG, "pools": [{"name": "x", "node_shape": {}}]}))
    assert main(["--log-format", "json", "render", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "pools[0]" in err and "max_nodes" in err


def test_autoscale_once_patches_the_cluster_on_the_emulator(
    tmp_path: Path,
    config_file: Path,
    kube: EmulatedKubernetes,
    capsys: pytest.CaptureFixture[str],
) -> None:
    kube.put(RAYCLUSTERS, render_raycluster(config_from_dict(CONFIG)))
    demand = tmp_path / "demand.json"
    demand.write_text(json.dumps({"bundles": [{"CPU": 8}] * 4}))
    token = tmp_path / "token"
    token.write_text(TOKEN)
    code = main(
        [
            "--log-format",
            "json",
            "--log-level",
            "debug",
            "autoscale",
            "--config",
            str(config_file),
            "--once",
            "--server",
            kube.url,
            "--token-file",
            str(token),
            "--demand-file",
            str(demand),
        ]
    )
    assert code == 0
    cluster = kube.get(RAYCLUSTERS, "ray", "tideflow")
    assert cluster is not None
    assert [g["replicas"] for g in cluster["spec"]["workerGroupSpecs"]] == [3, 1, 0]
    err = capsys.readouterr().err
    events = [json.loads(line)["event"] for line in err.splitlines() if line.startswith("{")]
    assert events.count("group.patched") == 2 and "autoscaler.ticked" in events
    assert TOKEN not in err


def test_autoscale_once_exits_1_when_the_tick_fails(
    tmp_path: Path,
    config_file: Path,
    kube: EmulatedKubernetes,
    capsys: pytest.CaptureFixture[str],
) -> None:
    demand = tmp_path / "demand.json"
    demand.write_text("[]")
    args = [
        "autoscale",
        "--config",
        str(config_file),
        "--once",
        "--server",
        kube.url,
        "--demand-file",
        str(demand),
    ]
    assert main(args) == 1  # no RayCluster on the server
    assert "autoscaler.tick_failed" in capsys.readouterr().err


def test_autoscale_without_a_server_or_demand_source_exits_2(
    config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["autoscale", "--config", str(config_file), "--once", "--ray-address", "h:6379"]
    assert main(args, env={}) == 2
    assert "no Kubernetes API server" in capsys.readouterr().err
    assert main(["autoscale", "--config", str(config_file), "--server", "http://h"], env={}) == 2
    assert "no demand source" in capsys.readouterr().err


def test_in_cluster_service_account_is_used_when_no_server_is_configured(
    config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "RAY_ADDRESS": "h:6379"}
    assert main(["autoscale", "--config", str(config_file), "--once"], env=env) == 2
    assert "serviceaccount/token" in capsys.readouterr().err


def test_ctrl_c_exits_130(
    config_file: Path,
    kube: EmulatedKubernetes,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    def interrupted(self: Autoscaler, **_: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(Autoscaler, "run", interrupted)
    demand = tmp_path / "d.json"
    demand.write_text("[]")
    args = [
        "autoscale",
        "--config",
        str(config_file),
        "--server",
        kube.url,
        "--demand-file",
        str(demand),
    ]
    assert main(args) == 130


def test_loop_ticks_until_stopped(kube: EmulatedKubernetes) -> None:
    import threading

    from tideflow.cluster import KubeClient, StaticDemand

    config = config_from_dict(CONFIG)
    kube.put(RAYCLUSTERS, render_raycluster(config))
    operator = FakeRayOperator(kube, namespace="ray", name="tideflow", clock=FakeClock())
    demand = StaticDemand()
    demand.set([{"CPU": 8}])
    scaler = Autoscaler(config, kube=KubeClient(kube.url), demand=demand)
    stop = threading.Event()
    seen = []

    def on_tick(result: object) -> None:
        seen.append(result)
        operator.reconcile()
        if len(seen) == 3:
            stop.set()

    result = scaler.run(interval_s=0.01, stop=stop, on_tick=on_tick)
    assert len(seen) == 3 and scaler.ticks == 3 and result is seen[-1]
    assert operator.names("online") == ["tideflow-online-worker-0000"]


def test_dry_run_decides_and_logs_but_sends_no_patch(
    tmp_path: Path,
    config_file: Path,
    kube: EmulatedKubernetes,
    capsys: pytest.CaptureFixture[str],
) -> None:
    kube.put(RAYCLUSTERS, render_raycluster(config_from_dict(CONFIG)))
    demand = tmp_path / "demand.json"
    demand.write_text(json.dumps([{"CPU": 8}]))
    args = [
        "--log-format",
        "json",
        "autoscale",
        "--config",
        str(config_file),
        "--once",
        "--dry-run",
        "--server",
        kube.url,
        "--demand-file",
        str(demand),
    ]
    assert main(args) == 0
    assert kube.patch_requests() == []
    assert '"dry_run": true' in capsys.readouterr().err


def test_metrics_are_served_over_http() -> None:
    import socket
    import urllib.request

    from tideflow.cluster import AutoscalerMetrics

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    metrics = AutoscalerMetrics()
    metrics.scale_events.labels(pool="spot", direction="down").inc()
    server = metrics.serve(port)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            text = r.read().decode()
    finally:
        server.shutdown()
        server.server_close()
    assert 'tideflow_cluster_scale_events_total{direction="down",pool="spot"} 1.0' in text


def test_render_with_the_autoscaler_adds_what_runs_it_in_the_cluster(
    config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tideflow.cluster.cli import _parser

    args = ["render", "--config", str(config_file), "--autoscaler", "--image", "reg/tc:1"]
    assert main(args) == 0
    docs = list(yaml.safe_load_all(capsys.readouterr().out))
    kinds = [d["kind"] for d in docs]
    assert kinds == [
        "RayCluster",
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "ConfigMap",
        "Deployment",
    ]
    config = config_from_dict(CONFIG)
    assert {d["metadata"]["namespace"] for d in docs} == {config.namespace}
    role, binding, config_map, deployment = docs[2:]
    # Exactly what a tick calls: GET and PATCH the RayCluster, LIST its pods.
    allowed = {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    assert allowed == {("ray.io", "rayclusters", "get"), ("ray.io", "rayclusters", "patch"),
                       ("", "pods", "list")}  # fmt: skip
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"][0]["name"] == docs[1]["metadata"]["name"]
    # The mounted file is this configuration.
    (text,) = config_map["data"].values()
    assert config_from_dict(yaml.safe_load(text)) == config
    spec = deployment["spec"]
    assert spec["replicas"] == 1 and spec["strategy"]["type"] == "Recreate"
    pod = spec["template"]["spec"]
    assert pod["serviceAccountName"] == docs[1]["metadata"]["name"]
    (container,) = pod["containers"]
    assert container["image"] == "reg/tc:1"
    assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
    # Its command line is one the CLI takes, reading the mounted file and Ray's head service.
    parsed = _parser().parse_args(container["args"])
    assert parsed.command == "autoscale"
    mount = pod["volumes"][0]["configMap"]["name"] == config_map["metadata"]["name"]
    assert mount and parsed.config.startswith(container["volumeMounts"][0]["mountPath"])
    assert parsed.ray_address == f"{config.name}-head-svc.{config.namespace}.svc.cluster.local:6379"
