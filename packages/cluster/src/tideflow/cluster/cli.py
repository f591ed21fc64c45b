"""``tideflow-cluster``: render a multi-pool RayCluster, run its external autoscaler.

The command line owns the output: YAML on stdout for ``render``, structured logs on stderr for
``autoscale``. It is also where the environment is read: the in-cluster service account
(``KUBERNETES_SERVICE_HOST``/``_PORT``, the mounted token and CA) when the configuration names
no API server, and ``RAY_ADDRESS`` when it names no GCS address.

Exit status: 0 done, 1 a tick failed (``--once``), 2 bad configuration or arguments, 130
interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from tideflow.cluster.config import ClusterConfig, load_config
from tideflow.cluster.errors import ClusterError
from tideflow.cluster.kube import KubeClient
from tideflow.core.errors import TideflowError
from tideflow.core.observability import configure_logging, get_logger

__all__ = ["main"]

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tideflow-cluster",
        description="Render a multi-pool KubeRay RayCluster and run its external autoscaler.",
    )
    parser.add_argument("--log-format", choices=["auto", "console", "json"], default="auto")
    parser.add_argument(
        "--log-level", choices=["debug", "info", "warning", "error"], default="info"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    render = sub.add_parser("render", help="print the RayCluster for a configuration as YAML")
    render.add_argument("--config", required=True, help="configuration file (YAML or JSON)")
    render.add_argument("--output", "-o", help="write to this file instead of stdout")
    render.add_argument(
        "--autoscaler",
        action="store_true",
        help="also render what runs the autoscaler in the cluster: ServiceAccount, Role, "
        "RoleBinding, ConfigMap (this configuration) and Deployment",
    )
    render.add_argument("--image", help="the autoscaler's image (with tideflow-cluster installed)")
    render.add_argument(
        "--autoscaler-metrics-port", type=int, default=9100, help="its Prometheus port"
    )

    scale = sub.add_parser(
        "autoscale",
        help="patch the RayCluster's worker groups to follow demand",
        description="Each tick reads the RayCluster, its pods and Ray's pending demand, runs "
        "the multi-pool policy, and sends one RFC 6902 patch (replicas up; down by replicas "
        "and the named pods in scaleStrategy.workersToDelete).",
    )
    scale.add_argument("--config", required=True, help="configuration file (YAML or JSON)")
    scale.add_argument("--once", action="store_true", help="run one tick and exit")
    scale.add_argument("--interval", type=float, help="seconds between ticks (config default)")
    scale.add_argument("--metrics-port", type=int, help="serve Prometheus metrics on this port")
    scale.add_argument("--metrics-addr", default="0.0.0.0", help="address for --metrics-port")
    source = scale.add_mutually_exclusive_group()
    source.add_argument("--ray-address", help="GCS address to read demand from (host:port)")
    source.add_argument(
        "--demand-file", help="read demand from this JSON/YAML file each tick instead of Ray"
    )
    scale.add_argument(
        "--pool-metrics",
        action="append",
        default=[],
        metavar="URL",
        help="a Tideflow job's /metrics URL: its stage pools' samples add to the demand "
        "(repeatable)",
    )
    scale.add_argument("--server", help="Kubernetes API server URL (overrides the config)")
    scale.add_argument("--token-file", help="bearer token file (overrides the config)")
    scale.add_argument("--ca-file", help="CA bundle of the API server (overrides the config)")
    scale.add_argument("--dry-run", action="store_true", help="decide and log, patch nothing")
    return parser


def _kube_client(
    args: argparse.Namespace, config: ClusterConfig, env: Mapping[str, str]
) -> KubeClient:
    kube = config.kube
    server = args.server or kube.server
    token_file = args.token_file or kube.token_file
    ca_file = args.ca_file or kube.ca_file
    if server is None:
        host, port = env.get("KUBERNETES_SERVICE_HOST"), env.get("KUBERNETES_SERVICE_PORT", "443")
        if not host:
            raise ClusterError(
                "no Kubernetes API server: set kube.server in the configuration, pass --server,"
                " or run inside a pod (KUBERNETES_SERVICE_HOST)"
            )
        server = f"https://{host}:{port}"
        token_file = token_file or str(SERVICE_ACCOUNT / "token")
        ca_file = ca_file or str(SERVICE_ACCOUNT / "ca.crt")
    return KubeClient.from_files(
        server,
        token_file=token_file,
        ca_file=ca_file,
        verify_tls=kube.verify_tls,
        timeout_s=kube.timeout_s,
    )


def _render(args: argparse.Namespace) -> int:
    from tideflow.cluster.deploy import render_autoscaler_yaml
    from tideflow.cluster.render import render_yaml

    config = load_config(args.config)
    text = render_yaml(config)
    if args.autoscaler:
        text += "---\n" + render_autoscaler_yaml(
            config,
            config_text=Path(args.config).read_text(encoding="utf-8"),
            image=args.image,
            metrics_port=args.autoscaler_metrics_port,
        )
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


def _autoscale(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    from tideflow.cluster.autoscale import Autoscaler
    from tideflow.cluster.demand import (
        CombinedDemand,
        DemandReader,
        FileDemand,
        PoolDemand,
        RayDemand,
    )

    config = load_config(args.config)
    log = get_logger("tideflow.cluster.cli")
    demand: DemandReader
    if args.demand_file:
        demand = FileDemand(args.demand_file)
    else:
        address = args.ray_address or config.autoscaler.ray_address or env.get("RAY_ADDRESS")
        if not address:
            raise ClusterError(
                "no demand source: pass --ray-address, set autoscaler.ray_address in the "
                "configuration or RAY_ADDRESS, or pass --demand-file"
            )
        demand = RayDemand(address)
    if args.pool_metrics:  # what the jobs' pools want, before Ray has it pending
        demand = CombinedDemand(demand, PoolDemand(args.pool_metrics))
    scaler = Autoscaler(
        config, kube=_kube_client(args, config, env), demand=demand, dry_run=args.dry_run
    )
    server = None
    if args.metrics_port is not None:
        server = scaler.metrics.serve(args.metrics_port, addr=args.metrics_addr)
        log.info("metrics.served", url=f"http://{args.metrics_addr}:{args.metrics_port}/metrics")
    try:
        result = scaler.run(interval_s=args.interval, once=args.once)
    finally:
        if server is not None:
            server.shutdown()
    return 1 if args.once and not result.ok else 0


def main(argv: Sequence[str] | None = None, *, env: Mapping[str, str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    configure_logging(format=args.log_format, level=args.log_level)
    log = get_logger("tideflow.cluster.cli")
    environ = os.environ if env is None else env
    try:
        if args.command == "render":
            return _render(args)
        return _autoscale(args, environ)
    except KeyboardInterrupt:
        log.info("cli.interrupted")
        return 130
    except TideflowError as e:
        log.error("cli.failed", command=args.command, error=str(e))
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
