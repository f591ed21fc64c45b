"""A Kubernetes API *emulator* for the tests, and a fake KubeRay operator.

No real kube-apiserver installs here, so the tests talk HTTP to kmock's
``KubernetesEmulator`` (an in-memory Kubernetes API on 127.0.0.1), extended in
:class:`RayClusterAPIEmulator` where the tests need more than kmock emulates:

* PATCH with ``application/json-patch+json`` applies the RFC 6902 patch with ``jsonpatch``,
  atomically: a failed ``test`` op answers 422 and changes nothing (as the real API server
  does), a malformed patch 400; other content types keep kmock's merge.
* LIST honours equality ``labelSelector``\\ s (``a=b,c=d``, ``a!=b``).
* Created objects get ``uid``, ``resourceVersion`` and ``creationTimestamp``.

:class:`EmulatedKubernetes` runs it in a background thread with its own event loop, so the
autoscaler's synchronous client can call it. :class:`FakeRayOperator` stands in for KubeRay's
reconciler: it turns each worker group's ``replicas`` and ``scaleStrategy.workersToDelete`` into
pod objects (deletes the named pods, clears the list, creates or removes pods to match
``replicas``), and can reclaim tidal pods with a notice, gone when the injected clock passes
the deadline — no real sleeping.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import threading
import uuid
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import aiohttp.web
import jsonpatch
import kmock
from kmock._internal import enums, rendering

from tideflow.cluster.render import (
    CLUSTER_LABEL,
    GROUP_LABEL,
    NODE_TYPE_LABEL,
    RECLAIM_ANNOTATION,
    TIDAL_LABEL,
)
from tideflow.core.testing import FakeClock

RAYCLUSTERS = kmock.resource("ray.io/v1/rayclusters")
PODS = kmock.resource("v1/pods")
T = TypeVar("T")


def _status(code: int, reason: str, message: str) -> aiohttp.web.Response:
    body = {
        "apiVersion": "v1",
        "kind": "Status",
        "status": "Failure",
        "code": code,
        "reason": reason,
        "message": message,
        "metadata": {},
    }
    return aiohttp.web.json_response(body, status=code)


def _matches(labels: Mapping[str, str], selector: str) -> bool:
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key) == value:
                return False
        else:
            key, value = term.replace("==", "=").split("=", 1)
            if labels.get(key) != value:
                return False
    return True


class RayClusterAPIEmulator(kmock.KubernetesEmulator):
    """kmock's Kubernetes API emulator with RFC 6902 patches and label selectors."""

    _versions = itertools.count(1)

    async def _handle(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        content_type = request.headers.get("Content-Type", "")
        if request.action == enums.action.UPDATE and content_type.startswith(
            "application/json-patch+json"
        ):
            return await self._json_patch(request)
        if request.action == enums.action.CREATE and isinstance(request.data, dict):
            meta = request.data.setdefault("metadata", {})
            meta.setdefault("uid", str(uuid.uuid4()))
            meta.setdefault("creationTimestamp", "2026-01-01T00:00:00Z")
            meta["resourceVersion"] = str(next(self._versions))
        return await super()._handle(request)

    async def _json_patch(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        resource, name = request.resource, request.name
        assert resource is not None and name is not None  # a PATCH names its object
        key = (resource, request.namespace, name)
        if not isinstance(request.data, list):
            return _status(400, "BadRequest", "a JSON patch must be a list of operations")
        async with self._lock:
            if key not in self.objects or self.objects[key].deleted:
                return _status(404, "NotFound", f"{request.name} not found")
            try:
                patch = jsonpatch.JsonPatch(request.data)
                new = patch.apply(copy.deepcopy(self.objects[key].raw))
            except jsonpatch.JsonPatchTestFailed as e:
                return _status(422, "Invalid", f"the server rejected our request: {e}")
            except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as e:
                return _status(400, "BadRequest", f"invalid JSON patch: {e}")
            new.setdefault("metadata", {})["resourceVersion"] = str(next(self._versions))
            self.objects[key].create(new)
            await self._buses[resource].put({"type": "MODIFIED", "object": new})
        return aiohttp.web.json_response(new)

    async def _serve_list(self, request: rendering.Request) -> rendering.Payload:
        payload = await super()._serve_list(request)
        assert isinstance(payload, dict)  # kmock's list body: {"metadata": …, "items": […]}
        selector = request.params.get("labelSelector")
        if selector:
            payload["items"] = [
                item
                for item in payload["items"]
                if _matches(item.get("metadata", {}).get("labels") or {}, selector)
            ]
        return payload


class EmulatedKubernetes:
    """:class:`RayClusterAPIEmulator` served on 127.0.0.1 from a background thread.

    ``url`` is its address; :meth:`call` runs a function on the emulator's objects in its
    thread, under its lock."""

    def __init__(self) -> None:
        self.emulator = RayClusterAPIEmulator()
        self.emulator.resources[PODS] = kmock.ResourceInfo(namespaced=True, kind="Pod")
        self.emulator.resources[RAYCLUSTERS] = kmock.ResourceInfo(
            namespaced=True, kind="RayCluster"
        )
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: kmock.Server | None = None
        self.url = ""

    def __enter__(self) -> EmulatedKubernetes:
        self._thread.start()
        self._server = kmock.Server(self.emulator)

        async def start() -> None:
            await self.emulator.__aenter__()
            assert self._server is not None
            await self._server.__aenter__()

        asyncio.run_coroutine_threadsafe(start(), self._loop).result(10)
        self.url = str(self._server.url).rstrip("/")
        return self

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            assert self._server is not None
            await self._server.__aexit__(None, None, None)
            await self.emulator.__aexit__(None, None, None)

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def call(self, fn: Callable[[kmock.ObjectsArray], T]) -> T:
        async def run() -> T:
            async with self.emulator._lock:
                return fn(self.emulator.objects)

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(10)

    # -- object helpers (thread-safe) ----------------------------------------------------------

    def put(self, resource: kmock.resource, obj: Mapping[str, Any]) -> None:
        meta = obj["metadata"]
        key = (resource, meta.get("namespace"), meta["name"])

        def put(objects: kmock.ObjectsArray) -> None:
            if key in objects:
                objects[key].create(copy.deepcopy(dict(obj)))
            else:
                objects[key] = copy.deepcopy(dict(obj))

        self.call(put)

    def get(self, resource: kmock.resource, namespace: str, name: str) -> dict[str, Any] | None:
        def get(objects: kmock.ObjectsArray) -> dict[str, Any] | None:
            key = (resource, namespace, name)
            if key not in objects or objects[key].deleted:
                return None
            return copy.deepcopy(objects[key].raw)

        return self.call(get)

    def delete(self, resource: kmock.resource, namespace: str, name: str) -> None:
        self.call(lambda objects: objects[resource, namespace, name].delete())

    def items(self, resource: kmock.resource, namespace: str) -> list[dict[str, Any]]:
        def items(objects: kmock.ObjectsArray) -> list[dict[str, Any]]:
            return [
                copy.deepcopy(obj.raw)
                for (res, ns, _), obj in objects.items()
                if res == resource and ns == namespace and not obj.deleted
            ]

        return self.call(items)

    def patch_requests(self) -> list[Any]:
        """The bodies of the JSON patches the emulator received, in order."""
        return [
            r.data
            for r in self.emulator
            if r.method == enums.method.PATCH
            and r.headers.get("Content-Type", "").startswith("application/json-patch+json")
        ]


class FakeRayOperator:
    """Stands in for KubeRay's reconciler of one RayCluster on the emulator (see the module)."""

    RECLAIM_NOTICE_S = 30.0

    def __init__(
        self, kube: EmulatedKubernetes, *, namespace: str, name: str, clock: FakeClock
    ) -> None:
        self.kube, self.namespace, self.name, self.clock = kube, namespace, name, clock
        self._serial = itertools.count()
        self._deadlines: dict[str, float] = {}
        self.phase = "Running"
        """Phase of the pods it creates (``Pending`` to model pods waiting for a node)."""

    def pods(self, group: str | None = None) -> list[dict[str, Any]]:
        pods = self.kube.items(PODS, self.namespace)
        return [
            p
            for p in pods
            if p["metadata"]["labels"].get(CLUSTER_LABEL) == self.name
            and (group is None or p["metadata"]["labels"].get(GROUP_LABEL) == group)
        ]

    def names(self, group: str) -> list[str]:
        return sorted(p["metadata"]["name"] for p in self.pods(group))

    def reconcile(self) -> None:
        """One pass of the operator: reclaims past their deadline, named deletions, counts."""
        for pod, deadline in list(self._deadlines.items()):
            if self.clock.now() >= deadline:
                del self._deadlines[pod]
                if self.kube.get(PODS, self.namespace, pod) is not None:
                    self.kube.delete(PODS, self.namespace, pod)
        cluster = self.kube.get(RAYCLUSTERS, self.namespace, self.name)
        assert cluster is not None, "the RayCluster must exist"
        changed = False
        for group in cluster["spec"]["workerGroupSpecs"]:
            name = group["groupName"]
            strategy = group.setdefault("scaleStrategy", {})
            for pod in strategy.get("workersToDelete") or []:
                if pod in self.names(name):
                    self.kube.delete(PODS, self.namespace, pod)
            if strategy.get("workersToDelete"):
                strategy["workersToDelete"] = []
                changed = True
            pods = self.names(name)
            want = group.get("replicas", 0)
            for _ in range(want - len(pods)):
                self._create(name, group)
            for pod in sorted(pods, reverse=True)[: max(0, len(pods) - want)]:
                self.kube.delete(PODS, self.namespace, pod)  # KubeRay's random deletion
        if changed:
            self.kube.put(RAYCLUSTERS, cluster)

    def start_pods(self) -> None:
        """Every Pending pod of the cluster becomes Running."""
        for pod in self.pods():
            if pod.get("status", {}).get("phase") == "Pending":
                pod["status"]["phase"] = "Running"
                self.kube.put(PODS, pod)

    def reclaim(self, pod_name: str) -> float:
        """Give a tidal pod a reclaim notice: the ``DisruptionTarget`` condition and the
        ``tideflow.io/reclaim-notice`` annotation; the pod is gone once the clock passes the
        deadline (30 s), at the next :meth:`reconcile`. Returns the deadline."""
        pod = self.kube.get(PODS, self.namespace, pod_name)
        assert pod is not None and pod["metadata"]["labels"].get(TIDAL_LABEL) == "true", pod_name
        deadline = self.clock.now() + self.RECLAIM_NOTICE_S
        pod["metadata"].setdefault("annotations", {})[RECLAIM_ANNOTATION] = str(deadline)
        pod.setdefault("status", {}).setdefault("conditions", []).append(
            {"type": "DisruptionTarget", "status": "True", "reason": "PreemptionByCloud"}
        )
        self.kube.put(PODS, pod)
        self._deadlines[pod_name] = deadline
        return deadline

    def _create(self, group_name: str, group: Mapping[str, Any]) -> None:
        labels = dict(group.get("template", {}).get("metadata", {}).get("labels") or {})
        labels.update(
            {CLUSTER_LABEL: self.name, GROUP_LABEL: group_name, NODE_TYPE_LABEL: "worker"}
        )
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": f"{self.name}-{group_name}-worker-{next(self._serial):04d}",
                "namespace": self.namespace,
                "labels": labels,
            },
            "status": {"phase": self.phase},
        }
        self.kube.put(PODS, pod)
