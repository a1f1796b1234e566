"""Build a KubeRay ``RayCluster`` manifest (``ray.io/v1``) from a :class:`ClusterSpec`.

:func:`build_manifest` is pure: the same spec gives the same dict, with no I/O. The cluster runs
the build step's own image, pinned by digest; its name and labels tie it to the build id and the
image digest, so a cluster found on Kubernetes can be traced back to the build that made it, and a
kept cluster can be found again for the same image (:func:`selector_for_reuse`).
"""

from __future__ import annotations

import hashlib
import re
from typing import Any, Literal

import msgspec

from mlbuild.rules.rule import Resources

__all__ = [
    "ANNOTATION_BUILD_ID",
    "ANNOTATION_IMAGE",
    "ANNOTATION_IMAGE_DIGEST",
    "LABEL_BUILD_ID",
    "LABEL_IMAGE_DIGEST",
    "LABEL_KEEP",
    "LABEL_MANAGED_BY",
    "LABEL_SHAPE",
    "MANAGED_BY",
    "ENV_CONTEXT",
    "ENV_IMAGE",
    "ENV_NAMESPACE",
    "MAX_CLUSTER_NAME_LENGTH",
    "ClusterSpec",
    "HeadGroup",
    "HeadPorts",
    "NodeResources",
    "WorkerGroup",
    "build_manifest",
    "cluster_name",
    "cpu_quantity",
    "digest_label_value",
    "head_service_name",
    "image_digest",
    "label_value",
    "memory_quantity",
    "node_resources",
    "selector_for_reuse",
    "spec_shape",
]

LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY = "mlbuild"
LABEL_BUILD_ID = "mlbuild.dev/build-id"
LABEL_IMAGE_DIGEST = "mlbuild.dev/image-digest"
LABEL_SHAPE = "mlbuild.dev/shape"
LABEL_KEEP = "mlbuild.dev/keep"
ANNOTATION_BUILD_ID = "mlbuild.dev/build-id"
ANNOTATION_IMAGE = "mlbuild.dev/image"
ANNOTATION_IMAGE_DIGEST = "mlbuild.dev/image-digest"

# KubeRay rejects RayCluster names longer than 53 characters (it derives service names such as
# "<name>-serve-svc" that must stay within the 63-character DNS label limit) and requires a
# DNS-1035 label (it must start with a letter).
MAX_CLUSTER_NAME_LENGTH = 53

# Set on the pods of a --executor kuberay build's cluster: a step's own ``with RayCluster(...)``
# (remote/ray_cluster.py) then opens its cluster on Kubernetes too.
ENV_NAMESPACE = "MLBUILD_KUBERAY_NAMESPACE"
ENV_IMAGE = "MLBUILD_KUBERAY_IMAGE"
ENV_CONTEXT = "MLBUILD_KUBERAY_CONTEXT"

_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
# repo[:tag]@sha256:<hex>; the repository part is checked loosely (registry host, port, path).
_PINNED_REF = re.compile(r"^[a-z0-9][a-z0-9._:/-]*(:[\w][\w.-]{0,127})?@(sha256:[0-9a-f]{64})$")
_QUANTITY = re.compile(
    r"^(\+)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_PORT_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_INT32_MAX = 2**31 - 1


class NodeResources(msgspec.Struct, frozen=True, kw_only=True):
    """What one Ray node (pod) gets: requests and limits are set equal (Guaranteed QoS)."""

    cpus: float = 1.0
    """CPU cores; fractions down to a millicore (0.5 -> "500m")."""
    memory: str | int = "2Gi"
    """A Kubernetes quantity ("4Gi", "512M") or a number of bytes."""
    gpus: int = 0
    """NVIDIA GPUs (``nvidia.com/gpu``)."""


def node_resources(resources: Resources, *, min_cpus: float = 1.0, min_memory: str = "2Gi") -> NodeResources:
    """A pod big enough for one step with ``resources`` (at least ``min_cpus``, ``min_memory``)."""
    return NodeResources(
        cpus=max(resources.cpus, min_cpus),
        memory=resources.memory or min_memory,
        gpus=resources.gpus,
    )


class HeadPorts(msgspec.Struct, frozen=True, kw_only=True):
    """Container ports of the head; KubeRay builds the ``<name>-head-svc`` service from them."""

    gcs: int = 6379
    dashboard: int = 8265
    client: int = 10001
    extra: dict[str, int] = {}
    """More named ports (name: a lowercase IANA service name of at most 15 characters)."""


class HeadGroup(msgspec.Struct, frozen=True, kw_only=True):
    resources: NodeResources = NodeResources()
    ray_start_params: dict[str, str] = {}
    ports: HeadPorts = HeadPorts()


class WorkerGroup(msgspec.Struct, frozen=True, kw_only=True):
    group_name: str = "workers"
    replicas: int = 1
    min_replicas: int = 0
    max_replicas: int | None = None
    """Defaults to ``replicas`` (no growth unless autoscaling is on and this is raised)."""
    resources: NodeResources = NodeResources()
    ray_start_params: dict[str, str] = {}


class ClusterSpec(msgspec.Struct, frozen=True, kw_only=True):
    """Everything needed to make the RayCluster of one build."""

    build_id: str
    image: str
    """The step's image pinned by digest: ``repo[:tag]@sha256:<hex>``, or an image id
    ``sha256:<hex>`` (only usable when the image is already present on the nodes)."""
    ray_version: str
    namespace: str = "default"
    head: HeadGroup = HeadGroup()
    workers: tuple[WorkerGroup, ...] = ()
    enable_in_tree_autoscaling: bool = False
    keep: bool = False
    """Mark the cluster as kept after the build (``mlbuild.dev/keep=true``), so that a later build
    with the same image may reuse it. Clusters not marked kept are never reused."""
    name: str | None = None
    """Override the derived cluster name (must be a DNS-1035 label of at most 53 characters)."""
    env: dict[str, str] = {}
    secret_env: dict[str, str] = {}
    """Variable -> key in ``secret``: each becomes ``valueFrom.secretKeyRef`` (optional), so the
    manifest names the Secret and never holds a credential."""
    secret: str | None = None
    service_account: str | None = None
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] | None = None
    """Default: ``IfNotPresent`` for a ``repo@sha256:`` reference, ``Never`` for an image id."""
    image_pull_secrets: tuple[str, ...] = ()
    extra_labels: dict[str, str] = {}


