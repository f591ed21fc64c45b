"""A small Kubernetes API client: read a RayCluster, list pods by label, patch with RFC 6902.

Plain HTTP(S) through :mod:`urllib` with a bearer token and a CA bundle. The token lives only
in the ``Authorization`` header: it is never logged, and any error text that could echo it is
masked before it is raised. The client reads no environment; the CLI resolves the in-cluster
service account (see :func:`tideflow.cluster.cli.main`).
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jsonpatch

from tideflow.cluster.errors import ClusterConfigError, KubeConflictError, KubeError
from tideflow.core.observability import get_logger

__all__ = ["KubeClient", "check_json_patch", "label_selector"]

_OPS = {"add", "remove", "replace", "move", "copy", "test"}
JSON_PATCH = "application/json-patch+json"


def label_selector(labels: Mapping[str, str]) -> str:
    """``{"a": "1", "b": "2"}`` → ``"a=1,b=2"`` (equality-based label selector)."""
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def check_json_patch(ops: Sequence[Mapping[str, Any]]) -> jsonpatch.JsonPatch:
    """``ops`` as a :class:`jsonpatch.JsonPatch`, after checking that it is an RFC 6902 patch:
    a list of objects with a known ``op``, a JSON-pointer ``path`` and the members that op
    needs. Raises :class:`ValueError` naming the first bad operation."""
    if isinstance(ops, str | bytes | Mapping) or not isinstance(ops, Sequence):
        raise ValueError(f"a JSON patch is a list of operations; got {type(ops).__name__}")
    for i, op in enumerate(ops):
        if not isinstance(op, Mapping) or op.get("op") not in _OPS:
            raise ValueError(f"operation {i} must have 'op' in {sorted(_OPS)}; got {op!r}")
        path = op.get("path")
        if not isinstance(path, str) or (path and not path.startswith("/")):
            raise ValueError(f"operation {i} needs a JSON-pointer 'path'; got {path!r}")
        if op["op"] in {"add", "replace", "test"} and "value" not in op:
            raise ValueError(f"operation {i} ({op['op']}) needs a 'value'")
        if op["op"] in {"move", "copy"} and not isinstance(op.get("from"), str):
            raise ValueError(f"operation {i} ({op['op']}) needs a 'from' JSON pointer")
    json.dumps(list(ops))  # JSON-serialisable, or TypeError
    return jsonpatch.JsonPatch([dict(op) for op in ops])


class KubeClient:
    """Calls to one Kubernetes API server."""

    def __init__(
        self,
        server: str,
        *,
        token: str | None = None,
        ca_file: str | None = None,
        verify_tls: bool = True,
        timeout_s: float = 10.0,
    ) -> None:
        parsed = urllib.parse.urlparse(server)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ClusterConfigError(f"KubeClient.server must be an http(s) URL; got {server!r}")
        self.server = server.rstrip("/")
        self.timeout_s = timeout_s
        self.__token = token
        self._context: ssl.SSLContext | None = None
        if parsed.scheme == "https":
            self._context = ssl.create_default_context(cafile=ca_file)
            if not verify_tls:
                self._context.check_hostname = False
                self._context.verify_mode = ssl.CERT_NONE
        self._log = get_logger("tideflow.cluster.kube", server=self.server)

    @classmethod
    def from_files(
        cls,
        server: str,
        *,
        token_file: str | None = None,
        ca_file: str | None = None,
        verify_tls: bool = True,
        timeout_s: float = 10.0,
    ) -> KubeClient:
        """A client whose bearer token is read from ``token_file`` (stripped)."""
        token = None
        if token_file is not None:
            try:
                token = Path(token_file).read_text(encoding="utf-8").strip()
            except OSError as e:
                message = f"cannot read the Kubernetes token file {token_file!r}: {e.strerror}"
                raise ClusterConfigError(message) from None
        return cls(server, token=token, ca_file=ca_file, verify_tls=verify_tls, timeout_s=timeout_s)

    def __repr__(self) -> str:
        auth = "token=***" if self.__token else "no token"
        return f"KubeClient({self.server!r}, {auth})"

    # -- the calls -----------------------------------------------------------------------------

    def get_raycluster(self, namespace: str, name: str) -> dict[str, Any]:
        """The ``RayCluster`` ``namespace/name``."""
        return self._request("GET", _raycluster_path(namespace, name))

    def list_pods(self, namespace: str, selector: Mapping[str, str]) -> list[dict[str, Any]]:
        """Pods of ``namespace`` whose labels match ``selector``."""
        query = urllib.parse.urlencode({"labelSelector": label_selector(selector)})
        body = self._request("GET", f"/api/v1/namespaces/{namespace}/pods?{query}")
        items = body.get("items")
        if not isinstance(items, list):
            raise KubeError(f"listing pods returned no 'items' list: {str(body)[:200]}")
        return items

    def patch_raycluster(
        self, namespace: str, name: str, ops: Sequence[Mapping[str, Any]]
    ) -> dict[str, Any]:
        """Apply the RFC 6902 patch ``ops`` to ``RayCluster`` ``namespace/name``; the result.

        A failed ``test`` operation or a conflict raises :class:`KubeConflictError`."""
        try:
            patch = check_json_patch(ops)
        except (ValueError, TypeError) as e:
            raise KubeError(f"refusing to send an invalid JSON patch: {e}") from None
        return self._request(
            "PATCH",
            _raycluster_path(namespace, name),
            body=patch.to_string().encode(),
            content_type=JSON_PATCH,
        )

    # -- plumbing ------------------------------------------------------------------------------

    def _mask(self, text: str) -> str:
        return text.replace(self.__token, "***") if self.__token else text

    def _request(
        self, method: str, path: str, *, body: bytes | None = None, content_type: str = ""
    ) -> dict[str, Any]:
        request = urllib.request.Request(self.server + path, data=body, method=method)
        request.add_header("Accept", "application/json")
        if content_type:
            request.add_header("Content-Type", content_type)
        if self.__token:
            request.add_header("Authorization", f"Bearer {self.__token}")
        where = f"{method} {path.split('?', maxsplit=1)[0]}"
        try:
            with urllib.request.urlopen(
                request, timeout=self.timeout_s, context=self._context
            ) as r:
                raw = r.read()
        except urllib.error.HTTPError as e:
            raise self._http_error(where, e) from None
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            message = self._mask(f"{where} on {self.server}: no answer ({reason})")
            raise KubeError(message) from None
        try:
            data = json.loads(raw)
        except ValueError:
            message = self._mask(f"{where}: the answer is not JSON: {raw[:200]!r}")
            raise KubeError(message) from None
        if not isinstance(data, dict):
            raise KubeError(self._mask(f"{where}: expected a JSON object; got {str(data)[:200]}"))
        self._log.debug("kube.requested", method=method, path=path.split("?", maxsplit=1)[0])
        return data

    def _http_error(self, where: str, error: urllib.error.HTTPError) -> KubeError:
        try:
            status = json.loads(error.read() or b"{}")
        except ValueError:
            status = {}
        finally:
            error.close()
        if not isinstance(status, dict):
            status = {}
        reason = str(status.get("reason") or error.reason or "")
        detail = str(status.get("message") or "")[:500]
        message = self._mask(f"{where}: HTTP {error.code} {reason}: {detail}".rstrip(": "))
        if error.code == 409 or (error.code == 422 and where.startswith("PATCH")):
            return KubeConflictError(message, status=error.code, reason=reason)
        return KubeError(message, status=error.code, reason=reason)


def _raycluster_path(namespace: str, name: str) -> str:
    return f"/apis/ray.io/v1/namespaces/{namespace}/rayclusters/{name}"
