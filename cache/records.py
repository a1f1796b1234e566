"""Every record the cache stores, as msgspec Structs (the records an executor is sent and
sends back are in ``engine/interfaces.py``, the engine's own stored records in
``engine/records.py``).

Versioning (MUST for every new record or change):

- A record stored on its own (``ActionResult``, ``BuildRecord``, ``RemoteStats``) has a
  ``schema`` field whose default is the version of the records written before the field
  existed, so old bytes still decode; a writer of a newer version sets it. A change that old
  readers cannot ignore bumps that record's constant below. Never reuse a removed field's name.
- A record nested in another (``ArtifactRef``, ``BuildAction``, ``PlannedStep``, ``Edge``,
  ``FunctionEntry``) is versioned by the record that holds it.
- A record whose bytes are hashed (``KeySpec`` and the ``CodeManifest``/``EnvManifest`` whose
  digests it holds) is versioned by ``KEY_SCHEMA``: changing any of them changes keys, so it
  bumps ``KEY_SCHEMA`` (``tests/test_keys.py`` pins golden digests to catch an accident). A
  tree blob (a list of ``TreeEntry``) is versioned by its ``ArtifactRef`` codec name (``tree``
  is version 1; another layout would be another codec), since its digest is an output digest.

Records are frozen, except where the code says why not.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

KEY_SCHEMA = 1
# Action results: 1 = no trace (``producers`` and ``seconds`` are optional and read as unknown
# when absent); 2 = results carry the ``Trace`` of what their step used. A result without a
# trace is never taken as a hit (nothing can verify it).
ACTION_SCHEMA = 2
# ``RemoteStats`` kept in the index's memo table.
REMOTE_STATS_SCHEMA = 1
# Build records: 1 = no schema field (no plan, no edges, no workspace id); 2 = the build's
# graph is recorded as it is planned and resolved (``plan``, ``edges``), and its process.
BUILD_SCHEMA = 2

# "msgpack", "npy", "safetensors", "tree", "pickle", or a codec of the registry in
# mlbuild.rules.codecs ("arrow", "skops", a team's own); a str so new codecs need no schema change.
Codec = str
# interrupted: it was running when the build was stopped; not_run: the build ended before it
# could start (``BuildAction.because`` says why)
ActionStatus = Literal["cached", "remote", "executed", "failed", "skipped", "interrupted", "not_run"]


class ArtifactRef(msgspec.Struct, frozen=True):
    """One output of an action: its name (``value`` or ``files``), digest, encoding and size."""

    name: str
    digest: str
    codec: Codec
    size: int


class TreeEntry(msgspec.Struct, frozen=True, array_like=True):
    """One file of a directory artifact; a tree blob is a sorted list of these."""

    path: str
    digest: str
    size: int
    executable: bool = False


class FileStat(msgspec.Struct, frozen=True, array_like=True):
    """A source file's content digest, valid while its (size, mtime, inode) stay the same
    (the ``stat`` memo keyspace; a cache, so it is versioned by decoding or missing)."""

    size: int
    mtime_ns: int
    ino: int
    digest: str


class FunctionEntry(msgspec.Struct, frozen=True):
    """One project function, class or constant covered by a code digest."""

    name: str  # module-qualified, e.g. ``models.train.fit_epochs``
    file: str  # workspace-relative path
    source: str  # digest of the normalized source, stored in the CAS


class CodeManifest(msgspec.Struct, frozen=True):
    """What a code digest covers; the code digest is the digest of this record's bytes."""

    rule: str
    functions: list[FunctionEntry]
    imports: list[str]  # third-party top-level modules the code reaches


class EnvManifest(msgspec.Struct, frozen=True):
    """What an environment digest covers: an image digest, or Python and package versions."""

    image: str | None = None
    python: str | None = None
    packages: dict[str, str] = {}


class KeySpec(msgspec.Struct, frozen=True):
    """Everything an action key is computed from; ``key = digest(canonical(KeySpec))``."""

    schema: int
    rule: str
    code: str
    inputs: dict[str, str]
    config: Any
    env: str


class Trace(msgspec.Struct, frozen=True, kw_only=True):
    """What a step's process really loaded and read while it ran; a cached result is a hit only
    while its trace still holds (see docs/keys.md). Versioned by the ``ActionResult`` holding it.
    """


    # project source file -> digest of the bytes compiled; workspace-relative, absolute outside it
    files: dict[str, str] = {}
    packages: dict[str, str] = {}  # installed distribution -> version
    via: dict[str, str] = {}  # distribution -> the project module or distribution that imported it
    # variable -> value (``xxh3:<digest>`` for long or secret-looking ones), None when unset
    env: dict[str, str | None] = {}
    # workspace file or folder read but not declared as an input -> digest ("" when missing)
    reads: dict[str, str] = {}