def _short_hash(text: str, n: int = 8) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:n]


def image_digest(image: str) -> str:
    """The ``sha256:<hex>`` digest that pins ``image``; ValueError if it is not pinned."""
    if _DIGEST.match(image):
        return image
    m = _PINNED_REF.match(image)
    if not m:
        raise ValueError(
            f"image {image!r} is not pinned by digest: use 'repository@sha256:<64 hex>' "
            "or an image id 'sha256:<64 hex>' (a tag alone can move)"
        )
    return m.group(2)


def label_value(text: str) -> str:
    """``text`` made a valid label value (<= 63 chars of alnum, '-', '_', '.', alnum at both
    ends). A value that had to change gets a hash of the original, so distinct inputs stay
    distinct."""
    if len(text) <= 63 and _LABEL_VALUE.match(text):
        return text
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "-", text)
    cleaned = re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", cleaned)
    suffix = _short_hash(text)
    head = re.sub(r"[^A-Za-z0-9]+$", "", cleaned[: 63 - len(suffix) - 1])
    return f"{head}-{suffix}" if head else suffix


def digest_label_value(digest: str) -> str:
    """The label value for an image digest: ``sha256-`` and the first 56 hex digits (63 chars;
    the full digest is kept in the ``mlbuild.dev/image-digest`` annotation)."""
    if not _DIGEST.match(digest):
        raise ValueError(f"not an image digest: {digest!r}")
    return "sha256-" + digest[len("sha256:") :][:56]


def cluster_name(build_id: str, digest: str) -> str:
    """A DNS-1035 label of at most 53 characters derived from the build id and image digest:
    ``mlb-<build id slug>-<12 hex of digest>-<8 hex of hash(build id)>``."""
    if not _DIGEST.match(digest):
        raise ValueError(f"not an image digest: {digest!r}")
    digest_part = digest[len("sha256:") :][:12]
    id_hash = _short_hash(build_id)
    budget = MAX_CLUSTER_NAME_LENGTH - len("mlb-") - len(digest_part) - len(id_hash) - 2
    slug = re.sub(r"[^a-z0-9]+", "-", build_id.lower()).strip("-")[:budget].strip("-")
    parts = ["mlb", slug, digest_part, id_hash] if slug else ["mlb", digest_part, id_hash]
    return "-".join(parts)


def head_service_name(name: str) -> str:
    """The head service KubeRay creates for cluster ``name``."""
    return f"{name}-head-svc"


