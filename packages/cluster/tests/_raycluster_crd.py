"""Validate objects against the RayCluster CRD's v1 OpenAPI schema with ``jsonschema``.

The CRD (KubeRay's ``ray.io_rayclusters.yaml``, vendored in ``crd/``) holds an OpenAPI v3
*structural* schema. It is translated here into JSON Schema (draft 2020-12), as KubeRay's
``scripts/openapi2jsonschema.py`` does, with these rules:

* ``x-kubernetes-int-or-string: true`` → ``anyOf: [integer, string]`` (the CRD already lists
  that ``anyOf``; the marker is dropped).
* ``nullable: true`` → ``null`` is allowed too.
* ``format: int32``/``int64`` → the integer's range, which ``jsonschema`` does not check.
* Objects with ``properties`` and no ``additionalProperties`` get
  ``additionalProperties: false`` unless ``x-kubernetes-preserve-unknown-fields`` is set:
  the API server would *prune* an unknown field silently, which hides a typo, so the tests
  reject it (what ``kubectl apply --validate=strict`` does).
* The other ``x-kubernetes-*`` markers (list/map types and keys) describe merging, not
  validity, and are dropped; the two CEL rules (``x-kubernetes-validations``, on
  ``managedBy`` and ``gcsFaultToleranceOptions.backend``) are not evaluated — the renderer
  sets neither field.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import yaml

CRD = Path(__file__).resolve().parent / "crd" / "ray.io_rayclusters.yaml"  # see crd/SOURCE.md
_RANGES = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}


def _crd_path() -> Path:
    if not CRD.exists():
        raise FileNotFoundError(f"the RayCluster CRD is not at {CRD.resolve()}")
    return CRD.resolve()


def to_json_schema(node: Any) -> Any:
    """One OpenAPI v3 structural schema node as JSON Schema (see the module docs)."""
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key.startswith("x-kubernetes-") or key == "nullable":
            continue
        if key == "properties":
            out[key] = {name: to_json_schema(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties", "not"):
            out[key] = to_json_schema(value)
        elif key in ("anyOf", "allOf", "oneOf"):
            out[key] = [to_json_schema(sub) for sub in value]
        else:
            out[key] = value
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
    if node.get("type") == "integer" and node.get("format") in _RANGES:
        low, high = _RANGES[node["format"]]
        out.setdefault("minimum", low)
        out.setdefault("maximum", high)
    if (
        "properties" in node
        and "additionalProperties" not in node
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    return out


@functools.cache
def raycluster_validator() -> jsonschema.protocols.Validator:
    """A validator of whole ``RayCluster`` objects against the CRD's v1 schema."""
    crd = yaml.safe_load(_crd_path().read_text(encoding="utf-8"))
    (v1,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    schema = to_json_schema(v1["schema"]["openAPIV3Schema"])
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def crd_errors(obj: Any) -> list[str]:
    """Every way ``obj`` breaks the schema, as ``path: message`` lines (empty when valid)."""
    errors = sorted(raycluster_validator().iter_errors(obj), key=lambda e: list(e.absolute_path))
    return ["/".join(map(str, e.absolute_path)) + ": " + e.message for e in errors]
