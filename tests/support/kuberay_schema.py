"""Validate RayCluster manifests the way a Kubernetes API server with KubeRay would.

The package never knows where a CRD file lives: callers (tests, a ``--check-manifest`` flag)
pass the path of a ``CustomResourceDefinition`` YAML, for example KubeRay's
``ray.io_rayclusters.yaml``. Its ``openAPIV3Schema`` is converted to a JSON Schema (Draft 7)
that honours the OpenAPI / Kubernetes extensions the API server applies:

- ``x-kubernetes-int-or-string``: the value may be an integer or a string (quantity patterns
  apply to the string form only);
- ``nullable: true``: ``null`` is accepted;
- ``format: int32`` / ``int64``: the integer must fit;
- ``x-kubernetes-list-type: set`` / ``map`` (with ``x-kubernetes-list-map-keys``): no two items
  may be equal / share the same key tuple (missing keys take the schema default, as the server
  defaults them before checking);
- ``x-kubernetes-preserve-unknown-fields``: unknown fields are kept.

With ``strict=True`` (the default) an object schema with ``properties`` rejects unknown fields,
as ``kubectl apply --validate=strict`` / ``fieldValidation=Strict`` does, so a misspelt field in a
generated manifest fails instead of being silently pruned. CEL rules
(``x-kubernetes-validations``) are not evaluated; in the RayCluster CRD they only guard
``managedBy`` and ``gcsFaultToleranceOptions``, which mlbuild never sets.

On top of the schema, :meth:`CrdSchema.errors` checks the object metadata rules the API server
applies to every object (name, namespace, label keys and values) and, with ``kuberay=True``, the
name rule KubeRay's own validation adds (a DNS-1035 label of at most 53 characters, so that the
``-head-svc`` / ``-serve-svc`` service names derived from it stay within 63).
"""

from __future__ import annotations

import copy
import functools
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import jsonschema
import jsonschema.validators
import yaml

__all__ = [
    "DNS1035_LABEL",
    "DNS1123_LABEL",
    "DNS1123_SUBDOMAIN",
    "KUBERAY_MAX_NAME_LENGTH",
    "LABEL_VALUE",
    "CrdSchema",
    "ManifestInvalid",
    "label_key_problems",
    "label_value_problems",
    "load_crd",
    "openapi_to_jsonschema",
]

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
# A label value, and the name part of a label key (both at most 63 characters; a value may be "").
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
KUBERAY_MAX_NAME_LENGTH = 53

_INT_RANGES = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}


