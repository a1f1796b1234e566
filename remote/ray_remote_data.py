"""Remote-data mode of the Ray executors: nothing is shared between the client and the cluster
but the remote cache (an fsspec URL: a bucket, usually).

What moves where (docs/executors.md has the diagram):

- client -> remote CAS, before a step is submitted: its input blobs the remote lacks (trees with
  their entries) and its *input root*: the project source files its code covers
  (``ActionSpec.sources``: its code digest's files and those its last run's trace loaded) and its
  ``File()`` inputs, as an ``InputRoot`` manifest (path -> digest) whose blobs are the files'
  bytes. A run that fails for lack of a project file outside that set (a dynamic import no
  trace has seen yet) is submitted once more with every ``.py`` file of the project.
- client -> Ray task: the ActionSpec and a ``RemoteTask`` (the URL, the timeout, the input
  root's digest). Never a client path, never a credential: those reach the workers through the
  Ray runtime env (``MLBUILD_REMOTE_OPTIONS``, ``AWS_*``) or the RayCluster's pod env.
- worker: a cache of its own on the node, inputs fetched by digest and verified, the input root
  written to a scratch folder, the step run there by the same runner as every executor, the
  outputs and log pushed as blobs; the outcome (digests, timings, log digest, node) returned.
- client: records the result and writes the action entry, last (blobs first, entry last: a
  worker lost mid-step leaves blobs no entry names, never an entry without its blobs), and
  downloads only what it needs.

A step whose rule names an image runs the code baked into its image (its digest is in the key):
the client ships its ``File()`` inputs and only the *digests* of its source files
(``InputRoot.baked``); the worker, which must run from that image, takes each file from the
folder the image holds the workspace in (``$MLBUILD_IMAGE_WORKSPACE``, set by the image's
Dockerfile) after checking its digest. A copy that differs, or a worker not from such an image,
fails the step before it runs: code that differs from the key never runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import sys
import tempfile
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import msgspec

from mlbuild.cache.cas import CAS
from mlbuild.cache.digest import copy_hashing, digest_file
from mlbuild.cache.records import ArtifactRef, TreeEntry
from mlbuild.engine.interfaces import ActionOutcome, ActionSpec, RemoteCacheSettings

__all__ = ["ENV_IMAGE_WORKSPACE", "InputRoot", "LostInputs", "RemoteTask", "TaskResult", "Uploader", "missing_paths",
           "run_step_remote", "worker_cache_dir", "worker_env"]

ENV_REMOTE_OPTIONS = "MLBUILD_REMOTE_OPTIONS"
ENV_WORKER_CACHE = "MLBUILD_WORKER_CACHE"
# Set by an image (``ENV MLBUILD_IMAGE_WORKSPACE=/app`` in its Dockerfile): the folder its
# Dockerfile copied the workspace to; image steps take their source files from there.
ENV_IMAGE_WORKSPACE = "MLBUILD_IMAGE_WORKSPACE"
SMALL = 4 * 1024 * 1024
# Folders of a workspace that are never project source.
_SKIP_DIRS = {".git", ".hg", ".venv", "venv", "__pycache__", "node_modules", "mlbuild-out", ".mlbuild", ".tox"}
# Variables the workers need to reach the remote; their values are never printed.
_FORWARDED_PREFIXES = ("AWS_", "GOOGLE_", "AZURE_")
_FORWARDED = {ENV_REMOTE_OPTIONS, "RAY_AUTH_MODE"}


class InputRoot(msgspec.Struct, frozen=True):
    """The files a step needs from the project, by content: workspace-relative path -> digest."""

    files: dict[str, str]  # shipped: each digest's blob is in the remote CAS
    schema: int = 1
    # Not shipped: taken from the image's copy of the workspace ($MLBUILD_IMAGE_WORKSPACE) after
    # checking its digest (a step whose rule names an image runs the code baked into it).
    baked: dict[str, str] = {}


class RemoteTask(msgspec.Struct, frozen=True):
    """What a remote-data Ray task gets besides its ActionSpec: where the data is, not how to
    get in (credentials come from the worker's environment)."""

    url: str
    timeout: float
    input_root: str  # digest of an InputRoot blob
    schema: int = 1


class TaskResult(msgspec.Struct):
    """What a remote-data Ray task returns: the step's outcome and the bytes its worker moved
    (the build's summary adds them up: ``RayExecutor.stats``)."""

    outcome: ActionOutcome
    bytes_down: int = 0  # fetched from the remote into the worker's cache (inputs, input root)
    bytes_up: int = 0  # pushed to the remote (outputs, log)
    schema: int = 1


class LostInputs(LookupError):
    """Input artifacts whose bytes are neither in the local cache nor on the remote: the build
    runs their producers again (``digests``: the inputs' top-level refs)."""

    def __init__(self, digests: list[str]) -> None:
        super().__init__(f"blob(s) {', '.join(digests)} are neither in the local cache nor on the remote")
        self.digests = digests


_enc = msgspec.msgpack.Encoder()
_dec_root = msgspec.msgpack.Decoder(InputRoot)
_dec_task = msgspec.msgpack.Decoder(RemoteTask)
_dec_spec = msgspec.msgpack.Decoder(ActionSpec)
_dec_tree = msgspec.msgpack.Decoder(list[TreeEntry])


def worker_env(settings: RemoteCacheSettings, environ: dict[str, str] | None = None, *,
               forward_credentials: bool = True) -> dict[str, str]:
    """The variables a worker needs to reach the remote: the transport's options and the
    cloud credentials of this process (not when the workers hold their own: a KubeRay
    Secret). For the Ray runtime env; never printed."""
    env = dict(os.environ if environ is None else environ)
    out = {k: v for k, v in env.items() if forward_credentials and (k.startswith(_FORWARDED_PREFIXES) or k in _FORWARDED)}
    if settings.options and forward_credentials:
        out[ENV_REMOTE_OPTIONS] = json.dumps(settings.options)
    return out


def worker_cache_dir() -> str:
    """The node's own cache: ``$MLBUILD_WORKER_CACHE``, else one under the node's temp folder."""
    return os.environ.get(ENV_WORKER_CACHE) or os.path.join(tempfile.gettempdir(), f"mlbuild-worker-{os.getuid()}")


_remotes: dict[tuple[str, float, str], Any] = {}


def _open_remote(url: str, timeout: float) -> Any:
    """One client per remote and options in a process: a Ray worker runs many steps, and making
    an S3 client costs more than a small step."""
    from mlbuild.remote.fsspec_cache import FsspecRemoteCache, storage_options

    raw = os.environ.get(ENV_REMOTE_OPTIONS) or "{}"
    key = (url, timeout, raw)
    remote = _remotes.get(key)
    if remote is None:
        remote = _remotes[key] = FsspecRemoteCache(url, storage_options=storage_options(url, timeout, json.loads(raw)))
    return remote


# -- the client side ------------------------------------------------------------------------


class Uploader:
    """Puts what a step needs into the remote CAS before it is submitted. Thread-safe; what
    is known to be on the remote is asked about once per build."""

    def __init__(self, settings: RemoteCacheSettings, cas_root: str, workspace: str) -> None:
        self.remote = _open_remote(settings.url, settings.timeout)
        self.settings = settings
        self.cas = CAS(cas_root)
        self.workspace = Path(workspace)
        self._there: set[str] = set()
        self._lock = threading.Lock()
        self._sources: dict[str, tuple[tuple[int, int], str]] = {}  # rel -> (stat signature, digest)
        self._listing: list[str] | None = None
        self.bytes_up = 0
        self.blobs_up = 0

    def task_for(self, spec: ActionSpec, *, whole: bool = False) -> RemoteTask:
        """Upload the step's inputs and input root; the task to send with it. ``whole``: its
        source files are every ``.py`` file of the project, not ``spec.sources`` (also when a
        spec comes without them). Raises ``LostInputs`` naming the inputs whose bytes are
        neither here nor on the remote, ``ValueError`` naming a source file changed since it
        was hashed."""
        lost: list[str] = []
        for inp in spec.inputs:
            for ref in inp.refs:
                try:
                    self._put_ref(ref)
                except LookupError:
                    lost.append(ref.digest)
        if lost:
            raise LostInputs(lost)
        code = self._whole_project() if whole or not spec.sources else dict(spec.sources)
        files: dict[str, str] = {}
        if spec.image is None:
            for rel, digest in code.items():
                if self._source_digest(rel) != digest:
                    raise ValueError(f"{rel} changed while the build ran: build again")
                self._put_path(digest, str(self.workspace / rel))
            files.update(code)
        for rel in [p for i in spec.inputs if i.path is not None for p in self._expand(i.path)]:
            digest = self._source_digest(rel)
            self._put_path(digest, str(self.workspace / rel))
            files[rel] = digest
        # An image step's sources go by digest only: its worker takes them from the image.
        baked = {} if spec.image is None else code
        data = _enc.encode(InputRoot(files=dict(sorted(files.items())), baked=dict(sorted(baked.items()))))
        root = self.cas.put_bytes(data)
        self._put_local(root)
        return RemoteTask(url=self.settings.url, timeout=self.settings.timeout, input_root=root)

    def missing_source(self, spec: ActionSpec, outcome: ActionOutcome) -> str | None:
        """The project file a failed run lacked (an import or open of a path outside the files
        it was given: a dynamic import its code digest cannot see and no trace has shown yet),
        when submitting it again with the whole project would give it; else None."""
        if outcome.error is None or not spec.sources:
            return None
        listing = self._listed()
        for rel in missing_paths(outcome.error):
            # A module's file, or any file of a package (a folder a namespace package lacks).
            covered = [p for p in listing if p == rel or p.startswith(rel + "/")]
            if any(p not in spec.sources for p in covered):
                return rel
        return None

    def _listed(self) -> list[str]:
        with self._lock:
            if self._listing is None:
                # Listed once per build: a file added meanwhile is not shipped, and a file
                # changed meanwhile fails the build's trace check rather than going unnoticed.
                self._listing = self._project_sources()
            return self._listing

    def _whole_project(self) -> dict[str, str]:
        return {rel: self._source_digest(rel) for rel in self._listed()}

    def _project_sources(self) -> list[str]:
        """Every ``.py`` file of the project: a superset of what any step's code digest covers
        (the build's trace check confirms what the worker ran is what the key describes)."""
        out: list[str] = []
        for dirpath, dirnames, filenames in os.walk(self.workspace):
            dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS and not d.startswith("."))
            for name in filenames:
                if name.endswith(".py"):
                    out.append(Path(os.path.relpath(os.path.join(dirpath, name), self.workspace)).as_posix())
        return out

    def _expand(self, rel: str) -> list[str]:
        path = self.workspace / rel
        if path.is_dir():
            return sorted(Path(os.path.relpath(os.path.join(d, n), self.workspace)).as_posix()
                          for d, _, names in os.walk(path) for n in names)
        return [rel]

    def _source_digest(self, rel: str) -> str:
        path = self.workspace / rel
        st = os.stat(path)
        sig = (st.st_mtime_ns, st.st_size)
        known = self._sources.get(rel)
        if known is not None and known[0] == sig:
            return known[1]
        digest = digest_file(path)[0]
        self._sources[rel] = (sig, digest)
        return digest

    def _put_ref(self, ref: ArtifactRef) -> None:
        self._put_local(ref.digest)
        if ref.codec == "tree":
            entries = _dec_tree.decode(self.cas.get_bytes(ref.digest)) if self.cas.has(ref.digest) else []
            for entry in entries:
                self._put_local(entry.digest)

    def _put_local(self, digest: str) -> None:
        if not self.cas.has(digest):
            if not self._on_remote(digest):
                raise LookupError(f"blob {digest} is neither in the local cache nor on the remote")
            return
        self._put_path(digest, self.cas.path_str(digest))

    def _on_remote(self, digest: str) -> bool:
        with self._lock:
            if digest in self._there:
                return True
        if self.remote.has_blob(digest):
            with self._lock:
                self._there.add(digest)
            return True
        return False

    def _put_path(self, digest: str, path: str) -> None:
        if self._on_remote(digest):
            return
        self.remote.push_blob(digest, path)
        with self._lock:
            self._there.add(digest)
            self.blobs_up += 1
            self.bytes_up += os.path.getsize(path)