def cpu_quantity(cpus: float) -> str:
    """CPU cores as a Kubernetes quantity: 2 -> "2", 0.5 -> "500m"."""
    if isinstance(cpus, bool) or not isinstance(cpus, int | float) or not cpus > 0:
        raise ValueError(f"cpus must be a positive number, got {cpus!r}")
    millis = round(cpus * 1000)
    if millis <= 0 or abs(millis - cpus * 1000) > 1e-6 * max(1.0, cpus * 1000):
        raise ValueError(f"cpus={cpus!r} is finer than a millicore")
    return str(millis // 1000) if millis % 1000 == 0 else f"{millis}m"


def memory_quantity(memory: str | int) -> str:
    """Memory as a Kubernetes quantity string; an int is a number of bytes."""
    if isinstance(memory, bool):
        raise ValueError(f"memory must be a quantity or a byte count, got {memory!r}")
    if isinstance(memory, int):
        if memory <= 0:
            raise ValueError(f"memory must be positive, got {memory!r}")
        return str(memory)
    if not isinstance(memory, str) or not _QUANTITY.match(memory):
        raise ValueError(f"memory {memory!r} is not a Kubernetes quantity (e.g. '4Gi', '512M')")
    if not re.search(r"[1-9]", memory.split("e")[0].split("E")[0]):
        raise ValueError(f"memory must be positive, got {memory!r}")
    return memory


def _resources(res: NodeResources) -> dict[str, dict[str, str]]:
    amounts: dict[str, str] = {
        "cpu": cpu_quantity(res.cpus),
        "memory": memory_quantity(res.memory),
    }
    if isinstance(res.gpus, bool) or not isinstance(res.gpus, int) or res.gpus < 0:
        raise ValueError(f"gpus must be a non-negative integer, got {res.gpus!r}")
    if res.gpus:
        amounts["nvidia.com/gpu"] = str(res.gpus)
    # Equal requests and limits: Guaranteed QoS, and what KubeRay derives Ray's resources from.
    return {"requests": dict(amounts), "limits": dict(amounts)}


def _head_ports(ports: HeadPorts) -> list[dict[str, Any]]:
    named = {"gcs-server": ports.gcs, "dashboard": ports.dashboard, "client": ports.client}
    for name, port in ports.extra.items():
        if name in named:
            raise ValueError(f"head port name {name!r} is already used")
        named[name] = port
    seen: set[int] = set()
    out: list[dict[str, Any]] = []
    for name, port in named.items():
        if (
            len(name) > 15
            or not _PORT_NAME.match(name)
            or "--" in name
            or not re.search("[a-z]", name)
        ):
            raise ValueError(f"port name {name!r} is not an IANA service name (<= 15 chars)")
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise ValueError(f"port {name!r}: {port!r} is not in 1..65535")
        if port in seen:
            raise ValueError(f"port {port} is used twice on the head")
        seen.add(port)
        out.append({"containerPort": port, "name": name, "protocol": "TCP"})
    return out


def _container(
    spec: ClusterSpec, name: str, res: NodeResources, ports: list[dict[str, Any]] | None
) -> dict[str, Any]:
    pull = spec.image_pull_policy
    if pull is None:
        pull = "Never" if _DIGEST.match(spec.image) else "IfNotPresent"
    container: dict[str, Any] = {
        "name": name,
        "image": spec.image,
        "imagePullPolicy": pull,
        "resources": _resources(res),
    }
    if ports:
        container["ports"] = ports
    env: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in sorted(spec.env.items())]
    if spec.secret:
        env += [{"name": k, "valueFrom": {"secretKeyRef": {"name": spec.secret, "key": key, "optional": True}}}
                for k, key in sorted(spec.secret_env.items())]
    if env:
        container["env"] = env
    return container


def _pod_template(
    spec: ClusterSpec, container: dict[str, Any], labels: dict[str, str]
) -> dict[str, Any]:
    pod_spec: dict[str, Any] = {"containers": [container]}
    if spec.service_account:
        pod_spec["serviceAccountName"] = spec.service_account
    if spec.image_pull_secrets:
        pod_spec["imagePullSecrets"] = [{"name": s} for s in spec.image_pull_secrets]
    return {"metadata": {"labels": dict(labels)}, "spec": pod_spec}


def _check_ray_start_params(where: str, params: dict[str, str]) -> dict[str, str]:
    for key, value in params.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise ValueError(f"{where}: rayStartParams must map strings to strings ({key!r})")
    return dict(params)


def spec_shape(spec: ClusterSpec) -> str:
    """A hash of what makes two clusters interchangeable (image, Ray version, node groups,
    ports, autoscaling, pod settings) but not of the build id, name or keep flag."""
    shaped = msgspec.structs.replace(spec, build_id="", name=None, keep=False, extra_labels={})
    return _short_hash(msgspec.json.encode(shaped, order="deterministic").decode(), 16)


def selector_for_reuse(digest: str, shape: str | None = None) -> str:
    """The label selector of kept mlbuild clusters for ``digest`` (and ``shape`` if given)."""
    parts = [
        f"{LABEL_MANAGED_BY}={MANAGED_BY}",
        f"{LABEL_IMAGE_DIGEST}={digest_label_value(digest)}",
        f"{LABEL_KEEP}=true",
    ]
    if shape is not None:
        parts.append(f"{LABEL_SHAPE}={shape}")
    return ",".join(parts)