class ManifestInvalid(ValueError):
    """A manifest that the API server (or KubeRay) would reject; ``problems`` lists why."""

    def __init__(self, kind: str, name: str, problems: list[str]) -> None:
        self.problems = problems
        shown = "\n  - ".join(problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        super().__init__(f"{kind} {name!r} is invalid:\n  - {shown}{more}")


def _yaml_load_all(text: str) -> list[Any]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return [doc for doc in yaml.load_all(text, Loader=loader) if doc is not None]


@functools.lru_cache(maxsize=8)
def _load_crd_cached(path: str) -> dict[str, Any]:
    docs = _yaml_load_all(Path(path).read_text(encoding="utf-8"))
    crds = [d for d in docs if isinstance(d, dict) and d.get("kind") == "CustomResourceDefinition"]
    if len(crds) != 1:
        raise ValueError(f"{path}: expected one CustomResourceDefinition, found {len(crds)}")
    crd: dict[str, Any] = crds[0]
    return crd


def load_crd(path: str | Path) -> dict[str, Any]:
    """Load a CustomResourceDefinition from a YAML file (a deep copy; safe to modify)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"CRD file not found: {p}")
    return copy.deepcopy(_load_crd_cached(str(p.resolve())))


def openapi_to_jsonschema(schema: Any, *, strict: bool = True) -> Any:
    """Convert a Kubernetes structural OpenAPI v3 schema to an equivalent Draft 7 JSON Schema."""
    if isinstance(schema, list):
        return [openapi_to_jsonschema(s, strict=strict) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in ("properties", "patternProperties", "definitions"):
            out[key] = {k: openapi_to_jsonschema(v, strict=strict) for k, v in value.items()}
        elif key in ("items", "additionalProperties", "not", "anyOf", "allOf", "oneOf"):
            out[key] = openapi_to_jsonschema(value, strict=strict)
        else:
            out[key] = value
    if out.get("x-kubernetes-int-or-string") and "anyOf" not in out and "type" not in out:
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    fmt = out.get("format")
    if out.get("type") == "integer" and isinstance(fmt, str) and fmt in _INT_RANGES:
        lo, hi = _INT_RANGES[fmt]
        out.setdefault("minimum", lo)
        out.setdefault("maximum", hi)
    if out.pop("nullable", False):
        t = out.get("type")
        if isinstance(t, str):
            out["type"] = [t, "null"]
        elif "anyOf" in out:
            out["anyOf"] = [*out["anyOf"], {"type": "null"}]
    if (
        strict
        and "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def _list_type(
    validator: Any, list_type: Any, instance: Any, schema: Mapping[str, Any]
) -> Iterator[jsonschema.ValidationError]:
    if not validator.is_type(instance, "array"):
        return
    if list_type == "set":
        seen: list[Any] = []
        for item in instance:
            if item in seen:
                yield jsonschema.ValidationError(f"duplicate entry {item!r} in a list of type set")
            seen.append(item)
    elif list_type == "map":
        keys: list[str] = list(schema.get("x-kubernetes-list-map-keys", []))
        item_props = schema.get("items", {}).get("properties", {})
        seen_keys: set[str] = set()
        for item in instance:
            if not isinstance(item, dict):
                continue
            tup = tuple(item.get(k, item_props.get(k, {}).get("default")) for k in keys)
            rendered = repr(tup)
            if rendered in seen_keys:
                shown = ", ".join(f"{k}={v!r}" for k, v in zip(keys, tup, strict=True))
                yield jsonschema.ValidationError(f"duplicate entries for key ({shown})")
            seen_keys.add(rendered)


_K8sValidator: Any = jsonschema.validators.extend(
    jsonschema.Draft7Validator, {"x-kubernetes-list-type": _list_type}
)


def label_key_problems(key: str) -> list[str]:
    """Why ``key`` is not a valid Kubernetes label/annotation key (empty list if it is)."""
    problems: list[str] = []
    prefix, _, name = key.rpartition("/")
    if prefix:
        if len(prefix) > 253 or not DNS1123_SUBDOMAIN.match(prefix):
            problems.append(f"label key {key!r}: prefix must be a DNS-1123 subdomain")
    if not name or len(name) > 63 or not LABEL_VALUE.match(name):
        problems.append(
            f"label key {key!r}: name part must be 1-63 alphanumerics, '-', '_' or '.', "
            "starting and ending with an alphanumeric"
        )
    return problems


def label_value_problems(key: str, value: Any) -> list[str]:
    """Why ``value`` is not a valid value for label ``key`` (empty list if it is)."""
    if not isinstance(value, str):
        return [f"label {key!r}: value must be a string, got {type(value).__name__}"]
    if len(value) > 63 or not LABEL_VALUE.match(value):
        return [
            f"label {key!r}: value {value!r} must be at most 63 alphanumerics, '-', '_' or '.', "
            "starting and ending with an alphanumeric"
        ]
    return []


def _path(error: jsonschema.ValidationError) -> str:
    parts = [f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path]
    return "".join(parts) or "."


class CrdSchema:
    """The validation a Kubernetes API server applies to one version of a custom resource."""

    def __init__(
        self,
        crd_path: str | Path,
        version: str = "v1",
        *,
        strict: bool = True,
        kuberay: bool = True,
    ) -> None:
        crd = load_crd(crd_path)
        spec = crd["spec"]
        self.group: str = spec["group"]
        self.kind: str = spec["names"]["kind"]
        self.plural: str = spec["names"]["plural"]
        self.version = version
        self.kuberay = kuberay
        versions = {v["name"]: v for v in spec["versions"]}
        if version not in versions:
            raise ValueError(f"{crd_path}: no version {version!r} (has {sorted(versions)})")
        self.openapi_schema: dict[str, Any] = versions[version]["schema"]["openAPIV3Schema"]
        self.json_schema: dict[str, Any] = openapi_to_jsonschema(self.openapi_schema, strict=strict)
        _K8sValidator.check_schema(self.json_schema)
        self._validator = _K8sValidator(self.json_schema)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"

    def schema_errors(self, manifest: Any) -> list[str]:
        """Errors from the CRD's structural schema alone, as ``path: message`` strings."""
        errors = sorted(self._validator.iter_errors(manifest), key=lambda e: list(e.absolute_path))
        return [f"{_path(e)}: {e.message}" for e in errors]

    def metadata_errors(self, manifest: Any) -> list[str]:
        """Errors the API server's object-meta checks (and KubeRay's name check) would give."""
        problems: list[str] = []
        if not isinstance(manifest, dict):
            return ["manifest must be an object"]
        if manifest.get("apiVersion") != self.api_version:
            problems.append(f".apiVersion: must be {self.api_version!r}")
        if manifest.get("kind") != self.kind:
            problems.append(f".kind: must be {self.kind!r}")
        meta = manifest.get("metadata")
        if not isinstance(meta, dict):
            return [*problems, ".metadata: must be an object"]
        name = meta.get("name")
        if not isinstance(name, str) or not name:
            problems.append(".metadata.name: required")
        else:
            if len(name) > 253 or not DNS1123_SUBDOMAIN.match(name):
                problems.append(f".metadata.name: {name!r} is not a DNS-1123 subdomain")
            if self.kuberay and (
                len(name) > KUBERAY_MAX_NAME_LENGTH or not DNS1035_LABEL.match(name)
            ):
                problems.append(
                    f".metadata.name: {name!r} must be a DNS-1035 label of at most "
                    f"{KUBERAY_MAX_NAME_LENGTH} characters (KubeRay)"
                )
        namespace = meta.get("namespace")
        if namespace is not None and (
            not isinstance(namespace, str)
            or len(namespace) > 63
            or not DNS1123_LABEL.match(namespace)
        ):
            problems.append(f".metadata.namespace: {namespace!r} is not a DNS-1123 label")
        for field in ("labels", "annotations"):
            entries = meta.get(field) or {}
            if not isinstance(entries, dict):
                problems.append(f".metadata.{field}: must be an object")
                continue
            for key, value in entries.items():
                problems.extend(f".metadata.{field}: {p}" for p in label_key_problems(str(key)))
                if field == "labels":
                    problems.extend(
                        f".metadata.labels: {p}" for p in label_value_problems(key, value)
                    )
                elif not isinstance(value, str):
                    problems.append(f".metadata.annotations: {key!r} must be a string")
        return problems

    def errors(self, manifest: Any) -> list[str]:
        """Every reason the API server would reject ``manifest`` (empty if it would accept it)."""
        return self.metadata_errors(manifest) + self.schema_errors(manifest)

    def validate(self, manifest: Any) -> None:
        """Raise :class:`ManifestInvalid` if the API server would reject ``manifest``."""
        problems = self.errors(manifest)
        if problems:
            name = (
                manifest.get("metadata", {}).get("name", "?") if isinstance(manifest, dict) else "?"
            )
            raise ManifestInvalid(self.kind, str(name), problems)
