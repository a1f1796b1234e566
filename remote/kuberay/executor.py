"""The kuberay executor: a RayCluster on Kubernetes for the build, from the steps' own image.

On the first step it creates the cluster (head and one worker group, sized from that step's
``Resources``, ``--kube-workers`` workers, labelled with the build id and the image digest),
waits until it is ready (``--kube-ready-timeout``), connects to its head with the Ray client
and from then on runs steps exactly as the ray executor does. ``close`` — at the end of the
build, after a failure, or on Ctrl-C — disconnects and deletes the cluster, unless
``--keep-cluster``, which keeps it for the next build of the same image and shape (and reuses
a kept one now).

With a remote cache (``--remote-cache``) nothing else is shared: data and code move through it
(``--ray-data remote``, ``remote/ray_remote_data.py``), and the pods read its credentials from
``--kube-secret``. Without one (``--ray-data shared``) the steps' CAS and workspace must be mounted
on the cluster's nodes at the paths given by ``--ray-cas-root`` and ``--ray-workspace`` (default:
the same paths as here). The image must have mlbuild installed at the driver's version. See
``docs/kuberay.md``.
"""

from __future__ import annotations

import contextlib
import shlex
import shutil
import socket
import subprocess
import threading
import time
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from mlbuild.engine.errors import UserError
from mlbuild.engine.interfaces import ActionOutcome, ActionSpec, ExecutorContext, ExecutorOptions
from mlbuild.remote.kuberay.manifest import (
    ENV_IMAGE,
    ENV_NAMESPACE,
    ClusterSpec,
    HeadGroup,
    WorkerGroup,
    node_resources,
)
from mlbuild.remote.ray_executor import RayExecutor, RayOptions, RaySession
from mlbuild.rules.rule import Resources

if TYPE_CHECKING:
    from mlbuild.remote.kuberay.cluster import ClusterHandle

__all__ = ["ENV_IMAGE", "ENV_NAMESPACE", "KubeRayExecutor", "KubeRayOptions", "cluster_spec_for", "node_resources"]

PORT_FORWARD_WAIT_S = 30.0


class KubeRayOptions(ExecutorOptions, frozen=True, kw_only=True):
    """``--executor kuberay``'s own options."""

    kube_context: str | None = None  # the kubeconfig context (default: the current one)
    kube_namespace: str | None = None  # the RayCluster's namespace (default: "default")
    keep_cluster: bool = False  # keep the RayCluster for the next build of the same image
    kube_workers: int | None = None  # worker pods (default 1)
    kube_ready_timeout: float | None = None  # seconds to wait for the cluster (default 600)
    ray_cas_root: str | None = None  # the CAS as mounted on the pods (default: the local path)
    ray_workspace: str | None = None  # the workspace as mounted on the pods (default: the local path)
    ray_data: Literal["remote", "shared"] | None = None  # as --executor ray's (default: remote with a remote cache)
    kube_secret: str | None = None  # a Secret holding the remote's credentials, referenced by the pods


# Variables a pod takes from ``--kube-secret NAME`` (each optional: a Secret holds the ones its
# remote needs), under keys of the same names.
SECRET_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION",
              "MLBUILD_REMOTE_OPTIONS",
              "GOOGLE_APPLICATION_CREDENTIALS", "AZURE_STORAGE_CONNECTION_STRING")
ENV_REMOTE_URL = "MLBUILD_REMOTE_CACHE"


def cluster_spec_for(
    spec: ActionSpec, build_id: str, namespace: str, workers: int, ray_version: str,
    remote_url: str | None = None, secret: str | None = None,
) -> ClusterSpec:
    """The RayCluster of a build whose first step is ``spec``: its image, its resources."""
    assert spec.image is not None
    node = node_resources(spec.options.resources)
    return ClusterSpec(
        build_id=build_id,
        image=spec.image,
        ray_version=ray_version,
        namespace=namespace,
        head=HeadGroup(resources=node_resources(Resources())),
        workers=(WorkerGroup(group_name="workers", replicas=workers, resources=node),),
        # On the pods: a step's own `with RayCluster(...)` then opens its cluster on Kubernetes too.
        env={ENV_NAMESPACE: namespace, ENV_IMAGE: spec.image, **({ENV_REMOTE_URL: remote_url} if remote_url else {})},
        secret=secret,
        secret_env={name: name for name in SECRET_ENV} if secret else {},
    )