_MISSING = (
    re.compile(r"No module named '([\w.]+)'"),  # ModuleNotFoundError
    re.compile(r"cannot import name '(\w+)' from '([\w.]+)'"),  # ImportError
    re.compile(r"No such file or directory: '([^']+)'"),  # FileNotFoundError (workspace-relative on a worker)
)


def missing_paths(error: str) -> list[str]:
    """The workspace paths an error says were missing: ``lib/extra.py`` for a path, ``lib/extra``
    for a module or package (any file under it, or ``lib/extra.py``)."""
    out: list[str] = []
    for match in _MISSING[0].finditer(error):
        out += [match[1].replace(".", "/"), match[1].replace(".", "/") + ".py"]
    for match in _MISSING[1].finditer(error):
        out += [f"{match[2]}.{match[1]}".replace(".", "/"), f"{match[2]}.{match[1]}".replace(".", "/") + ".py"]
    for match in _MISSING[2].finditer(error):
        if not os.path.isabs(match[1]):
            out.append(Path(match[1]).as_posix())
    return out


# -- the worker side ------------------------------------------------------------------------


class _Fetcher:
    def __init__(self, remote: Any, cas: CAS) -> None:
        self.remote = remote
        self.cas = cas
        self.bytes_down = 0

    def blob(self, digest: str) -> None:
        """Make sure the worker's CAS holds ``digest``, fetched from the remote and verified."""
        if self.cas.has(digest):
            return
        data = self.remote.read_blob(digest, SMALL)
        if data is not None:
            actual = self.cas.put_verified(digest, data)
            got = len(data)
        else:
            tmp = self.cas.temp_path()
            actual = self.remote.fetch_blob(digest, tmp)
            got = os.path.getsize(tmp)
            if actual == digest:
                self.cas.adopt_file(tmp, digest)
            else:
                os.unlink(tmp)
        if actual != digest:
            raise ValueError(f"blob {digest} from the remote is corrupt (its bytes hash to {actual})")
        self.bytes_down += got

    def refs(self, refs: Iterable[ArtifactRef]) -> None:
        for ref in refs:
            self.blob(ref.digest)
            if ref.codec == "tree":
                for entry in _dec_tree.decode(self.cas.get_bytes(ref.digest)):
                    self.blob(entry.digest)

    def inputs(self, spec: ActionSpec) -> list[str]:
        """Fetch every input artifact of ``spec``; the digests of those (a tree by its own
        digest) whose bytes the remote no longer has."""
        lost: list[str] = []
        for inp in spec.inputs:
            for ref in inp.refs:
                try:
                    self.refs([ref])
                except FileNotFoundError:
                    lost.append(ref.digest)
        return lost


