"""From a RayCluster and its pods to the policy's view, and from the policy's changes to an
RFC 6902 JSON patch. Plain functions, no I/O: tests call them with dicts.

The patch follows Ray's own KubeRay provider: scale up by raising a group's ``replicas``; scale
down by lowering ``replicas`` by n *and* naming the n pods in the group's
``scaleStrategy.workersToDelete`` (appended to what is pending). Every group the patch touches
is guarded by ``test`` ops (its ``groupName``, its ``replicas``, its current list), so a
RayCluster changed since it was read is rejected whole and decided again next tick.
:func:`check_patch` refuses any patch that is not valid JSON Patch, touches another field, or
names a pod outside its group.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jsonpatch

from tideflow.cluster.demand import Demand
from tideflow.cluster.errors import PatchSafetyError
from tideflow.cluster.kube import check_json_patch
from tideflow.cluster.policy import ClusterView, GroupChange, WorkerNode
from tideflow.cluster.render import GROUP_LABEL, RECLAIM_ANNOTATION
from tideflow.core.observability import get_logger

__all__ = ["GroupState", "ScaleStep", "build_patch", "check_patch", "observe"]

_log = get_logger("tideflow.cluster.patches")
_ALLOWED_PATH = re.compile(
    r"^/spec/workerGroupSpecs/\d+/(groupName|replicas|scaleStrategy(/workersToDelete(/-|/\d+)?)?)$"
)


@dataclass(frozen=True, kw_only=True)
class GroupState:
    """One worker group as read from the API."""

    name: str
    index: int
    """Position in ``spec.workerGroupSpecs``."""
    replicas: int
    min_replicas: int
    max_replicas: int
    workers_to_delete: tuple[str, ...] | None
    """The group's ``scaleStrategy.workersToDelete`` (None when the field is absent)."""
    has_scale_strategy: bool
    pods: tuple[str, ...]
    """Names of the group's pods that exist now."""
    running: int = 0
    starting: int = 0
    deleting: int = 0
    reclaim_notice: int = 0

    @property
    def pending_deletes(self) -> tuple[str, ...]:
        """Names in ``workersToDelete`` whose pods still exist."""
        return tuple(n for n in self.workers_to_delete or () if n in self.pods)


@dataclass(frozen=True, kw_only=True)
class ScaleStep:
    """A change the patch makes to one group."""

    pool: str
    from_replicas: int
    to_replicas: int
    workers_to_delete: tuple[str, ...]
    reason: str

    @property
    def direction(self) -> str:
        if self.to_replicas > self.from_replicas:
            return "up"
        return "down" if self.to_replicas < self.from_replicas else "replace"


def _reclaimed(pod: Mapping[str, Any]) -> bool:
    if RECLAIM_ANNOTATION in (pod.get("metadata", {}).get("annotations") or {}):
        return True
    conditions = pod.get("status", {}).get("conditions") or []
    return any(
        c.get("type") == "DisruptionTarget" and c.get("status") == "True" for c in conditions
    )