class KubeRayExecutor:
    """Creates the build's RayCluster on the first step, runs every step there, deletes it."""

    name: ClassVar[str] = "kuberay"
    options_type: ClassVar[type[ExecutorOptions]] = KubeRayOptions
    needs_image: ClassVar[bool] = True
    needs_shared_path: bool = True  # False once made for remote data (a remote cache is set)

    def __init__(self, context: ExecutorContext, options: ExecutorOptions | None = None) -> None:
        opts = options if isinstance(options, KubeRayOptions) else KubeRayOptions()
        self.context = context
        self.build_id = context.build_id
        self.kube_context = opts.kube_context
        self.namespace = opts.kube_namespace or "default"
        self.keep = opts.keep_cluster
        self.workers = 1 if opts.kube_workers is None else opts.kube_workers
        self.ready_timeout = 600.0 if opts.kube_ready_timeout is None else opts.kube_ready_timeout
        # The cluster is never this machine: with a remote cache, data moves through it.
        self.ray_options = RayOptions(ray_cas_root=opts.ray_cas_root, ray_workspace=opts.ray_workspace,
                                      ray_data=opts.ray_data or ("remote" if context.remote is not None else "shared"))
        self.needs_shared_path = self.ray_options.ray_data == "shared"
        self.secret = opts.kube_secret
        self.poll_interval = 2.0
        self.handle: ClusterHandle | None = None
        self.image: str | None = None
        self._ray: RayExecutor | None = None
        self._stack = contextlib.ExitStack()
        self._lock = threading.Lock()

    def submit(self, spec: ActionSpec) -> Future[ActionOutcome]:
        if spec.image is None:
            return _done(spec, "--executor kuberay runs every step in a container image, and this one has none: "
                         "give it one (target(image=...), @rule(image=...), or [workspace] image in mlbuild.toml)")
        with self._lock:
            if self._ray is None:
                self._start(spec)
            elif spec.image != self.image:
                return _done(spec, f"a kuberay build runs in one RayCluster of one image ({self.image}); "
                             f"this step's image is {spec.image}: build it separately")
        assert self._ray is not None
        inner = self._ray.submit(spec)
        result: Future[ActionOutcome] = Future()

        def done(f: Future[ActionOutcome]) -> None:
            outcome = f.result()
            if outcome.error_kind in ("lost", "infra"):
                outcome.error = f"{outcome.error}{self._cluster_problem()}"
            result.set_result(outcome)

        inner.add_done_callback(done)
        return result

    @property
    def outputs_remote(self) -> bool:
        """The outputs stay in the remote CAS in remote-data mode (see ``RayExecutor``): the build
        neither needs the inputs here nor uploads the outputs' blobs."""
        return self.ray_options.ray_data == "remote"

    def stats(self) -> dict[str, Any]:
        """What the build's steps moved (see ``RayExecutor.stats``), under this executor's name."""
        if self._ray is None:
            return {"name": self.name, "data": self.ray_options.ray_data}
        return {**self._ray.stats(), "name": self.name}

    def _start(self, spec: ActionSpec) -> None:
        """Create (or reuse), wait for and connect to the cluster; UserError naming the step."""
        import ray

        from mlbuild.remote.kuberay.cluster import KubeRayError, head_address, managed_cluster

        remote = self.context.remote if self.ray_options.ray_data == "remote" else None
        cluster = cluster_spec_for(spec, self.build_id, self.namespace, self.workers, ray.__version__,
                                   remote_url=remote.url if remote else None, secret=self.secret)
        try:
            self.handle = self._stack.enter_context(
                managed_cluster(
                    cluster,
                    self.kube_context,
                    self.namespace,
                    keep=self.keep,
                    ready_timeout_s=self.ready_timeout,
                    poll_interval_s=self.poll_interval,
                )
            )
        except (KubeRayError, ValueError) as exc:
            raise UserError(f"{spec.label}: {exc}") from None
        except Exception as exc:  # the kubeconfig, the API server
            raise UserError(f"{spec.label}: cannot create a RayCluster in namespace {self.namespace!r}: "
                            f"{type(exc).__name__}: {exc}") from None
        try:
            address = head_address(self.handle)
            url = address.url
            if address.port_forward:
                url = self._port_forward(address.port_forward, address.port, url)
            session = RaySession(url)
            self._stack.callback(session.close)
            # With a Secret the pods hold the credentials: this machine's are not sent.
            self._ray = RayExecutor(self.context, self.ray_options, session=session,
                                    forward_credentials=self.secret is None)
            self.image = spec.image
        except BaseException as exc:
            self.close()
            if isinstance(exc, KubeRayError | UserError):
                raise UserError(f"{spec.label}: {exc}") from None
            raise

    def _port_forward(self, command: str, port: int, url: str) -> str:
        """Run ``kubectl port-forward`` for the build; the head is then on 127.0.0.1:``port``."""
        argv = shlex.split(command)
        if shutil.which(argv[0]) is None:
            raise UserError(f"the RayCluster's head is only reachable through `{command}`, and kubectl is not installed")
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        self._stack.callback(_stop_process, proc)
        deadline = time.monotonic() + PORT_FORWARD_WAIT_S
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                raise UserError(f"`{command}` failed: {err.strip()}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                return url
            time.sleep(0.2)
        raise UserError(f"`{command}` did not open port {port} within {PORT_FORWARD_WAIT_S:g}s")

    def _cluster_problem(self) -> str:
        """Why the cluster may have lost a step (an evicted head pod), as a suffix for its error."""
        if self.handle is None:
            return ""
        from mlbuild.remote.kuberay.cluster import cluster_status

        try:
            status = cluster_status(self.handle, request_timeout_s=10)
        except Exception as exc:
            return f"; RayCluster {self.handle.name!r}: status unreadable ({type(exc).__name__}: {exc})"
        if status.head_failed or status.head_problem:
            return f"; RayCluster {self.handle.name!r}: {status.describe()}"
        return ""

    def close(self) -> None:
        """Disconnect, stop the port-forward, delete the cluster (unless --keep-cluster)."""
        from mlbuild.remote.kuberay.cluster import KubeRayError

        self._ray = None
        try:
            self._stack.close()
        except KubeRayError as exc:
            raise UserError(str(exc)) from None


def _done(spec: ActionSpec, message: str) -> Future[ActionOutcome]:
    result: Future[ActionOutcome] = Future()
    result.set_result(ActionOutcome(key=spec.key, error=message, error_kind="infra"))
    return result


def _stop_process(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
