"""The ray executor: each step as a Ray task, on a local Ray started for the build or on a
running cluster (``--ray-address ADDR`` or ``RAY_ADDRESS``).

Steps' inputs and outputs go through mlbuild's caches, never only through Ray's object store,
and the build records each finished action in the action cache as it completes, so a build
interrupted on Ray resumes from the cache. Two data modes (``--ray-data``):

- ``remote`` (the default with a remote cache on a cluster not started here): nothing is shared
  but the remote cache; inputs and code move through it by content (``ray_remote_data.py``).
- ``shared``: the workers read the CAS at a path: on one machine the local cache directory; on a
  multi-node cluster, a shared filesystem mounted on every node (give its path on the workers
  with ``--ray-cas-root``, and the workspace's with ``--ray-workspace``).

A step's ``Resources`` become the task's ``num_cpus``, ``num_gpus`` and ``memory``; its
``retries`` become ``max_retries``, which Ray applies when the worker process dies (a step that
raises is not retried: its error is the outcome).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from concurrent.futures import Future
from typing import Any, ClassVar, Literal

import msgspec

from mlbuild.engine.errors import UserError
from mlbuild.engine.interfaces import ActionOutcome, ActionSpec, ExecutorContext, ExecutorOptions
from mlbuild.engine.run.runner import run_encoded
from mlbuild.remote.resources import ray_options

__all__ = ["RayExecutor", "RayOptions", "RaySession", "check_reachable", "run_step"]

CONNECT_TIMEOUT_S = 10.0
CLIENT_CONNECT_ATTEMPTS = 3

_enc = msgspec.msgpack.Encoder()
_dec = msgspec.msgpack.Decoder(ActionOutcome)


def run_step(spec_bytes: bytes, cas_root: str) -> bytes:
    """The body of every step's Ray task: the same runner every executor ends in."""
    return run_encoded(spec_bytes, cas_root)