def _push_outputs(remote: Any, cas: CAS, outcome: ActionOutcome) -> int:
    """Blobs first: a tree's entries before the tree, everything before the client's entry."""
    pushed = 0
    digests: list[str] = []
    for ref in outcome.outputs:
        if ref.codec == "tree":
            digests += [e.digest for e in _dec_tree.decode(cas.get_bytes(ref.digest))]
        digests.append(ref.digest)
    if outcome.log_digest:
        digests.append(outcome.log_digest)
    for digest in dict.fromkeys(digests):
        if not remote.has_blob(digest):
            remote.push_blob(digest, cas.path_str(digest))
            pushed += cas.size(digest)
    return pushed


def node_name() -> str:
    """``hostname/node-id``: which Ray node ran the step (the outcome's and the result's host)."""
    host = socket.gethostname()
    with contextlib.suppress(Exception):
        import ray

        return f"{host}/{ray.get_runtime_context().get_node_id()}"
    return host


class ImageMismatch(Exception):
    """An image step's worker cannot give it the code its key describes."""


def _safe(rel: str) -> str:
    if os.path.isabs(rel) or ".." in Path(rel).parts:
        raise ValueError(f"input root path {rel!r} leaves the workspace")
    return rel


def _from_image(baked: dict[str, str], image: str | None, scratch: str) -> None:
    """Copy an image step's source files from the image's workspace into ``scratch``, each
    checked against the digest the client's workspace has (and the key describes)."""
    base = os.environ.get(ENV_IMAGE_WORKSPACE)
    if not base:
        raise ImageMismatch(
            f"its rule names an image ({image}), but the Ray worker on {node_name()} does not run from an image that "
            f"holds the workspace: {ENV_IMAGE_WORKSPACE} is unset there. Run the cluster's workers from the step's "
            f"image, whose Dockerfile copies the workspace and sets ENV {ENV_IMAGE_WORKSPACE}=<that folder> "
            "(docs/executors.md)")
    for rel, digest in baked.items():
        target = Path(scratch) / _safe(rel)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            actual, _ = copy_hashing(os.path.join(base, rel), target)  # what is copied is what is hashed
        except FileNotFoundError:
            raise ImageMismatch(f"the image's workspace ({ENV_IMAGE_WORKSPACE}={base}) has no {rel}, which the "
                                f"workspace's code uses: rebuild the image ({image})") from None
        if actual != digest:
            raise ImageMismatch(f"the image's copy of {rel} differs from the workspace's: rebuild the image ({image})")


