"""Create, wait for, reach and delete a build's RayCluster through the Kubernetes API.

Every function takes an optional ``api_client`` (a ``kubernetes.client.ApiClient``); by default
one is made from the kubeconfig context named ``kube_context`` (or the in-cluster service
account when there is no kubeconfig). Tests point a real client at a fake API server.

The usual entry point is :func:`managed_cluster`::

    with managed_cluster(spec, kube_context="prod", namespace="ml") as handle:
        address = head_address(handle).url        # "ray://...:10001"
        ...                                       # run the build's steps there

It deletes the cluster on every exit (an exception, Ctrl-C) unless ``keep=True``.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import kubernetes
import msgspec
import urllib3
from kubernetes.client.rest import ApiException

from mlbuild.remote.kuberay.manifest import (
    ANNOTATION_IMAGE_DIGEST,
    ClusterSpec,
    build_manifest,
    head_service_name,
    image_digest,
    selector_for_reuse,
    spec_shape,
)

__all__ = [
    "GROUP",
    "PLURAL",
    "VERSION",
    "ClusterCreateError",
    "ClusterDeleteError",
    "ClusterHandle",
    "ClusterNotReady",
    "ClusterStatus",
    "HeadAddress",
    "HeadPodFailed",
    "KubeRayError",
    "cluster_status",
    "create_cluster",
    "delete_cluster",
    "find_reusable_cluster",
    "head_address",
    "make_api_client",
    "managed_cluster",
    "wait_ready",
]

log = logging.getLogger(__name__)

GROUP = "ray.io"
VERSION = "v1"
PLURAL = "rayclusters"
REQUEST_TIMEOUT_S = 30.0
DEFAULT_CLIENT_PORT = 10001
# Waiting reasons of the head container that will not fix themselves.
FATAL_WAITING_REASONS = frozenset(
    {"InvalidImageName", "ErrImageNeverPull", "CreateContainerConfigError", "CreateContainerError"}
)


class KubeRayError(RuntimeError):
    """Base of the errors of the KubeRay backend."""


class ClusterCreateError(KubeRayError):
    pass


class ClusterDeleteError(KubeRayError):
    pass


class ClusterNotReady(KubeRayError):
    """The cluster did not become ready; ``status`` is the last status seen (None if none)."""

    def __init__(
        self, message: str, name: str, namespace: str, status: ClusterStatus | None
    ) -> None:
        super().__init__(message)
        self.name = name
        self.namespace = namespace
        self.status = status


class HeadPodFailed(ClusterNotReady):
    """The head pod failed (evicted, an image that cannot run, ...): waiting longer won't help."""


class ClusterStatus(msgspec.Struct, frozen=True, kw_only=True):
    """A snapshot of a RayCluster's ``status`` and its head pod."""

    state: str | None = None
    reason: str | None = None
    conditions: tuple[str, ...] = ()
    """``Type=Status (Reason)`` of each condition, e.g. ``HeadPodReady=True (HeadPodRunningAndReady)``."""
    desired_workers: int | None = None
    ready_workers: int | None = None
    head_pod: str | None = None
    head_phase: str | None = None
    head_ready: bool = False
    head_problem: str | None = None
    """Why the head pod is not running (a waiting or termination reason and message)."""
    head_failed: bool = False
    service_name: str | None = None

    @property
    def ready(self) -> bool:
        return self.state == "ready" and self.head_ready

    def describe(self) -> str:
        parts = [f"state={self.state or '<none>'}"]
        if self.reason:
            parts.append(f"reason={self.reason!r}")
        if self.head_pod:
            parts.append(
                f"head pod {self.head_pod}: phase={self.head_phase}, ready={self.head_ready}"
                + (f", {self.head_problem}" if self.head_problem else "")
            )
        else:
            parts.append("no head pod yet")
        if self.desired_workers is not None:
            parts.append(f"workers ready {self.ready_workers or 0}/{self.desired_workers}")
        if self.conditions:
            parts.append("conditions: " + "; ".join(self.conditions))
        return ", ".join(parts)


class HeadAddress(msgspec.Struct, frozen=True, kw_only=True):
    """How to reach the Ray client server of the head."""

    url: str
    """``ray://host:port``."""
    host: str
    port: int
    service: str
    namespace: str
    in_cluster: bool
    port_forward: str | None = None
    """If set, the command to run first (``url`` then points at the forwarded local port)."""


