"""``--executor kuberay`` end to end through the CLI, and ``RayCluster`` inside a step.

Kubernetes cannot run here, so the Kubernetes side is the fake API server of
``test_kuberay_cluster.py`` (a real HTTP server driven by the real ``kubernetes`` client, which
validates every RayCluster against KubeRay's CRD and plays the operator from a script), reached
by ``mlbuild`` through a real kubeconfig file. The part after the cluster is ready runs for
real: the fake head service is a LoadBalancer on 127.0.0.1 whose ``client`` port is the Ray
client server of a Ray head running in a Docker container from the steps' own image (see
``ray_head``; free ports, because the default 10001 is taken whenever another Ray head runs on
the machine), and the build's steps run there, in that container, as Ray tasks.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import ray

from mlbuild.remote.kuberay.manifest import LABEL_BUILD_ID, LABEL_KEEP, label_value
from mlbuild.rules.rule import Resources

from support.cli import Run, mlbuild_process
from support.cli import mlbuild as mlbuild_inline
from support.kuberay_schema import CrdSchema
from support.workspace import write_workspace

_spec = importlib.util.spec_from_file_location("kuberay_cluster_tests", Path(__file__).with_name("test_kuberay_cluster.py"))
assert _spec is not None and _spec.loader is not None
_kc = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_kc)

NS = "ml"

RULES = '''
from mlbuild import RayCluster, Resources, rule


@rule(resources=Resources(cpus=1, memory="1Gi"))
def numbers(config: dict) -> list:
    print("making", config["n"], "numbers")
    return list(range(config["n"]))


@rule
def total(xs: list) -> dict:
    import os
    import sys

    return {"sum": sum(xs), "in_container": os.path.exists("/.dockerenv"), "python": sys.version.split()[0]}


@rule
def fan_out(xs: list) -> list:
    with RayCluster(workers=1, resources=Resources(cpus=1)) as ray:
        square = ray.remote(lambda x: x * x)
        return ray.get([square.remote(x) for x in xs])
'''


class Kube(_kc.FakeKube):  # type: ignore[misc,name-defined]
    """The fake API server, with the head service a LoadBalancer on 127.0.0.1 (so the client
    outside the cluster reaches the local Ray head) and every created manifest kept."""

    def __init__(self, crd: CrdSchema) -> None:
        super().__init__(crd)
        self.created: list[dict[str, Any]] = []
        self.client_port = 0  # the Ray head's client server port, set by the fixture

    def _create(self, ns: str, body: Any) -> tuple[int, Any]:
        code, obj = super()._create(ns, body)
        if code == 201:
            self.created.append(copy.deepcopy(obj))
        return code, obj

    def _apply(self, ns: str, name: str, step: str) -> None:
        super()._apply(ns, name, step)
        svc = self.services.get((ns, f"{name}-head-svc"))
        if svc is not None:
            svc["spec"]["type"] = "LoadBalancer"
            for port in svc["spec"]["ports"]:
                if port["name"] == "client":
                    port["port"] = self.client_port
            svc["status"] = {"loadBalancer": {"ingress": [{"ip": "127.0.0.1"}]}}

    def posts(self) -> int:
        return sum(1 for method, path in self.requests if method == "POST")

    def deletes(self) -> int:
        return sum(1 for method, _ in self.requests if method == "DELETE")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory: pytest.TempPathFactory, test_image: Any, ray_local: Any) -> Iterator[int]:
    """A Ray head running in a Docker container from the steps' own image, as KubeRay would run
    it; yields its Ray client server port (a free one, on 127.0.0.1 through host networking).

    The test image has no Ray and PyPI is unreachable, so this interpreter's site-packages
    (the same CPython 3.11 ABI and glibc) is mounted read-only and put on ``PYTHONPATH``, with
    the mlbuild source under test. The tests' temporary directory is mounted at its own path,
    as a shared filesystem (a PVC on Kubernetes) would be: the steps' CAS and workspaces live
    there. (``ray_local`` first: it sets the Ray environment variables of this session.)
    """
    import docker

    import mlbuild

    client = docker.from_env()
    shared = str(tmp_path_factory.getbasetemp())
    site_packages = str(Path(ray.__file__).resolve().parent.parent)
    source = str(Path(mlbuild.__file__).resolve().parent)
    gcs_port, client_port = _free_port(), _free_port()
    container = client.containers.run(
        test_image.id,
        ["python3", "-m", "ray.scripts.scripts", "start", "--head", "--block", f"--port={gcs_port}",
         f"--ray-client-server-port={client_port}", "--num-cpus=2", "--include-dashboard=false",
         "--disable-usage-stats", "--node-ip-address=127.0.0.1", f"--object-store-memory={200 * 10**6}"],
        detach=True, network_mode="host", shm_size="512m", user=f"{os.getuid()}:{os.getgid()}",
        environment={"PYTHONPATH": "/opt/mlbuild-src:/opt/host-site-packages", "HOME": "/tmp",
                     "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"},
        volumes={site_packages: {"bind": "/opt/host-site-packages", "mode": "ro"},
                 source: {"bind": "/opt/mlbuild-src/mlbuild", "mode": "ro"},
                 shared: {"bind": shared, "mode": "rw"}},
        labels={"dev.mlbuild.test": "kuberay-ray-head"},
    )
    try:
        deadline = time.monotonic() + 120
        while b"Ray runtime started" not in container.logs():
            container.reload()
            if container.status == "exited" or time.monotonic() > deadline:
                pytest.fail(f"the Ray head container did not start:\n{container.logs().decode()[-3000:]}")
            time.sleep(0.2)
        yield client_port
    finally:
        container.remove(force=True)


@pytest.fixture(scope="module")
def crd() -> CrdSchema:
    path = _kc.kuberay_dir() / "ray.io_rayclusters.yaml"
    if not path.is_file():
        pytest.fail(f"KubeRay CRD not found at {path} (set MLBUILD_KUBERAY_CRD_DIR)")
    return CrdSchema(path)


@pytest.fixture
def kube(crd: CrdSchema) -> Iterator[Kube]:
    fake = Kube(crd)
    fake.client_port = 10001  # a test that needs Ray asks for ray_head, which sets the real one
    server = ThreadingHTTPServer(("127.0.0.1", 0), _kc._handler(fake))
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    fake.host = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def kubeconfig(kube: Kube, tmp_path: Path) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(json.dumps({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "fake", "cluster": {"server": kube.host}}],
        "users": [{"name": "fake", "user": {"token": "t"}}],
        "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake", "namespace": NS}}],
        "current-context": "fake",
    }))
    return path


@pytest.fixture
def ws(tmp_path: Path, test_image: Any) -> Path:
    return write_workspace(tmp_path / "ws", {
        "mlbuild.toml": f'[workspace]\nname = "kuberay-test"\nimage = "{test_image.name}"\n',
        "pkg/steps.py": RULES,
        "pkg/BUILD.py": textwrap.dedent('''
            from mlbuild import target

            target(name="numbers", rule="steps.py:numbers", config={"n": 6})
            target(name="total", rule="steps.py:total", inputs={"xs": ":numbers"})
            target(name="fan_out", rule="steps.py:fan_out", inputs={"xs": ":numbers"})
        '''),
    })


def kube_args(*extra: str) -> list[str]:
    return ["--executor", "kuberay", "--kube-context", "fake", "--namespace", NS, *extra]


def mlbuild(ws: Path, kubeconfig: Path, *args: str) -> Run:
    """A build on the fake cluster, in a process of its own: the Ray client it connects with
    stays out of pytest's process."""
    return mlbuild_process(ws, *args, check=False, env={"KUBECONFIG": str(kubeconfig), **_UNSET})