def observe(
    raycluster: Mapping[str, Any],
    pods: Sequence[Mapping[str, Any]],
    demand: Demand,
    groups: Sequence[str],
) -> tuple[ClusterView, dict[str, GroupState]]:
    """The policy's :class:`ClusterView` and each group's state.

    A pod is *deleting* when it has a ``deletionTimestamp`` or is named in its group's
    ``workersToDelete``; *starting* while ``Pending``; a node when ``Running`` (with a reclaim
    notice when it carries the ``DisruptionTarget`` condition or ``tideflow.io/reclaim-notice``).
    Replicas that KubeRay has not created a pod for yet count as starting too. Pods that
    finished (``Succeeded``/``Failed``) are left out."""
    specs = raycluster.get("spec", {}).get("workerGroupSpecs") or []
    index = {g.get("groupName"): i for i, g in enumerate(specs)}
    missing = [g for g in groups if g not in index]
    if missing:
        raise PatchSafetyError(
            f"RayCluster {raycluster.get('metadata', {}).get('name')!r} has no worker group(s) "
            f"{missing}; it has {sorted(map(str, index))} (render and apply it first)"
        )
    by_group: dict[str, list[Mapping[str, Any]]] = {g: [] for g in groups}
    for pod in pods:
        group = (pod.get("metadata", {}).get("labels") or {}).get(GROUP_LABEL)
        if group in by_group and pod.get("status", {}).get("phase") not in ("Succeeded", "Failed"):
            by_group[group].append(pod)
    nodes: list[WorkerNode] = []
    starting: dict[str, int] = {}
    states: dict[str, GroupState] = {}
    for group in groups:
        spec = specs[index[group]]
        strategy = spec.get("scaleStrategy")
        listed = None if not strategy or "workersToDelete" not in strategy else strategy
        to_delete = tuple(listed["workersToDelete"] or ()) if listed else None
        counts = {"running": 0, "starting": 0, "deleting": 0, "reclaim_notice": 0}
        for pod in by_group[group]:
            meta = pod["metadata"]
            name = meta["name"]
            deleting = "deletionTimestamp" in meta or name in (to_delete or ())
            if pod.get("status", {}).get("phase") == "Pending" and not deleting:
                counts["starting"] += 1
                continue
            usage = demand.nodes.get(name)
            reclaim = _reclaimed(pod)
            counts["deleting" if deleting else "running"] += 1
            counts["reclaim_notice"] += reclaim
            nodes.append(
                WorkerNode(
                    name=name,
                    group=group,
                    used=dict(usage.used) if usage else {},
                    idle_s=usage.idle_s if usage else 0.0,
                    deleting=deleting,
                    reclaim_notice=reclaim,
                )
            )
        replicas = int(spec.get("replicas", 0))
        unborn = max(0, replicas - counts["running"] - counts["starting"])
        starting[group] = counts["starting"] + unborn
        states[group] = GroupState(
            name=group,
            index=index[group],
            replicas=replicas,
            min_replicas=int(spec.get("minReplicas", 0)),
            max_replicas=int(spec.get("maxReplicas", 2**31 - 1)),
            workers_to_delete=to_delete,
            has_scale_strategy=isinstance(strategy, Mapping),
            pods=tuple(p["metadata"]["name"] for p in by_group[group]),
            **counts,
        )
    view = ClusterView(nodes=tuple(nodes), starting=starting, demand=demand.bundles)
    return view, states


def _group_ops(state: GroupState, target: int, deletes: tuple[str, ...]) -> list[dict[str, Any]]:
    base = f"/spec/workerGroupSpecs/{state.index}"
    ops: list[dict[str, Any]] = [
        {"op": "test", "path": f"{base}/groupName", "value": state.name},
        {"op": "test", "path": f"{base}/replicas", "value": state.replicas},
    ]
    if target != state.replicas:
        ops.append({"op": "replace", "path": f"{base}/replicas", "value": target})
    current = state.workers_to_delete
    stale = [n for n in current or () if n not in state.pods]
    if not deletes and not stale:
        return ops
    strategy = f"{base}/scaleStrategy"
    if current is not None:
        ops.append({"op": "test", "path": f"{strategy}/workersToDelete", "value": list(current)})
        if stale:  # drop names of pods already gone, keep the pending ones, append the new
            kept = [n for n in current if n in state.pods] + list(deletes)
            ops.append({"op": "replace", "path": f"{strategy}/workersToDelete", "value": kept})
        else:
            ops += [
                {"op": "add", "path": f"{strategy}/workersToDelete/-", "value": n} for n in deletes
            ]
    elif state.has_scale_strategy:
        ops.append({"op": "add", "path": f"{strategy}/workersToDelete", "value": list(deletes)})
    else:
        ops.append({"op": "add", "path": strategy, "value": {"workersToDelete": list(deletes)}})
    return ops