@dataclass(frozen=True)
class ClusterHandle:
    """A RayCluster this process created or reuses, with the client used to reach it."""

    name: str
    namespace: str
    kube_context: str | None
    api_client: Any = field(repr=False, compare=False)
    uid: str | None = None
    image_digest: str | None = None
    reused: bool = False


def make_api_client(kube_context: str | None = None) -> Any:
    """A ``kubernetes.client.ApiClient`` for the kubeconfig context ``kube_context`` (the current
    context if None); inside a pod with no kubeconfig and no context named, the service account."""
    try:
        return kubernetes.config.new_client_from_config(context=kube_context)
    except kubernetes.config.ConfigException:
        if kube_context is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
            configuration = kubernetes.client.Configuration()
            kubernetes.config.load_incluster_config(client_configuration=configuration)
            return kubernetes.client.ApiClient(configuration)
        raise


def _custom(api_client: Any) -> Any:
    return kubernetes.client.CustomObjectsApi(api_client)


def _core(api_client: Any) -> Any:
    return kubernetes.client.CoreV1Api(api_client)


def _api_error(exc: ApiException) -> str:
    body = exc.body
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    message = None
    if isinstance(body, str) and body:
        try:
            message = msgspec.json.decode(body).get("message")
        except (msgspec.DecodeError, AttributeError):
            message = body[:500]
    return f"HTTP {exc.status} {exc.reason}" + (f": {message}" if message else "")


def create_cluster(
    spec: ClusterSpec,
    kube_context: str | None = None,
    namespace: str | None = None,
    *,
    api_client: Any = None,
) -> ClusterHandle:
    """Create the RayCluster of ``spec`` (in ``namespace`` if given, else ``spec.namespace``)."""
    if namespace is not None and namespace != spec.namespace:
        spec = msgspec.structs.replace(spec, namespace=namespace)
    manifest = build_manifest(spec)
    name: str = manifest["metadata"]["name"]
    ns: str = manifest["metadata"]["namespace"]
    client = api_client if api_client is not None else make_api_client(kube_context)
    try:
        created = _custom(client).create_namespaced_custom_object(
            GROUP, VERSION, ns, PLURAL, manifest, _request_timeout=REQUEST_TIMEOUT_S
        )
    except ApiException as exc:
        if exc.status == 409:
            raise ClusterCreateError(
                f"RayCluster {name!r} already exists in namespace {ns!r} (left by an earlier run of "
                f"build {spec.build_id!r}?): delete it with `kubectl delete raycluster {name} -n {ns}`"
            ) from exc
        if exc.status == 404:
            raise ClusterCreateError(
                f"cannot create RayCluster {name!r} in namespace {ns!r}: {_api_error(exc)} "
                "(is the KubeRay operator installed, and does the namespace exist?)"
            ) from exc
        if exc.status == 403:
            raise ClusterCreateError(
                f"not allowed to create RayCluster {name!r} in namespace {ns!r}: {_api_error(exc)} "
                "(see docs/kuberay.md for the Role the user needs)"
            ) from exc
        raise ClusterCreateError(
            f"cannot create RayCluster {name!r} in namespace {ns!r}: {_api_error(exc)}"
        ) from exc
    uid = (created.get("metadata") or {}).get("uid") if isinstance(created, dict) else None
    log.info("created RayCluster %s in namespace %s", name, ns)
    return ClusterHandle(
        name=name,
        namespace=ns,
        kube_context=kube_context,
        api_client=client,
        uid=uid,
        image_digest=image_digest(spec.image),
    )


def _head_pod_status(pod: Any) -> tuple[str | None, bool, str | None, bool]:
    """(phase, ready, problem, failed) of a V1Pod."""
    status = pod.status
    if status is None:
        return None, False, None, False
    phase = status.phase
    ready = any(c.type == "Ready" and c.status == "True" for c in status.conditions or [])
    problem: str | None = None
    failed = False
    if phase == "Failed":
        failed = True
        problem = f"pod failed: {status.reason or 'unknown reason'}" + (
            f" ({status.message})" if status.message else ""
        )
    if pod.metadata is not None and pod.metadata.deletion_timestamp is not None and not failed:
        problem = "pod is being deleted"
    for cs in status.container_statuses or []:
        state = cs.state
        if state is None:
            continue
        if state.waiting is not None and state.waiting.reason:
            reason = state.waiting.reason
            problem = f"container {cs.name} waiting: {reason}" + (
                f" ({state.waiting.message})" if state.waiting.message else ""
            )
            if reason in FATAL_WAITING_REASONS:
                failed = True
        elif state.terminated is not None and not failed:
            term = state.terminated
            problem = f"container {cs.name} terminated: {term.reason or 'exit'} (exit code {term.exit_code})"
    return phase, ready, problem, failed