# Set in a pod or a Ray session; neither may leak into a build from the test's environment.
_UNSET: dict[str, str | None] = {"KUBERNETES_SERVICE_HOST": None, "RAY_ADDRESS": None}


def local_build(ws: Path, *args: str) -> Run:
    """A build on this machine (in this process, steps inline): the cache the kuberay builds share."""
    return mlbuild_inline(ws, *args, check=False)


def summary(proc: Run) -> dict[str, Any]:
    assert proc.stdout.strip(), proc.stderr
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


# ---------------------------------------------------------------- the executor


def test_build_creates_runs_on_and_deletes_its_cluster(
    ws: Path, kube: Kube, kubeconfig: Path, ray_head: int, test_image: Any
) -> None:
    kube.client_port = ray_head
    proc = mlbuild(ws, kubeconfig, "//pkg:total", *kube_args("--kube-workers", "2", "--json"))
    assert proc.returncode == 0, proc.stderr
    result = summary(proc)
    assert result["actions"]["executed"] == 2
    assert kube.clusters == {} and kube.posts() == 1 and kube.deletes() == 1  # deleted at the end
    import msgspec

    total = msgspec.msgpack.decode((ws / "mlbuild-out" / "pkg" / "total.value.msgpack").read_bytes())
    assert total["sum"] == 15 and total["in_container"] is True  # it ran on the head, in the image
    (manifest,) = kube.created
    assert kube.rejected == []  # valid against the CRD
    meta = manifest["metadata"]
    assert meta["labels"][LABEL_BUILD_ID] == label_value(result["build_id"])
    assert meta["annotations"]["mlbuild.dev/image"] == test_image.id  # pinned by digest
    (group,) = manifest["spec"]["workerGroupSpecs"]
    assert group["replicas"] == 2
    container = group["template"]["spec"]["containers"][0]
    assert container["image"] == test_image.id
    assert container["resources"]["limits"] == {"cpu": "1", "memory": "1Gi"}  # the first step's
    assert {"name": "MLBUILD_KUBERAY_NAMESPACE", "value": NS} in container["env"]

    # Same keys as any other executor: a local build finds both cached.
    local = local_build(ws, "//pkg:total", "--json")
    assert summary(local)["actions"]["cached"] == 2