def build_patch(
    changes: Sequence[GroupChange], states: Mapping[str, GroupState]
) -> tuple[list[dict[str, Any]], list[ScaleStep]]:
    """The JSON patch for the policy's ``changes``, and the steps it makes.

    A target outside the group's ``[minReplicas, maxReplicas]`` (as the RayCluster has them
    now) is clamped into it. Groups without a change still get their ``workersToDelete``
    cleaned of pods that are gone. Raises :class:`PatchSafetyError` for an unknown group, a
    pod named twice, a pod that is not the group's or one already pending deletion."""
    ops: list[dict[str, Any]] = []
    steps: list[ScaleStep] = []
    changed: set[str] = set()
    for change in changes:
        state = states.get(change.group)
        if state is None:
            raise PatchSafetyError(
                f"the policy changed unknown group {change.group!r}; known: {sorted(states)}"
            )
        if change.group in changed:
            raise PatchSafetyError(f"the policy changed group {change.group!r} twice in one tick")
        changed.add(change.group)
        deletes = tuple(change.workers_to_delete)
        if len(set(deletes)) != len(deletes):
            raise PatchSafetyError(f"group {change.group!r}: a pod is named twice in {deletes}")
        foreign = [n for n in deletes if n not in state.pods]
        if foreign:
            raise PatchSafetyError(
                f"group {change.group!r}: workersToDelete may name only the group's pods; "
                f"{foreign} are not among {sorted(state.pods)}"
            )
        pending = [n for n in deletes if n in (state.workers_to_delete or ())]
        if pending:
            raise PatchSafetyError(f"group {change.group!r}: {pending} are already being deleted")
        target = min(state.max_replicas, max(state.min_replicas, change.replicas))
        if target != change.replicas:
            _log.warning(
                "replicas.clamped",
                pool=change.group,
                asked=change.replicas,
                to=target,
                min_replicas=state.min_replicas,
                max_replicas=state.max_replicas,
            )
        if target == state.replicas and not deletes:
            continue
        ops += _group_ops(state, target, deletes)
        steps.append(
            ScaleStep(
                pool=change.group,
                from_replicas=state.replicas,
                to_replicas=target,
                workers_to_delete=deletes,
                reason=change.reason,
            )
        )
    for name, state in states.items():
        if name not in {s.pool for s in steps} and set(state.workers_to_delete or ()) - set(
            state.pods
        ):
            ops += _group_ops(state, state.replicas, ())
    return ops, steps


def check_patch(
    raycluster: Mapping[str, Any],
    ops: Sequence[Mapping[str, Any]],
    states: Mapping[str, GroupState],
) -> dict[str, Any]:
    """Check ``ops`` before it is sent and return the RayCluster it would make.

    It must be valid RFC 6902, apply cleanly to ``raycluster``, touch only worker groups'
    ``replicas`` and ``scaleStrategy``, keep the replicas it changes within ``minReplicas`` and
    ``maxReplicas``, and add to each group's ``workersToDelete`` only that group's pods."""
    try:
        patch = check_json_patch(ops)
    except (ValueError, TypeError) as e:
        raise PatchSafetyError(f"not a valid JSON patch: {e}") from None
    for op in ops:
        if not _ALLOWED_PATH.match(op["path"]):
            raise PatchSafetyError(f"the patch may touch only replicas and scaleStrategy; got {op}")
    try:
        after: dict[str, Any] = patch.apply(copy.deepcopy(dict(raycluster)))
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as e:
        raise PatchSafetyError(f"the patch does not apply to the RayCluster as read: {e}") from None
    groups = raycluster["spec"]["workerGroupSpecs"], after["spec"]["workerGroupSpecs"]
    for was, group in zip(*groups, strict=True):
        name = group.get("groupName")
        old = set((was.get("scaleStrategy") or {}).get("workersToDelete") or ())
        new = set((group.get("scaleStrategy") or {}).get("workersToDelete") or ())
        state = states.get(name)
        if new - old and (state is None or not (new - old) <= set(state.pods)):
            raise PatchSafetyError(
                f"group {name!r}: workersToDelete would name pods outside the group: "
                f"{sorted(new - old - set(state.pods if state else ()))}"
            )
        replicas = group.get("replicas", 0)
        bounds = (group.get("minReplicas", 0), group.get("maxReplicas", 2**31 - 1))
        if replicas != was.get("replicas", 0) and not bounds[0] <= replicas <= bounds[1]:
            raise PatchSafetyError(f"group {name!r}: replicas {replicas} outside {bounds}")
    return after
