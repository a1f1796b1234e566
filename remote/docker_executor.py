"""The docker executor: each step in a container of its own image, pinned by digest.

What a step's container sees:

| path in the container | what | mode |
| --- | --- | --- |
| the workspace's own absolute path | the workspace (the rule's code, source inputs) | read-only |
| ``/mlbuild/cas`` | the host's CAS (the step's inputs are blobs there) | read-only |
| ``/mlbuild/scratch`` | this action's scratch directory: spec in, outcome and new blobs out | writable |
| ``/mlbuild/src/mlbuild`` | the mlbuild package running this build (on ``PYTHONPATH``) | read-only |

The container runs ``python3 -m mlbuild.engine.run.runner_main`` (the same runner as every other
executor) as the host user. Afterwards every blob it wrote is checked against its digest and
adopted into the host CAS; a blob that does not match fails the action and never enters the CAS.
The image needs ``python3`` with mlbuild's runtime dependencies (msgspec, xxhash, numpy).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar

import msgspec

import mlbuild
from mlbuild.cache.cas import CAS
from mlbuild.cache.digest import digest_file
from mlbuild.cache.trees import read_tree
from mlbuild.engine.interfaces import (
    RUNNER_NEW_BLOBS_DIR,
    RUNNER_OUTCOME_FILE,
    RUNNER_SPEC_FILE,
    ActionOutcome,
    ActionSpec,
    ExecutorContext,
    ExecutorOptions,
)
from mlbuild.remote.images import docker_client
from mlbuild.remote.resources import memory_bytes

__all__ = ["DockerExecutor", "DockerOptions", "container_limits"]

CAS_MOUNT = "/mlbuild/cas"
SCRATCH_MOUNT = "/mlbuild/scratch"
SRC_MOUNT = "/mlbuild/src"
# The kernel's answer to SIGKILL (the OOM killer, `docker kill`): the step may succeed on retry.
KILLED_EXIT_CODES = frozenset({137})

_enc = msgspec.msgpack.Encoder()
_dec = msgspec.msgpack.Decoder(ActionOutcome)


class _ContainerLost(Exception):
    """The container was killed (out of memory, ``docker kill``): worth a retry."""


def container_limits(spec: ActionSpec) -> dict[str, Any]:
    """``containers.run`` keyword arguments for the step's ``Resources``."""
    import docker

    res = spec.options.resources
    limits: dict[str, Any] = {"nano_cpus": int(res.cpus * 1_000_000_000)}
    memory = memory_bytes(res.memory)
    if memory is not None:
        limits["mem_limit"] = memory
    if res.gpus:
        # What `docker run --gpus N` sends.
        limits["device_requests"] = [docker.types.DeviceRequest(count=res.gpus, capabilities=[["gpu"]])]
    return limits


class DockerOptions(ExecutorOptions, frozen=True, kw_only=True):
    """``--executor docker``'s own options."""

    docker_network: str | None = None  # the containers' Docker network (default: Docker's default bridge)