def test_keep_cluster_is_reused_by_the_next_build(ws: Path, kube: Kube, kubeconfig: Path, ray_head: int) -> None:
    kube.client_port = ray_head
    first = mlbuild(ws, kubeconfig, "//pkg:total", *kube_args("--keep-cluster"))
    assert first.returncode == 0, first.stderr
    (kept,) = kube.clusters.values()
    assert kept["metadata"]["labels"][LABEL_KEEP] == "true" and kube.deletes() == 0
    second = mlbuild(ws, kubeconfig, "//pkg:total", "--no-cache", *kube_args("--keep-cluster"))
    assert second.returncode == 0, second.stderr
    assert kube.posts() == 1 and list(kube.clusters.values()) == [kept]  # reused, not recreated


def _failing_build(ws: Path, kubeconfig: Path, *args: str) -> Run:
    # Something already built: it must still be cached after the failure.
    local = local_build(ws, "//pkg:numbers")
    assert local.returncode == 0, local.stderr
    proc = mlbuild(ws, kubeconfig, "//pkg:total", *kube_args(*args))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and proc.stderr.count("mlbuild: error:") == 1
    again = local_build(ws, "//pkg:numbers", "--json")
    assert summary(again)["actions"]["cached"] == 1
    return proc


def test_cluster_never_ready_times_out_and_is_deleted(ws: Path, kube: Kube, kubeconfig: Path) -> None:
    kube.default_script = ["pending"]
    proc = _failing_build(ws, kubeconfig, "--kube-ready-timeout", "1")
    assert "//pkg:total" in proc.stderr and "not ready after 1s" in proc.stderr
    assert "ContainerCreating" in proc.stderr  # the last status seen
    assert kube.posts() == 1 and kube.clusters == {}