@contextlib.contextmanager
def _off_path(folder: str | None) -> Iterator[None]:
    """While an image step runs: the image's workspace off ``sys.path`` (an image whose
    Dockerfile sets ``PYTHONPATH`` to it), so a module the step imports comes from the checked
    copies or not at all (then the client resubmits with every file, each checked), never from
    an unchecked copy in the image."""
    if not folder:
        yield
        return
    real = os.path.realpath(folder)
    removed = [p for p in sys.path if os.path.realpath(p or os.curdir) == real]
    sys.path[:] = [p for p in sys.path if p not in removed]
    try:
        yield
    finally:
        sys.path.extend(p for p in removed if p not in sys.path)


def run_step_remote(spec_bytes: bytes, task_bytes: bytes) -> bytes:
    """The body of a remote-data Ray task: fetch, materialize, run, push; a ``TaskResult`` as msgpack."""
    from mlbuild.engine.run.runner import run_encoded_with

    spec = _dec_spec.decode(spec_bytes)
    task = _dec_task.decode(task_bytes)
    cas = CAS(os.path.join(worker_cache_dir(), "cas"))
    remote = _open_remote(task.url, task.timeout)
    fetch = _Fetcher(remote, cas)
    scratch = tempfile.mkdtemp(prefix="ws-", dir=str(cas.tmp))
    try:
        try:
            fetch.blob(task.input_root)
            root = _dec_root.decode(cas.get_bytes(task.input_root))
            for rel, digest in root.files.items():
                fetch.blob(digest)
                target = Path(scratch) / _safe(rel)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(cas.path_str(digest), target)
            lost = fetch.inputs(spec)
            if lost:
                # Gone since the client checked (a cache gc, a lifecycle rule): the build runs
                # their producers again, then this step, as for bytes it finds gone itself.
                failed = ActionOutcome(key=spec.key, host=node_name(), error_kind="input", lost_inputs=lost,
                                       error=f"its input blob(s) {', '.join(lost)} are gone from the remote cache {task.url}")
                return _enc.encode(TaskResult(failed, bytes_down=fetch.bytes_down))
            if root.baked:
                _from_image(root.baked, spec.image, scratch)
        except ImageMismatch as exc:
            failed = ActionOutcome(key=spec.key, host=node_name(), error_kind="infra", error=str(exc))
            return _enc.encode(TaskResult(failed, bytes_down=fetch.bytes_down))
        except Exception as exc:
            failed = ActionOutcome(key=spec.key, host=node_name(), error_kind="infra",
                                   error=f"its inputs could not be fetched from the remote cache {task.url}: "
                                         f"{type(exc).__name__}: {exc}")
            return _enc.encode(TaskResult(failed, bytes_down=fetch.bytes_down))
        local = msgspec.structs.replace(spec, workspace=scratch)
        with _off_path(os.environ.get(ENV_IMAGE_WORKSPACE) if root.baked else None):
            outcome = msgspec.msgpack.decode(run_encoded_with(_enc.encode(local), cas), type=ActionOutcome)
        outcome.host = node_name()
        if outcome.error:
            # Paths as the client knows them: workspace-relative (and the client reads them).
            outcome.error = outcome.error.replace(scratch + os.sep, "")
        pushed = 0
        if outcome.error is None or outcome.log_digest:
            try:
                pushed = _push_outputs(remote, cas, outcome)
            except Exception as exc:
                outcome.outputs = []
                outcome.error = f"its outputs could not be pushed to the remote cache {task.url}: {type(exc).__name__}: {exc}"
                outcome.error_kind = "infra"
        return _enc.encode(TaskResult(outcome, bytes_down=fetch.bytes_down, bytes_up=pushed))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
