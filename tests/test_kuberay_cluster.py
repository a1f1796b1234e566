"""The Kubernetes side of the KubeRay backend, through the real ``kubernetes`` client.

A small fake Kubernetes API server (a real HTTP server on 127.0.0.1) implements the REST
endpoints the client hits: RayClusters (create, get, list by label selector, delete), pods (list
by label selector) and services (get). It validates every created RayCluster against KubeRay's
CRD schema and answers 422 like a real API server would, and plays the KubeRay operator through
a per-cluster script of states. A real ``kubernetes.client.ApiClient`` points at it, so URL
building, serialization and deserialization are the real client's.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import kubernetes
import pytest
from kubernetes.client.rest import ApiException

from mlbuild.remote.kuberay.cluster import (
    ClusterCreateError,
    ClusterNotReady,
    HeadPodFailed,
    cluster_status,
    create_cluster,
    delete_cluster,
    find_reusable_cluster,
    head_address,
    managed_cluster,
    wait_ready,
)
from mlbuild.remote.kuberay.manifest import (
    LABEL_KEEP,
    ClusterSpec,
    NodeResources,
    WorkerGroup,
    build_manifest,
)

from support.kuberay_schema import CrdSchema

DIGEST = "sha256:" + "a1" * 32
OTHER_DIGEST = "sha256:" + "b2" * 32
NS = "ml"


def kuberay_dir() -> Path:
    env = os.environ.get("MLBUILD_KUBERAY_CRD_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "kuberay"


# ---------------------------------------------------------------- the fake API server

RC_PATH = re.compile(r"^/apis/ray\.io/v1/namespaces/([^/]+)/rayclusters(?:/([^/]+))?$")
POD_PATH = re.compile(r"^/api/v1/namespaces/([^/]+)/pods$")
SVC_PATH = re.compile(r"^/api/v1/namespaces/([^/]+)/services/([^/]+)$")

# What the fake operator does on each read of a cluster: the steps, in order; the last repeats.
STEPS = ("nothing", "pending", "running", "ready", "evicted", "bad-image")


def _matches(labels: dict[str, str], selector: str | None) -> bool:
    if not selector:
        return True
    for term in selector.split(","):
        key, _, value = term.partition("=")
        if labels.get(key) != value:
            return False
    return True


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


class FakeKube:
    def __init__(self, crd: CrdSchema) -> None:
        self.crd = crd
        self.lock = threading.Lock()
        self.clusters: dict[tuple[str, str], dict[str, Any]] = {}
        self.pods: dict[tuple[str, str], dict[str, Any]] = {}
        self.services: dict[tuple[str, str], dict[str, Any]] = {}
        self.scripts: dict[str, list[str]] = {}
        self.default_script = ["nothing", "pending", "running", "ready"]
        self.requests: list[tuple[str, str]] = []
        self.rejected: list[list[str]] = []
        self.fail_next_reads = 0

    # -- the "operator"
    def _apply(self, ns: str, name: str, step: str) -> None:
        obj = self.clusters[(ns, name)]
        pod_name = f"{name}-head-x7k2p"
        self.pods.pop((ns, pod_name), None)
        obj["status"] = {}
        if step == "nothing":
            return
        container_state: dict[str, Any] = {}
        phase, ready, extra = "Pending", False, {}
        if step == "pending":
            container_state = {"waiting": {"reason": "ContainerCreating"}}
        elif step == "running":
            phase, container_state = "Running", {"running": {}}
        elif step == "ready":
            phase, ready, container_state = "Running", True, {"running": {}}
            obj["status"] = {
                "state": "ready",
                "desiredWorkerReplicas": 1,
                "readyWorkerReplicas": 1,
                "head": {"podName": pod_name, "serviceName": f"{name}-head-svc"},
                "conditions": [
                    {
                        "type": "HeadPodReady",
                        "status": "True",
                        "reason": "HeadPodRunningAndReady",
                        "message": "",
                        "lastTransitionTime": "2026-01-01T00:00:00Z",
                    }
                ],
            }
        elif step == "evicted":
            phase = "Failed"
            extra = {"reason": "Evicted", "message": "The node was low on resource: memory."}
        elif step == "bad-image":
            container_state = {"waiting": {"reason": "ErrImageNeverPull", "message": "not present"}}
        status: dict[str, Any] = {
            "phase": phase,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            **extra,
        }
        if container_state:
            status["containerStatuses"] = [
                {
                    "name": "ray-head",
                    "image": obj["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0][
                        "image"
                    ],
                    "imageID": "",
                    "ready": ready,
                    "restartCount": 0,
                    "state": container_state,
                }
            ]
        self.pods[(ns, pod_name)] = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": pod_name,
                "namespace": ns,
                "labels": {"ray.io/cluster": name, "ray.io/node-type": "head"},
            },
            "spec": {"containers": [{"name": "ray-head", "image": "x"}]},
            "status": status,
        }
        self.services.setdefault(
            (ns, f"{name}-head-svc"),
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": f"{name}-head-svc", "namespace": ns},
                "spec": {
                    "type": "ClusterIP",
                    "ports": [
                        {"name": "gcs-server", "port": 6379},
                        {"name": "dashboard", "port": 8265},
                        {"name": "client", "port": 10001},
                    ],
                },
            },
        )

    def reconcile(self, ns: str, name: str) -> None:
        script = self.scripts.setdefault(name, list(self.default_script))
        step = script.pop(0) if len(script) > 1 else script[0]
        self._apply(ns, name, step)

    # -- REST
    def handle(
        self, method: str, path: str, query: dict[str, list[str]], body: Any
    ) -> tuple[int, Any]:
        with self.lock:
            self.requests.append((method, path))
            selector = query.get("labelSelector", [None])[0]
            if m := RC_PATH.match(path):
                ns, name = m.group(1), m.group(2)
                if name is None and method == "POST":
                    return self._create(ns, body)
                if name is None and method == "GET":
                    items = [
                        o
                        for (n, _), o in sorted(self.clusters.items())
                        if n == ns and _matches(o["metadata"].get("labels", {}), selector)
                    ]
                    return 200, {
                        "apiVersion": "ray.io/v1",
                        "kind": "RayClusterList",
                        "items": items,
                    }
                if name is not None and (ns, name) not in self.clusters:
                    return 404, _status(404, "NotFound", f'rayclusters.ray.io "{name}" not found')
                if method == "GET" and self.fail_next_reads > 0:
                    self.fail_next_reads -= 1
                    return 500, _status(500, "InternalError", "etcd hiccup")
                if method == "GET":
                    self.reconcile(ns, name)
                    return 200, self.clusters[(ns, name)]
                if method == "DELETE":
                    del self.clusters[(ns, name)]
                    for key in [
                        k
                        for k, p in self.pods.items()
                        if p["metadata"]["labels"].get("ray.io/cluster") == name
                    ]:
                        del self.pods[key]
                    self.services.pop((ns, f"{name}-head-svc"), None)
                    return 200, {"kind": "Status", "apiVersion": "v1", "status": "Success"}
            if (m := POD_PATH.match(path)) and method == "GET":
                items = [
                    p
                    for (n, _), p in sorted(self.pods.items())
                    if n == m.group(1) and _matches(p["metadata"]["labels"], selector)
                ]
                return 200, {"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": items}
            if (m := SVC_PATH.match(path)) and method == "GET":
                svc = self.services.get((m.group(1), m.group(2)))
                if svc is None:
                    return 404, _status(404, "NotFound", f'services "{m.group(2)}" not found')
                return 200, svc
            return 404, _status(404, "NotFound", f"no route {method} {path}")

    def _create(self, ns: str, body: Any) -> tuple[int, Any]:
        problems = self.crd.errors(body)
        if problems:
            self.rejected.append(problems)
            return 422, _status(422, "Invalid", "RayCluster is invalid: " + "; ".join(problems))
        meta = body["metadata"]
        if meta.get("namespace", ns) != ns:
            return 400, _status(400, "BadRequest", "namespace mismatch")
        if (ns, meta["name"]) in self.clusters:
            return 409, _status(
                409, "AlreadyExists", f'rayclusters.ray.io "{meta["name"]}" already exists'
            )
        meta.update(
            namespace=ns,
            uid=str(uuid.uuid4()),
            creationTimestamp=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            resourceVersion="1",
        )
        self.clusters[(ns, meta["name"])] = body
        return 201, body


def _handler(fake: FakeKube) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self, method: str) -> None:
            url = urlparse(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else None
            code, payload = fake.handle(method, url.path, parse_qs(url.query), body)
            data = json.dumps(payload).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def do_DELETE(self) -> None:
            self._serve("DELETE")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture(scope="module")
def crd() -> CrdSchema:
    path = kuberay_dir() / "ray.io_rayclusters.yaml"
    if not path.is_file():
        pytest.fail(f"KubeRay CRD not found at {path} (set MLBUILD_KUBERAY_CRD_DIR)")
    return CrdSchema(path)


@pytest.fixture
def fake(crd: CrdSchema) -> Iterator[FakeKube]:
    kube = FakeKube(crd)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(kube))
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    kube.host = f"http://127.0.0.1:{server.server_address[1]}"  # type: ignore[attr-defined]
    try:
        yield kube
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def api(fake: FakeKube) -> Iterator[Any]:
    configuration = kubernetes.client.Configuration()
    configuration.host = fake.host  # type: ignore[attr-defined]
    client = kubernetes.client.ApiClient(configuration)
    try:
        yield client
    finally:
        client.close()


def make_spec(
    build_id: str = "build-42", image: str = f"ghcr.io/acme/train@{DIGEST}"
) -> ClusterSpec:
    return ClusterSpec(
        build_id=build_id,
        image=image,
        ray_version="2.52.0",
        namespace=NS,
        workers=(
            WorkerGroup(
                group_name="cpu", replicas=1, resources=NodeResources(cpus=2, memory="4Gi")
            ),
        ),
    )


# ---------------------------------------------------------------- tests


def test_create_not_ready_then_ready_then_delete(fake: FakeKube, api: Any) -> None:
    spec = make_spec()
    handle = create_cluster(spec, namespace=NS, api_client=api)
    assert handle.name == build_manifest(spec)["metadata"]["name"]
    assert (NS, handle.name) in fake.clusters and fake.rejected == []
    assert handle.uid and handle.image_digest == DIGEST
    assert ("POST", f"/apis/ray.io/v1/namespaces/{NS}/rayclusters") in fake.requests

    first = cluster_status(handle)  # the operator has not done anything yet
    assert not first.ready and first.state is None and first.head_pod is None
    second = cluster_status(handle)  # head pod pending
    assert not second.ready and second.head_phase == "Pending"
    assert "ContainerCreating" in (second.head_problem or "")

    status = wait_ready(handle, timeout_s=10, poll_interval_s=0.01)
    assert status.ready and status.state == "ready" and status.head_ready
    assert status.head_pod == f"{handle.name}-head-x7k2p"
    assert any(c.startswith("HeadPodReady=True") for c in status.conditions)
    assert ("GET", f"/api/v1/namespaces/{NS}/pods") in fake.requests

    inside = head_address(handle, in_cluster=True)
    assert inside.url == f"ray://{handle.name}-head-svc.{NS}.svc:10001"
    outside = head_address(handle, in_cluster=False)
    assert outside.url == "ray://127.0.0.1:10001"
    assert (
        outside.port_forward
        == f"kubectl -n {NS} port-forward service/{handle.name}-head-svc 10001:10001"
    )

    assert delete_cluster(handle) is True
    assert (NS, handle.name) not in fake.clusters
    assert delete_cluster(handle) is False  # idempotent: a 404 is fine
    assert ("DELETE", f"/apis/ray.io/v1/namespaces/{NS}/rayclusters/{handle.name}") in fake.requests


def test_wait_ready_times_out_naming_cluster_and_last_status(fake: FakeKube, api: Any) -> None:
    spec = make_spec()
    fake.scripts[build_manifest(spec)["metadata"]["name"]] = ["running"]
    handle = create_cluster(spec, api_client=api)
    started = time.monotonic()
    with pytest.raises(ClusterNotReady) as info:
        wait_ready(handle, timeout_s=0.5, poll_interval_s=0.05)
    assert time.monotonic() - started < 5
    message = str(info.value)
    assert handle.name in message and NS in message and "not ready after 0.5s" in message
    assert "phase=Running, ready=False" in message
    assert info.value.status is not None and info.value.status.head_phase == "Running"
    assert not isinstance(info.value, HeadPodFailed)


@pytest.mark.parametrize(
    ("step", "reason"), [("evicted", "Evicted"), ("bad-image", "ErrImageNeverPull")]
)
def test_failed_head_pod_fails_fast(fake: FakeKube, api: Any, step: str, reason: str) -> None:
    spec = make_spec()
    fake.scripts[build_manifest(spec)["metadata"]["name"]] = ["pending", step]
    handle = create_cluster(spec, api_client=api)
    started = time.monotonic()
    with pytest.raises(HeadPodFailed, match=reason) as info:
        wait_ready(handle, timeout_s=60, poll_interval_s=0.01)
    assert time.monotonic() - started < 10
    assert handle.name in str(info.value)


def test_transient_api_errors_are_retried(fake: FakeKube, api: Any) -> None:
    handle = create_cluster(make_spec(), api_client=api)
    fake.fail_next_reads = 2
    assert wait_ready(handle, timeout_s=10, poll_interval_s=0.01).ready
    assert fake.fail_next_reads == 0


def test_cluster_deleted_while_waiting(fake: FakeKube, api: Any) -> None:
    handle = create_cluster(make_spec(), api_client=api)
    assert delete_cluster(handle)
    with pytest.raises(ClusterNotReady, match="does not exist"):
        wait_ready(handle, timeout_s=5, poll_interval_s=0.01)


def test_fake_server_rejects_invalid_manifests(fake: FakeKube, api: Any) -> None:
    manifest = build_manifest(make_spec())
    manifest["spec"]["workerGroupSpecs"][0]["replicas"] = "one"
    del manifest["spec"]["headGroupSpec"]["template"]["spec"]["containers"]
    custom = kubernetes.client.CustomObjectsApi(api)
    with pytest.raises(ApiException) as info:
        custom.create_namespaced_custom_object("ray.io", "v1", NS, "rayclusters", manifest)
    assert info.value.status == 422
    assert "replicas" in info.value.body and "containers" in info.value.body
    assert fake.clusters == {}


def test_create_conflict_is_a_clear_error(fake: FakeKube, api: Any) -> None:
    create_cluster(make_spec(), api_client=api)
    with pytest.raises(ClusterCreateError, match="already exists"):
        create_cluster(make_spec(), api_client=api)


def test_managed_cluster_deletes_on_normal_exit(fake: FakeKube, api: Any) -> None:
    with managed_cluster(make_spec(), namespace=NS, api_client=api, poll_interval_s=0.01) as handle:
        assert (NS, handle.name) in fake.clusters
        assert head_address(handle, in_cluster=True).port == 10001
    assert fake.clusters == {}


@pytest.mark.parametrize("error", [RuntimeError("step failed"), KeyboardInterrupt()])
def test_managed_cluster_deletes_on_exception(
    fake: FakeKube, api: Any, error: BaseException
) -> None:
    names = []
    with pytest.raises(type(error)):
        with managed_cluster(make_spec(), api_client=api, poll_interval_s=0.01) as handle:
            names.append(handle.name)
            raise error
    assert names and fake.clusters == {}
    assert ("DELETE", f"/apis/ray.io/v1/namespaces/{NS}/rayclusters/{names[0]}") in fake.requests


def test_managed_cluster_deletes_when_never_ready(fake: FakeKube, api: Any) -> None:
    fake.default_script = ["pending"]
    with pytest.raises(ClusterNotReady):
        with managed_cluster(
            make_spec(), api_client=api, ready_timeout_s=0.3, poll_interval_s=0.05
        ):
            pytest.fail("the body must not run")
    assert fake.clusters == {}


def test_keep_keeps_and_a_later_build_reuses(fake: FakeKube, api: Any) -> None:
    with managed_cluster(
        make_spec("build-1"), api_client=api, keep=True, poll_interval_s=0.01
    ) as first:
        assert not first.reused
    assert list(fake.clusters) == [(NS, first.name)]
    assert fake.clusters[(NS, first.name)]["metadata"]["labels"][LABEL_KEEP] == "true"
    posts = sum(1 for method, _ in fake.requests if method == "POST")

    # --keep-cluster: a later build with the same image reuses it and keeps it again.
    with managed_cluster(
        make_spec("build-2"), api_client=api, keep=True, poll_interval_s=0.01
    ) as second:
        assert second.reused and second.name == first.name
    assert sum(1 for method, _ in fake.requests if method == "POST") == posts
    assert list(fake.clusters) == [(NS, first.name)]

    # Without keep, a build never takes a kept cluster: it makes its own and deletes only that.
    with managed_cluster(make_spec("build-3"), api_client=api, poll_interval_s=0.01) as third:
        assert not third.reused and third.name != first.name
    assert list(fake.clusters) == [(NS, first.name)]


def test_find_reusable_cluster_filters(fake: FakeKube, api: Any) -> None:
    assert find_reusable_cluster(DIGEST, NS, api_client=api) is None
    create_cluster(make_spec("not-kept"), api_client=api)  # not labelled keep: never reused
    assert find_reusable_cluster(DIGEST, NS, api_client=api) is None
    other = ClusterSpec(
        build_id="other",
        image=f"ghcr.io/acme/train@{OTHER_DIGEST}",
        ray_version="2.52.0",
        namespace=NS,
        keep=True,
    )
    create_cluster(other, api_client=api)
    assert find_reusable_cluster(DIGEST, NS, api_client=api) is None
    kept = create_cluster(
        ClusterSpec(**{**_fields(make_spec("kept")), "keep": True}), api_client=api
    )
    found = find_reusable_cluster(DIGEST, NS, api_client=api)
    assert found is not None and found.name == kept.name and found.reused
    assert find_reusable_cluster(DIGEST, "elsewhere", api_client=api) is None


def _fields(spec: ClusterSpec) -> dict[str, Any]:
    return {f: getattr(spec, f) for f in spec.__struct_fields__}


def test_head_address_reaches_a_real_ray_head(fake: FakeKube, api: Any, ray_local: Any, ray_client: Any) -> None:
    """The ``ray://`` address head_address() gives is one the Ray client connects to: the fake
    head service is a LoadBalancer on 127.0.0.1 whose ``client`` port is the local head's Ray
    client server (10001, the default of ``ray start --head``)."""
    import ray

    handle = create_cluster(make_spec(), api_client=api)
    wait_ready(handle, timeout_s=10, poll_interval_s=0.01)
    svc = fake.services[(NS, f"{handle.name}-head-svc")]
    svc["spec"]["type"] = "LoadBalancer"
    svc["status"] = {"loadBalancer": {"ingress": [{"ip": "127.0.0.1"}]}}
    address = head_address(handle, in_cluster=False)
    assert address.url == "ray://127.0.0.1:10001" and address.port_forward is None

    @ray.remote
    def square(x: int) -> int:
        return x * x

    ray_client(address.url)
    try:
        assert ray.get([square.remote(i) for i in range(4)]) == [0, 1, 4, 9]
    finally:
        ray.shutdown()