def _get_cluster(handle: ClusterHandle, request_timeout_s: float) -> dict[str, Any]:
    """The RayCluster object as the API server has it (raises ApiException)."""
    obj: dict[str, Any] = _custom(handle.api_client).get_namespaced_custom_object(
        GROUP, VERSION, handle.namespace, PLURAL, handle.name, _request_timeout=request_timeout_s
    )
    return obj


def cluster_status(
    handle: ClusterHandle, *, request_timeout_s: float = REQUEST_TIMEOUT_S
) -> ClusterStatus:
    """Read the RayCluster's status and its head pod. ClusterNotReady if the cluster is gone."""
    try:
        obj = _get_cluster(handle, request_timeout_s)
    except ApiException as exc:
        if exc.status == 404:
            raise ClusterNotReady(
                f"RayCluster {handle.name!r} in namespace {handle.namespace!r} does not exist "
                "(deleted while waiting?)",
                handle.name,
                handle.namespace,
                None,
            ) from exc
        raise
    st: dict[str, Any] = obj.get("status") or {}
    conditions = tuple(
        f"{c.get('type')}={c.get('status')}" + (f" ({c.get('reason')})" if c.get("reason") else "")
        for c in st.get("conditions") or []
    )
    selector = f"ray.io/cluster={handle.name},ray.io/node-type=head"
    pods = _core(handle.api_client).list_namespaced_pod(
        handle.namespace, label_selector=selector, _request_timeout=request_timeout_s
    )
    items = list(pods.items or [])
    # Prefer a live pod over a failed one left behind (KubeRay replaces a failed head).
    items.sort(key=lambda p: (p.status is not None and p.status.phase == "Failed",))
    head_pod = phase = problem = None
    ready = failed = False
    if items:
        pod = items[0]
        head_pod = pod.metadata.name if pod.metadata is not None else None
        phase, ready, problem, failed = _head_pod_status(pod)
    head = st.get("head") or {}
    return ClusterStatus(
        state=st.get("state"),
        reason=st.get("reason"),
        conditions=conditions,
        desired_workers=st.get("desiredWorkerReplicas"),
        ready_workers=st.get("readyWorkerReplicas"),
        head_pod=head_pod,
        head_phase=phase,
        head_ready=ready,
        head_problem=problem,
        head_failed=failed,
        service_name=head.get("serviceName"),
    )