def test_evicted_head_pod_is_one_clear_error_and_the_cluster_is_deleted(
    ws: Path, kube: Kube, kubeconfig: Path
) -> None:
    kube.default_script = ["pending", "evicted"]
    proc = _failing_build(ws, kubeconfig)
    assert "//pkg:total" in proc.stderr and "Evicted" in proc.stderr
    assert kube.posts() == 1 and kube.clusters == {}


def test_unreachable_ray_head_is_one_clear_error_and_the_cluster_is_deleted(
    ws: Path, kube: Kube, kubeconfig: Path
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        kube.client_port = s.getsockname()[1]  # nothing listens there
    proc = _failing_build(ws, kubeconfig)
    assert f"cannot reach the Ray cluster at ray://127.0.0.1:{kube.client_port}" in proc.stderr
    assert kube.posts() == 1 and kube.clusters == {}


def test_missing_image_fails_before_any_cluster(ws: Path, kube: Kube, kubeconfig: Path) -> None:
    (ws / "mlbuild.toml").write_text('[workspace]\nname = "kuberay-test"\nimage = "mlbuild-no-such-image:0"\n')
    proc = mlbuild(ws, kubeconfig, "//pkg:total", *kube_args())
    assert proc.returncode == 2
    assert "image 'mlbuild-no-such-image:0' is not in the Docker engine" in proc.stderr
    assert kube.posts() == 0


def test_ctrl_c_while_waiting_deletes_the_cluster(ws: Path, kube: Kube, kubeconfig: Path) -> None:
    kube.default_script = ["pending"]
    env = {k: v for k, v in {**os.environ, "KUBECONFIG": str(kubeconfig), **_UNSET}.items() if v is not None}
    proc = subprocess.Popen([sys.executable, "-m", "mlbuild", "//pkg:total", *kube_args()], cwd=ws, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not kube.clusters:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"no cluster was created: {proc.communicate()}")
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert kube.clusters == {} and kube.deletes() == 1


# ---------------------------------------------------------------- RayCluster in a step


def test_ray_cluster_on_kubernetes_yields_a_connected_ray_and_tears_down(
    kube: Kube, ray_head: int, test_image: Any
) -> None:
    from mlbuild import RayCluster

    kube.client_port = ray_head
    configuration = kubernetes.client.Configuration()
    configuration.host = kube.host
    api = kubernetes.client.ApiClient(configuration)
    cluster = RayCluster(workers=3, resources=Resources(cpus=2, memory="4Gi"), namespace=NS,
                         image=test_image.id, api_client=api, ready_timeout_s=30)
    with cluster as ray:
        assert cluster.address == f"ray://127.0.0.1:{ray_head}"
        assert len(kube.clusters) == 1
        assert ray.get(ray.remote(lambda: 41 + 1).remote()) == 42
    assert kube.clusters == {} and not ray.is_initialized()
    (group,) = kube.created[0]["spec"]["workerGroupSpecs"]
    assert group["replicas"] == 3 and group["template"]["spec"]["containers"][0]["resources"]["limits"] == {
        "cpu": "2", "memory": "4Gi"}

    with pytest.raises(ZeroDivisionError):
        with RayCluster(workers=1, namespace=NS, image=test_image.id, api_client=api, ready_timeout_s=30):
            1 / 0  # noqa: B018
    assert kube.clusters == {} and len(kube.created) == 2


def test_ray_cluster_in_a_step_local_and_on_the_build_cluster(tmp_path: Path, ws: Path, ray_local: Any) -> None:
    """Under the local executor it starts (and stops) a Ray of its own; inside a Ray task of a
    ``--executor ray`` build it uses the Ray the task is connected to."""
    (ws / "mlbuild.toml").write_text('[workspace]\nname = "kuberay-test"\n')
    env = {**_UNSET, **{k: None for k in os.environ if k.startswith("MLBUILD_KUBERAY")}}
    for extra in ([], ["--executor", "ray", "--ray-address", ray_local.address]):
        # A process of its own (on the local executor, then Ray's): the step starts or joins a Ray.
        proc = mlbuild_process(ws, "//pkg:fan_out", "--no-cache", *extra, check=False, env=env)
        assert proc.returncode == 0, proc.stderr
        import msgspec

        out = ws / "mlbuild-out" / "pkg" / "fan_out.value.msgpack"
        assert msgspec.msgpack.decode(out.read_bytes()) == [x * x for x in range(6)]


# ---------------------------------------------------------------- remote data, on a real Ray head

REMOTE_RULES = '''
from mlbuild import Resources, rule


@rule(resources=Resources(cpus=1))
def numbers(config: dict) -> list:
    return list(range(config["n"]))


@rule
def total(xs: list) -> dict:
    return {"sum": sum(xs), "count": len(xs)}
'''

SECRET = "mlbuild-remote"


class PodsKube(Kube):
    """The fake API server whose "operator" runs the worker group of a RayCluster it accepted
    (valid against the CRD) as a real Ray worker node of ``cluster``: in a mount namespace that
    cannot see the client's files, with the environment the manifest gives the pod (its values,
    and its ``secretKeyRef``s resolved from ``secrets`` as the kubelet would) plus what the image
    sets (``image_env``). The head service leads to ``cluster``'s head, which runs no step. The
    cluster is ready once that node is up."""

    def __init__(self, crd: CrdSchema, cluster: Any, secrets: dict[str, dict[str, str]],
                 image_env: dict[str, str]) -> None:
        super().__init__(crd)
        self.cluster = cluster
        self.secrets = secrets
        self.image_env = image_env
        self.client_port = cluster.client_port
        self.pod_env: dict[str, str] = {}
        self.pods_up = threading.Event()
        self.errors: list[str] = []

    def _create(self, ns: str, body: Any) -> tuple[int, Any]:
        code, obj = super()._create(ns, body)
        if code == 201:
            threading.Thread(target=self._start_pods, args=(copy.deepcopy(obj),), daemon=True).start()
        return code, obj

    def _start_pods(self, obj: dict[str, Any]) -> None:
        try:
            (group,) = obj["spec"]["workerGroupSpecs"]
            for var in group["template"]["spec"]["containers"][0].get("env", []):
                ref = (var.get("valueFrom") or {}).get("secretKeyRef")
                if ref is None:
                    self.pod_env[var["name"]] = var["value"]
                elif ref["key"] in self.secrets.get(ref["name"], {}):
                    self.pod_env[var["name"]] = self.secrets[ref["name"]][ref["key"]]
                elif not ref.get("optional"):
                    raise KeyError(f"secret {ref['name']} has no key {ref['key']}")
            self.cluster.add_worker("pod", {**self.pod_env, **self.image_env})
        except BaseException as exc:  # pytest.fail in a thread: reported by the test
            self.errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            self.pods_up.set()

    def reconcile(self, ns: str, name: str) -> None:
        self._apply(ns, name, "ready" if self.pods_up.is_set() and not self.errors else "pending")


def test_remote_data_build_runs_on_a_real_head_whose_pods_share_only_the_bucket(
    tmp_path: Path, crd: CrdSchema, s3_bucket: Any, test_image: Any, tmp_cache_dir: Path
) -> None:
    """``--executor kuberay --remote-cache s3://… --kube-secret NAME``: the manifest (valid, with
    the remote's URL and the Secret's name, no credential) makes the pods; everything after "the
    cluster is ready at X" is real: the Ray client to a real head, the steps on a worker node that
    sees none of the client's files and holds only what the manifest gave it."""
    from support.ray_nodes import Cluster, check_can_hide

    check_can_hide()
    ws = write_workspace(tmp_path / "ws", {
        "mlbuild.toml": f'[workspace]\nname = "kuberay-remote"\nimage = "{test_image.name}"\n',
        "pkg/steps.py": REMOTE_RULES,
        "pkg/BUILD.py": textwrap.dedent('''
            from mlbuild import target

            target(name="numbers", rule="steps.py:numbers", config={"n": 7})
            target(name="total", rule="steps.py:total", inputs={"xs": ":numbers"})
        '''),
    })
    cluster = Cluster(tmp_path)
    try:
        # The image holds the workspace (its Dockerfile copied it) and says where.
        image_ws = cluster.dir / "image-workspace"
        for path in ws.rglob("*.py"):
            (image_ws / path.relative_to(ws)).parent.mkdir(parents=True, exist_ok=True)
            (image_ws / path.relative_to(ws)).write_bytes(path.read_bytes())
        kube = PodsKube(crd, cluster, {SECRET: {k: v for k, v in s3_bucket.env.items() if k != "AWS_ENDPOINT_URL_S3"}},
                        {"MLBUILD_IMAGE_WORKSPACE": str(image_ws)})
        server = ThreadingHTTPServer(("127.0.0.1", 0), _kc._handler(kube))
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        kube.host = f"http://127.0.0.1:{server.server_address[1]}"
        try:
            kubeconfig = tmp_path / "kubeconfig"
            kubeconfig.write_text(json.dumps({
                "apiVersion": "v1", "kind": "Config",
                "clusters": [{"name": "fake", "cluster": {"server": kube.host}}],
                "users": [{"name": "fake", "user": {"token": "t"}}],
                "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake", "namespace": NS}}],
                "current-context": "fake",
            }))
            url = s3_bucket.url("kuberay")
            proc = mlbuild_process(ws, "//pkg:total", *kube_args("--remote-cache", url, "--kube-secret", SECRET, "--json"),
                                   check=False, env={"KUBECONFIG": str(kubeconfig), **s3_bucket.env, **_UNSET})
        finally:
            server.shutdown()
            server.server_close()
        assert not kube.errors, kube.errors
        assert proc.returncode == 0, proc.stderr
        result = summary(proc)
        assert result["actions"]["executed"] == 2
        assert result["executor"]["name"] == "kuberay" and result["executor"]["data"] == "remote", result
        assert kube.clusters == {} and kube.posts() == 1 and kube.deletes() == 1  # deleted at the end

        # The manifest: valid, with the remote and the Secret by name, and no credential.
        (manifest,) = kube.created
        assert kube.rejected == []
        assert s3_bucket.secret not in json.dumps(manifest)
        assert kube.pod_env["MLBUILD_REMOTE_CACHE"] == url
        assert kube.pod_env["AWS_SECRET_ACCESS_KEY"] == s3_bucket.secret  # from the Secret, by reference

        # The steps ran on the pod's node, which could not read the client's cache or workspace.
        assert not cluster.sees("pod", ws) and not cluster.sees("pod", tmp_cache_dir)
        assert cluster.sees("pod", cluster.dir)
        pod_ids = cluster.node_ids("pod")
        from mlbuild.cache.store import LocalStore

        store = LocalStore(tmp_cache_dir)
        try:
            hosts = {r.label: r.host for r in store.index.iter_actions()}
        finally:
            store.close()
        assert set(hosts) == {"//pkg:numbers", "//pkg:total"}
        assert all(h.rsplit("/", 1)[-1] in pod_ids for h in hosts.values()), (hosts, pod_ids)
    finally:
        cluster.stop()

    # Outputs equal to a local build's, from nothing.
    local = write_workspace(tmp_path / "local", {p.relative_to(ws).as_posix(): p.read_text()
                                                 for p in [ws / "mlbuild.toml", *ws.rglob("*.py")]})
    again = mlbuild_inline(local, "//pkg:total", "--no-cache", "--json", check=False,
                           env={"MLBUILD_CACHE_DIR": str(tmp_path / "local-cache")})
    assert again.returncode == 0, again.stderr
    assert summary(again)["outputs"] == result["outputs"]
    assert (local / "mlbuild-out" / "pkg" / "total.value.msgpack").read_bytes() == \
        (ws / "mlbuild-out" / "pkg" / "total.value.msgpack").read_bytes()