def _validate_spec(spec: ClusterSpec) -> None:
    if not isinstance(spec.build_id, str) or not spec.build_id:
        raise ValueError("build_id must be a non-empty string")
    if len(spec.namespace) > 63 or not _DNS1123_LABEL.match(spec.namespace):
        raise ValueError(f"namespace {spec.namespace!r} is not a DNS-1123 label")
    if not re.match(r"^\d+\.\d+(\.\d+)?([.+-][0-9A-Za-z.+-]*)?$", spec.ray_version):
        raise ValueError(f"ray_version {spec.ray_version!r} is not a Ray version like '2.52.0'")
    if spec.name is not None and (
        len(spec.name) > MAX_CLUSTER_NAME_LENGTH
        or not re.match(r"^[a-z]([-a-z0-9]*[a-z0-9])?$", spec.name)
    ):
        raise ValueError(
            f"cluster name {spec.name!r} must be a DNS-1035 label of at most "
            f"{MAX_CLUSTER_NAME_LENGTH} characters"
        )
    groups: set[str] = set()
    for group in spec.workers:
        where = f"worker group {group.group_name!r}"
        if len(group.group_name) > 63 or not _DNS1123_LABEL.match(group.group_name):
            raise ValueError(f"{where}: name must be a DNS-1123 label")
        if group.group_name in groups:
            raise ValueError(f"{where}: defined twice")
        groups.add(group.group_name)
        hi = group.replicas if group.max_replicas is None else group.max_replicas
        for label, n in (
            ("replicas", group.replicas),
            ("min_replicas", group.min_replicas),
            ("max_replicas", hi),
        ):
            if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= _INT32_MAX:
                raise ValueError(f"{where}: {label}={n!r} must be an integer in 0..{_INT32_MAX}")
        if not group.min_replicas <= group.replicas <= hi:
            raise ValueError(
                f"{where}: need min_replicas <= replicas <= max_replicas, got "
                f"{group.min_replicas} <= {group.replicas} <= {hi}"
            )
    for key, value in spec.extra_labels.items():
        if key.startswith("mlbuild.dev/") or key == LABEL_MANAGED_BY:
            raise ValueError(f"label {key!r} is reserved for mlbuild")
        if len(value) > 63 or not _LABEL_VALUE.match(value):
            raise ValueError(f"label {key!r}: {value!r} is not a valid label value")


def build_manifest(spec: ClusterSpec) -> dict[str, Any]:
    """The ``RayCluster`` manifest for ``spec`` (a plain dict, ready for the Kubernetes API).

    Raises ValueError for a spec no cluster could run (an unpinned image, a bad quantity,
    inconsistent replica counts, a bad name)."""
    _validate_spec(spec)
    digest = image_digest(spec.image)
    name = spec.name or cluster_name(spec.build_id, digest)
    labels: dict[str, str] = {
        **spec.extra_labels,
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_BUILD_ID: label_value(spec.build_id),
        LABEL_IMAGE_DIGEST: digest_label_value(digest),
        LABEL_SHAPE: spec_shape(spec),
    }
    if spec.keep:
        labels[LABEL_KEEP] = "true"
    pod_labels = {k: v for k, v in labels.items() if k != LABEL_KEEP}

    head_params = {"dashboard-host": "0.0.0.0"}
    ports = spec.head.ports
    if ports.gcs != 6379:
        head_params["port"] = str(ports.gcs)
    if ports.dashboard != 8265:
        head_params["dashboard-port"] = str(ports.dashboard)
    if ports.client != 10001:
        head_params["ray-client-server-port"] = str(ports.client)
    head_params.update(_check_ray_start_params("head", spec.head.ray_start_params))
    head_container = _container(spec, "ray-head", spec.head.resources, _head_ports(ports))

    workers: list[dict[str, Any]] = []
    for group in spec.workers:
        workers.append(
            {
                "groupName": group.group_name,
                "replicas": group.replicas,
                "minReplicas": group.min_replicas,
                "maxReplicas": group.replicas if group.max_replicas is None else group.max_replicas,
                "rayStartParams": _check_ray_start_params(group.group_name, group.ray_start_params),
                "template": _pod_template(
                    spec, _container(spec, "ray-worker", group.resources, None), pod_labels
                ),
            }
        )

    cluster_spec: dict[str, Any] = {
        "rayVersion": spec.ray_version,
        "enableInTreeAutoscaling": spec.enable_in_tree_autoscaling,
        "headGroupSpec": {
            "rayStartParams": head_params,
            "template": _pod_template(spec, head_container, pod_labels),
        },
    }
    if workers:
        cluster_spec["workerGroupSpecs"] = workers
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayCluster",
        "metadata": {
            "name": name,
            "namespace": spec.namespace,
            "labels": labels,
            "annotations": {
                ANNOTATION_BUILD_ID: spec.build_id,
                ANNOTATION_IMAGE: spec.image,
                ANNOTATION_IMAGE_DIGEST: digest,
            },
        },
        "spec": cluster_spec,
    }