def wait_ready(
    handle: ClusterHandle,
    timeout_s: float = 600.0,
    *,
    poll_interval_s: float = 2.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> ClusterStatus:
    """Poll until ``status.state == "ready"`` and the head pod is Ready; return that status.

    Raises :class:`HeadPodFailed` as soon as the head pod failed (evicted, unrunnable image), and
    :class:`ClusterNotReady` naming the cluster and the last status seen after ``timeout_s``."""
    deadline = clock() + timeout_s
    last: ClusterStatus | None = None
    last_error: str | None = None
    where = f"RayCluster {handle.name!r} in namespace {handle.namespace!r}"
    while True:
        remaining = deadline - clock()
        try:
            last = cluster_status(
                handle, request_timeout_s=max(1.0, min(REQUEST_TIMEOUT_S, remaining))
            )
            last_error = None
        except (ApiException, urllib3.exceptions.HTTPError) as exc:
            # A transient API error (a 5xx, a dropped connection): keep polling until the deadline.
            last_error = _api_error(exc) if isinstance(exc, ApiException) else repr(exc)
            log.warning("%s: reading status failed: %s", where, last_error)
        if last is not None and last_error is None:
            if last.head_failed:
                raise HeadPodFailed(
                    f"{where}: head pod {last.head_pod} failed: {last.head_problem}. "
                    f"Last status: {last.describe()}",
                    handle.name,
                    handle.namespace,
                    last,
                )
            if last.ready:
                return last
        remaining = deadline - clock()
        if remaining <= 0:
            seen = last.describe() if last is not None else "no status read"
            if last_error:
                seen += f"; last API error: {last_error}"
            raise ClusterNotReady(
                f"{where} not ready after {timeout_s:g}s. Last status: {seen}",
                handle.name,
                handle.namespace,
                last,
            )
        sleep(min(poll_interval_s, remaining))


def _in_cluster() -> bool:
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST"))


def head_address(
    handle: ClusterHandle, *, in_cluster: bool | None = None, local_port: int | None = None
) -> HeadAddress:
    """Where the Ray client server of the head listens (the ``client`` port of ``<name>-head-svc``).

    In a pod of the same Kubernetes cluster (``in_cluster``, by default detected from
    ``KUBERNETES_SERVICE_HOST``): the service's DNS name. Outside: a LoadBalancer's address if
    the service has one, else ``ray://127.0.0.1:<local_port>`` with the ``kubectl port-forward``
    command to run first in ``port_forward``."""
    core = _core(handle.api_client)
    service_name = head_service_name(handle.name)
    try:
        obj = _get_cluster(handle, REQUEST_TIMEOUT_S)
        service_name = ((obj.get("status") or {}).get("head") or {}).get(
            "serviceName"
        ) or service_name
        svc = core.read_namespaced_service(
            service_name, handle.namespace, _request_timeout=REQUEST_TIMEOUT_S
        )
    except ApiException as exc:
        raise KubeRayError(
            f"head service of RayCluster {handle.name!r} in namespace {handle.namespace!r} "
            f"not found ({_api_error(exc)}); is the cluster ready?"
        ) from exc
    port = DEFAULT_CLIENT_PORT
    for p in (svc.spec.ports or []) if svc.spec is not None else []:
        if p.name == "client":
            port = int(p.port)
            break
    if in_cluster is None:
        in_cluster = _in_cluster()
    if in_cluster:
        host = f"{service_name}.{handle.namespace}.svc"
        return HeadAddress(
            url=f"ray://{host}:{port}",
            host=host,
            port=port,
            service=service_name,
            namespace=handle.namespace,
            in_cluster=True,
        )
    ingress = []
    if svc.spec is not None and svc.spec.type == "LoadBalancer" and svc.status is not None:
        lb = svc.status.load_balancer
        ingress = list(lb.ingress or []) if lb is not None else []
    if ingress:
        host = ingress[0].ip or ingress[0].hostname
        return HeadAddress(
            url=f"ray://{host}:{port}",
            host=host,
            port=port,
            service=service_name,
            namespace=handle.namespace,
            in_cluster=False,
        )
    lport = local_port or port
    context = f"--context {handle.kube_context} " if handle.kube_context else ""
    forward = (
        f"kubectl {context}-n {handle.namespace} port-forward service/{service_name} {lport}:{port}"
    )
    return HeadAddress(
        url=f"ray://127.0.0.1:{lport}",
        host="127.0.0.1",
        port=lport,
        service=service_name,
        namespace=handle.namespace,
        in_cluster=False,
        port_forward=forward,
    )


def delete_cluster(handle: ClusterHandle) -> bool:
    """Delete the RayCluster (KubeRay's pods and services go with it). True if it was deleted,
    False if it was already gone; idempotent."""
    try:
        _custom(handle.api_client).delete_namespaced_custom_object(
            GROUP,
            VERSION,
            handle.namespace,
            PLURAL,
            handle.name,
            body=kubernetes.client.V1DeleteOptions(propagation_policy="Background"),
            _request_timeout=REQUEST_TIMEOUT_S,
        )
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise ClusterDeleteError(
            f"cannot delete RayCluster {handle.name!r} in namespace {handle.namespace!r}: "
            f"{_api_error(exc)}; delete it with `kubectl delete raycluster {handle.name} -n {handle.namespace}`"
        ) from exc
    log.info("deleted RayCluster %s in namespace %s", handle.name, handle.namespace)
    return True


def find_reusable_cluster(
    image_digest: str,
    namespace: str,
    *,
    kube_context: str | None = None,
    shape: str | None = None,
    api_client: Any = None,
) -> ClusterHandle | None:
    """A kept mlbuild RayCluster (``mlbuild.dev/keep=true``) running ``image_digest`` in
    ``namespace`` (and of the same ``shape``, see :func:`spec_shape`, if given), or None.

    Clusters being deleted are skipped; a ready one is preferred, then the newest."""
    client = api_client if api_client is not None else make_api_client(kube_context)
    listed = _custom(client).list_namespaced_custom_object(
        GROUP,
        VERSION,
        namespace,
        PLURAL,
        label_selector=selector_for_reuse(image_digest, shape),
        _request_timeout=REQUEST_TIMEOUT_S,
    )
    candidates: list[tuple[bool, str, dict[str, Any]]] = []
    for item in listed.get("items") or []:
        meta = item.get("metadata") or {}
        if meta.get("deletionTimestamp"):
            continue
        # The label holds a prefix of the digest; the annotation holds all of it.
        if (meta.get("annotations") or {}).get(ANNOTATION_IMAGE_DIGEST) != image_digest:
            continue
        ready = (item.get("status") or {}).get("state") == "ready"
        candidates.append((ready, str(meta.get("creationTimestamp") or ""), item))
    if not candidates:
        return None
    candidates.sort(key=lambda c: (c[0], c[1]), reverse=True)
    meta = candidates[0][2]["metadata"]
    return ClusterHandle(
        name=meta["name"],
        namespace=namespace,
        kube_context=kube_context,
        api_client=client,
        uid=meta.get("uid"),
        image_digest=image_digest,
        reused=True,
    )


def _cleanup(handle: ClusterHandle, primary: BaseException | None) -> None:
    """Delete ``handle``'s cluster; survive one more Ctrl-C while doing it."""
    for attempt in range(2):
        try:
            delete_cluster(handle)
            return
        except KeyboardInterrupt:
            if attempt == 1:
                raise
            log.warning("interrupted while deleting RayCluster %s; retrying once", handle.name)
        except Exception as exc:
            if primary is None:
                raise
            log.error("could not delete RayCluster %s after a failure: %s", handle.name, exc)
            primary.add_note(f"also, deleting RayCluster {handle.name!r} failed: {exc}")
            return


@contextmanager
def managed_cluster(
    spec: ClusterSpec,
    kube_context: str | None = None,
    namespace: str | None = None,
    *,
    keep: bool = False,
    reuse: bool | None = None,
    ready_timeout_s: float = 600.0,
    poll_interval_s: float = 2.0,
    api_client: Any = None,
) -> Iterator[ClusterHandle]:
    """Create (or, with ``reuse``, find a kept) RayCluster, wait until it is ready, yield its
    handle, and delete it on every exit — normal, exception or KeyboardInterrupt — unless
    ``keep`` (``--keep-cluster``). ``reuse`` defaults to ``keep``. A kept cluster is labelled
    ``mlbuild.dev/keep=true`` so a later build with the same image and shape can reuse it."""
    if reuse is None:
        reuse = keep
    spec = msgspec.structs.replace(spec, keep=keep, namespace=namespace or spec.namespace)
    client = api_client if api_client is not None else make_api_client(kube_context)
    handle: ClusterHandle | None = None
    if reuse:
        handle = find_reusable_cluster(
            image_digest(spec.image),
            spec.namespace,
            kube_context=kube_context,
            shape=spec_shape(spec),
            api_client=client,
        )
        if handle is not None:
            log.info("reusing kept RayCluster %s in namespace %s", handle.name, handle.namespace)
    if handle is None:
        try:
            handle = create_cluster(spec, kube_context, api_client=client)
        except BaseException as exc:
            # An interrupt may land after the server created it: the name is known, delete it.
            if not keep and not isinstance(exc, ClusterCreateError | ValueError):
                name = spec.name or build_manifest(spec)["metadata"]["name"]
                orphan = ClusterHandle(
                    name=name,
                    namespace=spec.namespace,
                    kube_context=kube_context,
                    api_client=client,
                )
                _cleanup(orphan, exc)
            raise
    try:
        wait_ready(handle, ready_timeout_s, poll_interval_s=poll_interval_s)
        yield handle
    except BaseException as exc:
        if not keep:
            _cleanup(handle, exc)
        raise
    else:
        if not keep:
            _cleanup(handle, None)