class DockerExecutor:
    """Runs each action in a container of its image, ``jobs`` at a time."""

    name: ClassVar[str] = "docker"
    options_type: ClassVar[type[ExecutorOptions]] = DockerOptions
    needs_image: ClassVar[bool] = True
    # The container mounts the host's CAS and workspace: they are local paths here.
    needs_shared_path: ClassVar[bool] = False

    def __init__(self, context: ExecutorContext, options: ExecutorOptions | None = None) -> None:
        opts = options if isinstance(options, DockerOptions) else DockerOptions()
        self.client = docker_client()
        self.cas = CAS(context.cas_root)
        self.network = opts.docker_network
        self.source = Path(mlbuild.__file__).resolve().parent
        self._pool = ThreadPoolExecutor(max(1, context.jobs), thread_name_prefix="mlbuild-docker")
        self._live: dict[str, Any] = {}  # container id -> container, for close() to kill
        self._lock = threading.Lock()
        self._closing = False

    def submit(self, spec: ActionSpec) -> Future[ActionOutcome]:
        result: Future[ActionOutcome] = Future()

        def run() -> None:
            try:
                result.set_result(self._run_with_retries(spec))
            except BaseException as exc:  # the future never raises: errors are outcomes
                result.set_result(ActionOutcome(key=spec.key, error=f"{type(exc).__name__}: {exc}", error_kind="infra"))

        self._pool.submit(run)
        return result

    def _run_with_retries(self, spec: ActionSpec) -> ActionOutcome:
        if spec.image is None:
            return ActionOutcome(
                key=spec.key,
                error_kind="infra",
                error="--executor docker runs every step in a container image, and this one has none: "
                "give it one (target(image=...), @rule(image=...), or [workspace] image in mlbuild.toml)",
            )
        attempts = spec.options.retries + 1
        for attempt in range(attempts):
            try:
                return self._run_once(spec)
            except _ContainerLost as exc:
                if attempt + 1 == attempts or self._closing:
                    return ActionOutcome(key=spec.key, error=str(exc), error_kind="lost")
        raise AssertionError("unreachable")

    def _run_once(self, spec: ActionSpec) -> ActionOutcome:
        import docker

        scratch = Path(tempfile.mkdtemp(prefix="docker-", dir=self.cas.tmp))
        try:
            (scratch / RUNNER_SPEC_FILE).write_bytes(_enc.encode(spec))
            try:
                container = self.client.containers.run(
                    spec.image,
                    ["python3", "-m", "mlbuild.engine.run.runner_main", "--cas", CAS_MOUNT, "--scratch", SCRATCH_MOUNT],
                    detach=True,
                    user=f"{os.getuid()}:{os.getgid()}",
                    working_dir=spec.workspace,
                    environment={
                        "PYTHONPATH": SRC_MOUNT,
                        "PYTHONDONTWRITEBYTECODE": "1",
                        "HOME": "/tmp",
                    },
                    volumes={
                        spec.workspace: {"bind": spec.workspace, "mode": "ro"},
                        str(self.cas.root): {"bind": CAS_MOUNT, "mode": "ro"},
                        str(scratch): {"bind": SCRATCH_MOUNT, "mode": "rw"},
                        str(self.source): {"bind": f"{SRC_MOUNT}/mlbuild", "mode": "ro"},
                    },
                    labels={"dev.mlbuild.action": spec.key, "dev.mlbuild.label": spec.label},
                    network=self.network,
                    **container_limits(spec),
                )
            except docker.errors.ImageNotFound:
                return self._error(spec, f"its image {spec.image} is not in the Docker engine (pull or load it)")
            except docker.errors.APIError as exc:
                return self._error(spec, f"its container could not start in image {spec.image}: {exc.explanation or exc}")
            with self._lock:
                self._live[container.id] = container
            try:
                status = container.wait()
                output = container.logs(stdout=True, stderr=True).decode(errors="replace")
                state = self.client.api.inspect_container(container.id)["State"]
            finally:
                with self._lock:
                    self._live.pop(container.id, None)
                try:
                    container.remove(force=True)
                except docker.errors.APIError:
                    pass
            code = int(status.get("StatusCode", -1))
            outcome_path = scratch / RUNNER_OUTCOME_FILE
            if code == 0 and outcome_path.exists():
                return self._collect(spec, _dec.decode(outcome_path.read_bytes()), scratch / RUNNER_NEW_BLOBS_DIR)
            tail = "\n".join(output.rstrip().splitlines()[-30:])
            if state.get("OOMKilled"):
                raise _ContainerLost(f"its container ran out of memory (limit {spec.options.resources.memory})\n{tail}")
            if code in KILLED_EXIT_CODES or self._closing:
                raise _ContainerLost(f"its container was killed (exit code {code})\n{tail}")
            return self._error(spec, f"its container exited with code {code} before the step finished", output)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def _error(self, spec: ActionSpec, message: str, output: str = "") -> ActionOutcome:
        log = self.cas.put_bytes(output.encode()) if output else None
        return ActionOutcome(key=spec.key, error=message, error_kind="infra", log_digest=log)

    def _collect(self, spec: ActionSpec, outcome: ActionOutcome, new_blobs: Path) -> ActionOutcome:
        """Adopt the blobs the container wrote, each only if its content matches its name."""
        if new_blobs.is_dir():
            for sub in new_blobs.iterdir():
                for blob in sub.iterdir() if sub.is_dir() else ():
                    actual, _ = digest_file(blob)
                    if actual != blob.name:
                        return self._error(spec, f"the container wrote a blob whose content does not match its digest {blob.name}")
                    self.cas.adopt_file(blob, actual)
        needed = [o.digest for o in outcome.outputs] + ([outcome.log_digest] if outcome.log_digest else [])
        for ref in outcome.outputs:
            if ref.codec == "tree" and self.cas.has(ref.digest):
                needed.extend(e.digest for e in read_tree(self.cas, ref.digest))
        missing = [d for d in needed if not self.cas.has(d)]
        if missing:
            return self._error(spec, f"the container reported outputs it did not write: {', '.join(missing[:3])}")
        return outcome

    def close(self) -> None:
        self._closing = True
        with self._lock:
            live = list(self._live.values())
        for container in live:
            try:
                container.kill()
            except Exception:  # already gone: nothing to stop
                pass
        self._pool.shutdown(wait=True, cancel_futures=True)