def check_reachable(address: str, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """UserError unless something listens at ``address`` (``host:port`` or ``ray://host:port``).

    Ray itself would retry a dead address for a minute or more before giving up."""
    hostport = address.removeprefix("ray://").split("/", 1)[0]
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit():
        return  # "auto", "local", or a form Ray resolves itself
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            pass
    except OSError as exc:
        raise UserError(f"cannot reach the Ray cluster at {address}: {exc.strerror or exc}") from None


class RaySession:
    """This process's connection to Ray for one build: made on creation, undone by ``close``.

    If Ray is already initialized in this process (a test, a notebook, a benchmark) it is used
    as it is and left running."""

    def __init__(self, address: str | None, num_cpus: int | None = None, runtime_env: dict[str, Any] | None = None) -> None:
        import ray

        self.ray = ray
        self.owned = False
        self.local = False
        self.address = address
        if ray.is_initialized():
            return
        kwargs: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": False}
        if runtime_env:
            kwargs["runtime_env"] = runtime_env
        if address:
            check_reachable(address)
            kwargs["address"] = address
        else:
            # Not RAY_ADDRESS either (the caller resolved it): start a local Ray for this build.
            kwargs.update(num_cpus=num_cpus, include_dashboard=False, address="local")
            self.local = True
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        # A Ray client connection (ray://) the server aborts while it sets up the session (it
        # does under load) is made again: each attempt gets a fresh server-side session.
        attempts = CLIENT_CONNECT_ATTEMPTS if address and address.startswith("ray://") else 1
        for attempt in range(1, attempts + 1):
            try:
                ray.init(**kwargs)
                break
            except ConnectionError as exc:
                if attempt < attempts:
                    time.sleep(attempt)
                    continue
                raise UserError(f"cannot connect to the Ray cluster at {address}: {type(exc).__name__}: {exc}") from None
            except Exception as exc:
                where = f"the Ray cluster at {address}" if address else "a local Ray"
                raise UserError(f"cannot connect to {where}: {type(exc).__name__}: {exc}") from None
        self.owned = True

    def node_capacity(self) -> dict[str, float]:
        """The most of each resource one node offers (a task cannot span nodes)."""
        best: dict[str, float] = {}
        for node in self.ray.nodes():
            if not node.get("Alive"):
                continue
            for name, amount in (node.get("Resources") or {}).items():
                best[name] = max(best.get(name, 0.0), float(amount))
        return best

    def close(self) -> None:
        if self.owned:
            self.owned = False
            self.ray.shutdown()


class RayOptions(ExecutorOptions, frozen=True, kw_only=True):
    """``--executor ray``'s own options."""

    ray_address: str | None = None  # a running cluster (default: $RAY_ADDRESS, else a local Ray)
    ray_cas_root: str | None = None  # the CAS as mounted on the workers (default: the local path)
    ray_workspace: str | None = None  # the workspace as mounted on the workers (default: the local path)
    # "remote": data and code move through the remote cache, nothing shared (ray_remote_data.py);
    # "shared": the workers read the CAS and workspace by path. Default: remote when a remote
    # cache is set and the cluster is not one started here for this build, shared otherwise.
    ray_data: Literal["remote", "shared"] | None = None


def data_mode(options: RayOptions, context: ExecutorContext, local_cluster: bool) -> str:
    """``remote`` or ``shared`` (see ``RayOptions.ray_data``); UserError for remote without a remote."""
    if options.ray_data == "remote" and context.remote is None:
        raise UserError("--ray-data remote needs a remote cache (--remote-cache URL): data moves through it")
    if options.ray_data is not None:
        return options.ray_data
    return "remote" if context.remote is not None and not local_cluster else "shared"


def _noted(outcome: ActionOutcome, note: str) -> ActionOutcome:
    outcome.notes = [*outcome.notes, note]
    return outcome


class RayExecutor:
    """Runs each action as a Ray task against a CAS the workers reach at ``cas_root``."""

    name: ClassVar[str] = "ray"
    options_type: ClassVar[type[ExecutorOptions]] = RayOptions
    needs_image: ClassVar[bool] = False
    # True until the mode is known; an instance in remote-data mode shares nothing with the cluster.
    needs_shared_path: bool = True

    def __init__(self, context: ExecutorContext, options: ExecutorOptions | None = None, *,
                 session: RaySession | None = None, forward_credentials: bool = True) -> None:
        opts = options if isinstance(options, RayOptions) else RayOptions()
        address = opts.ray_address or os.environ.get("RAY_ADDRESS") or None
        self.mode = data_mode(opts, context, local_cluster=not address and session is None)
        self.needs_shared_path = self.mode == "shared"
        runtime_env = None
        self.uploader: Any = None
        if self.mode == "remote":
            from mlbuild.remote import ray_remote_data

            assert context.remote is not None
            # Credentials reach the workers through the runtime env, never as task arguments.
            env = ray_remote_data.worker_env(context.remote, forward_credentials=forward_credentials)
            runtime_env = {"env_vars": env} if env else None
            self.uploader = ray_remote_data.Uploader(context.remote, context.cas_root, context.workspace)
        self.session = session or RaySession(address, num_cpus=max(1, context.jobs), runtime_env=runtime_env)
        self.cas_root = opts.ray_cas_root or context.cas_root
        self.workspace = opts.ray_workspace
        # A task that asks for more than any node has would wait forever: on a cluster of a
        # known, fixed shape (the local one, or one made for this build) it fails at once.
        self.capacity = self.session.node_capacity() if self.session.local or session is not None else None
        if self.mode == "remote":
            from mlbuild.remote.ray_remote_data import run_step_remote

            self._task = self.session.ray.remote(run_step_remote)
        else:
            self._task = self.session.ray.remote(run_step)
        self._uploads: Any = None
        # Set on each task too: a Ray session made elsewhere (a test, a notebook) lacks it.
        self._runtime_env = runtime_env
        self._variants: dict[tuple[Any, ...], Any] = {}
        self._lock = threading.Lock()
        self._worker_bytes_down = 0  # what the workers fetched from the remote and pushed to it
        self._worker_bytes_up = 0

    def _task_for(self, spec: ActionSpec) -> Any:
        res = spec.options.resources
        key = (res.cpus, res.gpus, res.memory, spec.options.retries)
        with self._lock:
            task = self._variants.get(key)
            if task is None:
                extra = {"runtime_env": self._runtime_env} if self._runtime_env else {}
                task = self._variants[key] = self._task.options(**ray_options(res, spec.options.retries), **extra)
            return task

    def _misfit(self, spec: ActionSpec) -> str | None:
        if self.capacity is None:
            return None
        res = spec.options.resources
        for name, wanted in (("CPU", res.cpus), ("GPU", float(res.gpus))):
            have = self.capacity.get(name, 0.0)
            if wanted > have:
                return (
                    f"it needs {wanted:g} {name}s but no node of the Ray cluster has more than {have:g} "
                    f"(resources=Resources(...) of its rule)"
                )
        return None

    def submit(self, spec: ActionSpec) -> Future[ActionOutcome]:
        result: Future[ActionOutcome] = Future()
        misfit = self._misfit(spec)
        if misfit is not None:
            result.set_result(ActionOutcome(key=spec.key, error=misfit, error_kind="infra"))
            return result
        if self.mode == "remote":
            # Uploading the inputs takes round trips to the remote: not on the build's thread.
            with self._lock:
                if self._uploads is None:
                    from concurrent.futures import ThreadPoolExecutor

                    self._uploads = ThreadPoolExecutor(4, thread_name_prefix="mlbuild-ray-upload")
            self._uploads.submit(self._submit_remote, spec, result)
            return result
        if self.workspace:
            spec = msgspec.structs.replace(spec, workspace=self.workspace)
        self._submit(spec, result, self.cas_root)
        return result

    def _submit_remote(self, spec: ActionSpec, result: Future[ActionOutcome], whole: bool = False) -> None:
        from mlbuild.remote.ray_remote_data import LostInputs

        try:
            task = self.uploader.task_for(spec, whole=whole)
        except LostInputs as exc:
            # Not a failure of this step: the build runs the inputs' producers again, then it.
            error = f"its inputs could not be put in the remote cache: {exc}"
            result.set_result(ActionOutcome(key=spec.key, error=error, error_kind="input", lost_inputs=exc.digests))
            return
        except Exception as exc:
            error = f"its inputs could not be put in the remote cache: {type(exc).__name__}: {exc}"
            result.set_result(ActionOutcome(key=spec.key, error=error, error_kind="infra"))
            return
        self._submit(spec, result, _enc.encode(task), may_widen=not whole)

    def _again_whole(self, spec: ActionSpec, outcome: ActionOutcome, result: Future[ActionOutcome]) -> bool:
        """A remote-data run that lacked a project file its spec's sources did not name (a
        dynamic import no trace has shown yet) is submitted once more with the whole project."""
        missing = self.uploader.missing_source(spec, outcome)
        if missing is None:
            return False
        note = (f"its run lacked {missing}, which neither its code digest nor an earlier run's trace names "
                "(a dynamic import?); submitted again with every .py file of the project")
        again: Future[ActionOutcome] = Future()
        again.add_done_callback(lambda f: result.set_result(_noted(f.result(), note)))
        try:
            self._uploads.submit(self._submit_remote, spec, again, True)
        except RuntimeError:  # closed: the build is over
            return False
        return True

    def _submit(self, spec: ActionSpec, result: Future[ActionOutcome], arg: Any, may_widen: bool = False) -> None:
        try:
            ref = self._task_for(spec).remote(_enc.encode(spec), arg)
        except Exception as exc:
            result.set_result(ActionOutcome(key=spec.key, error=f"Ray refused the task: {exc}", error_kind="infra"))
            return
        retries = spec.options.retries

        def done(inner: Future[bytes]) -> None:
            exc = inner.exception()
            if exc is None:
                outcome = self._decode(inner.result())
                if outcome.error is None or not may_widen or not self._again_whole(spec, outcome, result):
                    result.set_result(outcome)
            else:
                result.set_result(self._outcome_for(spec.key, exc, retries))

        ref.future().add_done_callback(done)

    def _decode(self, data: bytes) -> ActionOutcome:
        if self.mode != "remote":
            return _dec.decode(data)
        from mlbuild.remote.ray_remote_data import TaskResult

        got = msgspec.msgpack.decode(data, type=TaskResult)
        with self._lock:
            self._worker_bytes_down += got.bytes_down
            self._worker_bytes_up += got.bytes_up
        return got.outcome

    def stats(self) -> dict[str, Any]:
        """What this executor moved, for the build's summary (``--json``: ``executor``): in
        remote-data mode the client's uploads and the workers' downloads and pushes."""
        out: dict[str, Any] = {"name": self.name, "data": self.mode}
        if self.mode == "remote":
            with self._lock:
                out.update(client_blobs_up=self.uploader.blobs_up, client_bytes_up=self.uploader.bytes_up,
                           worker_bytes_down=self._worker_bytes_down, worker_bytes_up=self._worker_bytes_up)
        return out

    def _outcome_for(self, key: str, exc: BaseException, retries: int) -> ActionOutcome:
        from ray import exceptions as rex

        if isinstance(exc, rex.WorkerCrashedError | rex.NodeDiedError | rex.OutOfMemoryError | rex.LocalRayletDiedError):
            tried = f" (tried {retries + 1} times)" if retries else ""
            return ActionOutcome(key=key, error=f"its Ray worker died{tried}: {type(exc).__name__}", error_kind="lost")
        message = str(exc).strip().splitlines()
        return ActionOutcome(key=key, error=f"Ray: {type(exc).__name__}: {message[-1] if message else ''}", error_kind="infra")

    @property
    def outputs_remote(self) -> bool:
        """The outputs stay in the remote CAS (the build downloads only what it needs and
        writes the action entry without uploading blobs)."""
        return self.mode == "remote"

    def close(self) -> None:
        if self._uploads is not None:
            self._uploads.shutdown(wait=False, cancel_futures=True)
        self.session.close()
