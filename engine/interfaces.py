"""The two interfaces through which the engine reaches backends: executors and remote caches.

Records sent to an executor are msgspec Structs, so any backend (a process pool, a
container, a Ray task) can carry them as bytes. Each top-level one has a ``schema`` field,
defaulting to the version of the records sent before the field existed (see the versioning
rules in ``cache/records.py``); ``InputSpec`` is versioned by the ``ActionSpec`` holding it.

This module, ``mlbuild.engine.run.runner`` (the code that runs one action, wherever it runs)
and ``mlbuild.engine.errors`` are the engine's SDK: a backend under ``mlbuild/remote/`` MUST
import nothing else of the engine (``tests/test_import_graph.py`` enforces it), so the engine
can change its insides without touching a backend.
"""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any, ClassVar, Literal, Protocol

import msgspec

from mlbuild.cache.records import ActionResult, ArtifactRef, KeySpec, Trace
from mlbuild.rules.rule import RuleOptions


class InputSpec(msgspec.Struct, frozen=True):
    """One input of an action: an upstream result's artifacts, or a source path."""

    name: str
    refs: list[ArtifactRef] = []
    path: str | None = None  # workspace-relative source file or directory


class ActionSpec(msgspec.Struct, frozen=True):
    """Everything needed to run one action, anywhere that can reach its CAS."""

    key: str
    label: str
    rule_file: str
    rule_func: str
    inputs: list[InputSpec]
    config: Any
    options: RuleOptions
    key_spec: KeySpec
    workspace: str  # absolute path of the workspace root, as seen by the runner
    image: str | None = None  # the image digest, for container executors
    schema: int = 1
    # The project source files the step's code covers, by content (workspace-relative path ->
    # digest of the file's bytes): every file its code digest read (modules passed through for
    # re-exports included) and those the last run of its target loaded (its trace: importlib,
    # registries). Filled only for an executor whose workers share no filesystem with the
    # client (``outputs_remote``: remote/ray_remote_data.py ships or checks exactly these);
    # empty otherwise, and in specs from an older mlbuild.
    sources: dict[str, str] = {}


class ActionOutcome(msgspec.Struct):
    """What running an action produced: outputs in the CAS, or an error.

    Not frozen: the runner fills it in as the step goes (error, outputs, log, times), and a
    backend may add to ``error`` what it knows of a lost worker. It is never stored as such:
    the build copies its fields into a (frozen) ``ActionResult``.
    """

    key: str
    outputs: list[ArtifactRef] = []
    log_digest: str | None = None
    started: float = 0.0
    finished: float = 0.0
    host: str = ""
    error: str | None = None
    error_kind: Literal["step", "input", "output", "lost", "infra"] | None = None
    pickled: bool = False
    seconds: float | None = None  # the step's run time on the runner's monotonic clock
    schema: int = 1
    trace: Trace | None = None  # what the step loaded and read (engine/keys/trace.py)
    # Lines for the build's output about how the step was run (a backend that had to submit it
    # again, and why); the build prints each after the step's label.
    notes: list[str] = []
    # Digests of input artifacts (an InputSpec's refs) whose bytes the executor found neither in
    # the local cache nor on the remote: the build runs their producers again, then this step.
    lost_inputs: list[str] = []


# The files of ``python -m mlbuild.engine.run.runner_main`` in its scratch directory: a
# backend that runs an action in a process of its own (a container) writes the spec and reads
# the outcome and the new blobs there.
RUNNER_SPEC_FILE = "spec.msgpack"
RUNNER_OUTCOME_FILE = "outcome.msgpack"
RUNNER_NEW_BLOBS_DIR = "cas"


class RemoteCacheSettings(msgspec.Struct, frozen=True, kw_only=True):
    """What a remote cache is opened with; the engine resolves it (``mlbuild config`` shows it)."""

    url: str
    timeout: float  # seconds: a transport SHOULD bound each request by it
    options: dict[str, Any] = {}  # the transport's own options (``MLBUILD_REMOTE_OPTIONS``)
    signing_key: bytes | None = None  # entries are signed and checked with it when set


class ExecutorContext(msgspec.Struct, frozen=True, kw_only=True):
    """What every executor is made from, whatever its backend: the engine fills it."""

    cas_root: str  # the local CAS's directory: inputs are read and outputs written there
    workspace: str  # the workspace root (absolute), where rule modules and source inputs are
    jobs: int  # steps to run at once (-j)
    build_id: str  # the build this executor runs for; backends label their work with it
    # The build's remote cache, when one is set: a backend whose workers share no filesystem
    # with this machine moves data through it (remote/ray_remote_data.py).
    remote: RemoteCacheSettings | None = None


class ExecutorOptions(msgspec.Struct, frozen=True, kw_only=True):
    """Base of a backend's own options (``--ray-*``, ``--kube-*``, ``--docker-*``).

    A backend subclasses it; a field's name is the command-line flag's ``dest`` (the flag
    ``--kube-namespace`` fills ``kube_namespace``), and None means "not given"."""


class NoOptions(ExecutorOptions, frozen=True, kw_only=True):
    """The options of a backend that takes none."""


class Executor(Protocol):
    """Runs actions. ``submit`` returns at once; the future never raises, errors are outcomes.

    A backend is constructed as ``cls(context, options)`` where ``options`` is an instance of
    its ``options_type``. It declares what the engine must provide before anything runs:
    ``needs_image`` (every step runs in a container image, so images are resolved to digests
    and enter the keys even for targets that name none) and ``needs_shared_path`` (its workers
    reach the CAS and the workspace through a filesystem path, so both must be mounted where
    the workers run). The class says what a backend may need; an instance, which knows its mode,
    may say less (a Ray executor moving data through the remote cache needs no shared path).
    """

    name: ClassVar[str]
    options_type: ClassVar[type[ExecutorOptions]]
    needs_image: ClassVar[bool]
    needs_shared_path: ClassVar[bool]

    def submit(self, spec: ActionSpec) -> Future[ActionOutcome]: ...

    def close(self) -> None: ...


class RemoteCache(Protocol):
    """A cache shared between machines. Any method may raise any error of its transport (the
    remote session turns each into "the remote is unavailable"); ``get_action`` raises ``InvalidEntry`` for an entry that
    exists but must not be used (bad signature, another action's entry, undecodable)."""

    url: str

    def get_action(self, key: str) -> ActionResult | None: ...

    def put_action(self, result: ActionResult) -> None: ...

    def has_blob(self, digest: str) -> bool: ...

    def read_blob(self, digest: str, max_size: int) -> bytes | None:
        """A small blob's bytes, unverified (the caller hashes them before use), or None when
        the blob is larger than ``max_size``; raises FileNotFoundError when there is none."""
        ...

    def fetch_blob(self, digest: str, dest: str, size_hint: int | None = None) -> str:
        """Download a blob to ``dest`` (a path) and return the digest of the bytes written,
        computed while streaming; the caller compares it with ``digest`` before use."""
        ...

    def push_blob(self, digest: str, src: str) -> None: ...


class InvalidEntry(Exception):
    """A remote action entry exists but must not be used; it counts as a miss."""
