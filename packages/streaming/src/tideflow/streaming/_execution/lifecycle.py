"""The executor's dealings with the parts around the loop: the sink's extra writers,
waiting for the stages' first actors, new splits of a growing source, dropping a failed
epoch's staged output, closing the connectors' driver-side clients."""

from __future__ import annotations

from collections.abc import Container, Mapping, Sequence
from typing import Any

__all__ = [
    "abort_staged",
    "close_connectors",
    "discover_new_splits",
    "io_placement",
    "start_writers",
    "wait_for_stages",
]


def io_placement(
    resources: Mapping[str, float] | None, label_selector: Mapping[str, str] | None
) -> dict[str, Any]:
    """Ray options of the I/O actor and the sink's writers: no CPU (they wait on I/O), the
    ``io_resources`` and ``io_label_selector`` of the run, if any."""
    options: dict[str, Any] = {"num_cpus": 0}
    if resources:
        options["resources"] = dict(resources)
    if label_selector:
        options["label_selector"] = dict(label_selector)
    return options


def start_writers(
    sink: Any,
    ctx: Any,
    writers: int,
    id_column: str | None,
    placement: Mapping[str, Any] | None = None,
) -> list[Any]:
    """Writers 1 … ``writers`` - 1 of ``sink`` (``write(sink, writers=n)``), each an actor
    of its own (writer 0 is the I/O actor's), placed as the I/O actor is (``placement``:
    :func:`io_placement`)."""
    import ray

    from tideflow.streaming._worker import SinkWriterActor

    remote: Any = ray.remote(SinkWriterActor)
    options = dict(placement) if placement else io_placement(None, None)
    return [
        remote.options(**options).remote(sink, ctx, index, id_column) for index in range(1, writers)
    ]


def wait_for_stages(operators: Sequence[Any], log: Any) -> None:
    """Start the flow once every stage has an actor: batches read earlier would only queue
    in front of a stage still starting, and the stages before it would stall on that queue
    (bubbles in the accelerator stage's busy time). A stage that cannot be placed (it asks
    for more than the cluster has) is reported every 10 s."""
    import ray

    waited = 0.0
    for op in operators:
        while not op.wait_ready(10.0):
            waited += 10.0
            log.warning(
                "stage.waiting_for_actor",
                stage=op.name,
                waited_s=waited,
                needs=op.spec.resources.to_ray_options(),
                cluster=ray.cluster_resources(),
                available=ray.available_resources(),
            )


def close_connectors(connectors: Mapping[str, Any], log: Any) -> None:
    """Close the driver-side clients (discovery, position and sink commits) of each
    connector, by role; a close that fails is logged, never raised."""
    for role, connector in connectors.items():
        try:
            connector.close()
        except Exception as error:
            log.warning("connector.close_failed", connector=role, error=str(error)[:300])


def discover_new_splits(source: Any, ctx: Any, known: Container[str], log: Any) -> list[Any]:
    """The splits an unbounded source has grown since the last look (none when the look
    fails: a stalled broker or store is looked at again next round)."""
    try:
        found = source.discover(ctx)
    except Exception as error:
        log.warning("source.discover_failed", error=str(error)[:300])
        return []
    return [s for s in found if s.split_id not in known]


def abort_staged(sinks: Sequence[Any], ctx: Any, epoch: int, log: Any) -> None:
    """Drop what ``sinks`` staged for a failed ``epoch`` (best effort: ``recover`` removes it
    on the rerun anyway)."""
    for sink in sinks:
        try:
            sink.abort(ctx, epoch, [])
        except Exception as error:
            log.warning("sink.abort_failed", epoch=epoch, error=str(error)[:300])