class ActionResult(msgspec.Struct, frozen=True):
    """What the action cache holds under an action key."""

    key: str
    label: str
    rule: str
    outputs: list[ArtifactRef]
    key_spec: KeySpec
    log_digest: str | None = None
    started: float = 0.0
    finished: float = 0.0
    host: str = ""
    executor: str = "local"
    pickled: bool = False
    # input name -> workspace path of the source file or directory it was read from (lineage)
    sources: dict[str, str] = {}
    # input name -> key of the action whose result that input was, as it ran (lineage walks
    # these, never digests: two actions can produce the same bytes). None: recorded before
    # mlbuild kept producers, so the upstream of such a result is unknown, not guessed.
    producers: dict[str, str] | None = None
    seconds: float | None = None  # how long the step ran, on the worker's monotonic clock
    schema: int = 1  # see ACTION_SCHEMA
    # What the step really used; None only for entries written before traces existed, which
    # are never trusted (a lookup treats them as a miss).
    trace: Trace | None = None
    # Files in the ``files`` output the rule marks as metrics / plot series
    # (``@rule(metrics=[...], plots=[...])``), recorded when it ran so that `metrics`, `exp`
    # and the UI read them without loading any BUILD.py or rule source.
    metric_files: list[str] = []
    plot_files: list[str] = []

    def result_digest(self) -> str:
        """The digest a downstream action sees for this whole result."""
        from mlbuild.cache.digest import digest_value

        return digest_value([[o.name, o.digest] for o in sorted(self.outputs, key=lambda o: o.name)])

    def output(self, name: str) -> ArtifactRef | None:
        return next((o for o in self.outputs if o.name == name), None)


class ResultDigests:
    """``result.result_digest()``, computed once per result object: a build asks for it as the
    input digest of every consumer and again when it materializes. Keyed by identity, never by
    action key: a step run again in one build (its bytes were lost) may give other outputs."""

    def __init__(self) -> None:
        self._known: dict[int, tuple[ActionResult, str]] = {}  # holding the result keeps its id unique

    def __call__(self, result: ActionResult) -> str:
        known = self._known.get(id(result))
        if known is None or known[0] is not result:
            known = self._known[id(result)] = (result, result.result_digest())
        return known[1]


class BuildAction(msgspec.Struct, frozen=True):
    """One action of a recorded build."""

    label: str
    key: str | None
    status: ActionStatus
    seconds: float = 0.0  # on the build process's monotonic clock: never negative
    error: str | None = None
    log_digest: str | None = None
    because: str | None = None  # skipped: the failed upstream's label; not_run: why it never ran
    # Set when a result under this very key existed but its trace no longer held, e.g.
    # "lib/zoo.py changed (loaded at run time)" (what `why` reports).
    cause: str | None = None


class PlannedStep(msgspec.Struct, frozen=True):
    """One target of a build's plan, written before anything runs: a running build's steps
    that have not run yet, and an old build's graph, come from here (never from BUILD.py)."""

    label: str
    inputs: dict[str, str] = {}  # input name -> label of the target it takes its value from
    sources: dict[str, str] = {}  # input name -> workspace path of a source file or directory
    requested: bool = False


class Edge(msgspec.Struct, frozen=True, array_like=True):
    """In this build, input ``input`` of action ``consumer`` was the result of ``producer``."""

    consumer: str
    input: str
    producer: str


class BuildHead(msgspec.Struct):
    """A build record without its graph (``plan``, ``edges``): what lists, filters and lookups
    by id read. Decoding a record as a head skips the graph's bytes, most of a large build's
    record (a 10,000-step record decodes about 4x faster). See ``BuildRecord``."""

    id: str
    started: float
    finished: float | None
    status: Literal["running", "succeeded", "failed", "interrupted"]
    user: str
    host: str
    workspace: str
    argv: list[str]
    targets: list[str]
    git_commit: str | None = None
    git_dirty: bool | None = None
    executor: str = "local"
    actions: list[BuildAction] = []
    overrides: dict[str, Any] = {}
    rerun_of: str | None = None  # the id of the build that `mlbuild rerun` re-ran
    # Absent from records written before schema 2, which decode with these defaults.
    schema: int = 1
    workspace_id: str = ""  # see ``provenance.workspace_id``; "" in old records
    pid: int = 0  # the building process, with ``process`` to tell a reused pid (abandoned builds)
    process: str = ""  # an identity of that process on ``host`` (boot id and start time)
    seconds: float | None = None  # wall time on the build process's monotonic clock
    name: str | None = None  # `--name`: an experiment's name
    tags: dict[str, str] = {}  # `--tag K=V`


class BuildRecord(BuildHead):
    """One invocation of a build: who, when, where, what, each action's fate, and its graph.

    Not frozen: it is the live state of a running build, rewritten into the index every half
    second so that ``mlbuild ui`` and ``builds`` can follow it. It gains one ``BuildAction`` per
    step; rebuilding a frozen record per step would copy the whole actions list each time
    (quadratic for a 10,000-step build). Only the build loop mutates it, and only while its
    build runs; once ``finished`` is set only ``mlbuild rerun`` writes it once more, to add
    ``rerun_of``.
    """

    plan: list[PlannedStep] = []  # written before anything runs
    edges: list[Edge] = []  # (consumer key, input, producer key), as each key is resolved


class RemoteStats(msgspec.Struct, kw_only=True):
    """What one build or command did with the remote cache; kept for ``mlbuild cache stats``.

    Not frozen: the remote session's counters, incremented (under its lock) as transfers
    happen, then stored once when the session closes.
    """

    schema: int = 1  # see REMOTE_STATS_SCHEMA

    url: str = ""
    state: Literal["unused", "available", "unavailable"] = "unused"
    reason: str | None = None  # why the remote became unavailable
    calls: int = 0  # remote operations attempted
    hits: int = 0
    misses: int = 0
    rejected: int = 0  # entries found but refused (signature, pickled, wrong key)
    corrupt: int = 0  # downloaded blobs whose bytes did not match their digest
    blobs_down: int = 0
    bytes_down: int = 0
    blobs_up: int = 0
    bytes_up: int = 0
    entries_up: int = 0
    finished: float = 0.0
