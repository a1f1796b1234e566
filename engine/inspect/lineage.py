"""Lineage: the tree from an output back to its sources, as the builds recorded it.

Each input of an action names the key of the action whose result it was: a build record's
``edges`` for the actions of that build, and each result's own ``producers`` (as it ran) beyond
it. Lineage walks those keys down to inputs no action produced (source files); it never maps a
digest back to "its" producer, because two actions can produce the same bytes. A digest asked
about by itself maps to every producer, and the answer says so when there are several. Results
recorded before producers were kept show a note instead of a guessed upstream. Everything
returned is a msgspec Struct, so ``msgspec.json.encode`` serializes it for ``--json`` and the UI.

``consumers`` goes the other way ("which actions used this artifact?"): by digest, every
action that took those bytes as an input; by action key, the consumers the builds recorded for
that action. It backs the query functions ``consumers(DIGEST[, DEPTH])`` (direct, or up to DEPTH levels) and
``transitive_consumers(DIGEST)`` (everything downstream, like Bazel's ``rdeps``).
"""

from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import Any

import msgspec

from mlbuild.cache.digest import digest_file, is_digest
from mlbuild.cache.records import ActionResult, ArtifactRef, BuildRecord, Trace
from mlbuild.cache.store import LocalStore
from mlbuild.engine.errors import UserError
from mlbuild.engine.inspect.hashgraph import HashGraph
from mlbuild.engine.plan.workspace import OUTPUT_DIR

__all__ = [
    "Consumer",
    "Environment",
    "FunctionRef",
    "LineageGraph",
    "LineageNode",
    "SourceFile",
    "Upstream",
    "consumers",
    "environment",
    "lineage_tree",
    "query_consumers",
    "resolve_key",
    "resolve_start",
    "Start",
]

UNRECORDED = "recorded before mlbuild kept each input's producer: its upstream is not known (rebuild to record it)"


class FunctionRef(msgspec.Struct, frozen=True):
    """A project function (class, constant) a code digest covers; ``source`` is the digest of
    its normalized source in the CAS."""

    name: str
    file: str
    source: str


class Environment(msgspec.Struct, frozen=True):
    """An environment digest and what it covers (None fields: the manifest is not in the CAS)."""

    digest: str
    image: str | None = None
    python: str | None = None
    packages: dict[str, str] = {}
    known: bool = True


class SourceFile(msgspec.Struct, frozen=True):
    """An input that no action produced: a source file or directory of the workspace."""

    input: str
    digest: str
    path: str | None  # None for results recorded before source paths were stored


class Upstream(msgspec.Struct, frozen=True):
    """An input produced by another action."""

    input: str
    digest: str
    key: str
    label: str


class LineageNode(msgspec.Struct, frozen=True):
    """One action of the lineage, with everything its key was computed from."""

    key: str
    label: str
    rule: str
    depth: int
    code: str
    functions: list[FunctionRef]
    imports: list[str]
    config: Any
    env: Environment
    inputs: dict[str, str]
    upstream: list[Upstream]
    sources: list[SourceFile]
    outputs: list[ArtifactRef]
    result_digest: str
    executor: str
    host: str
    finished: float
    unknown: list[str] = []  # inputs whose producer was not recorded (see ``note``)
    note: str | None = None
    # What the step really loaded and read when it ran (checked on every hit; docs/keys.md).
    trace: Trace | None = None


class LineageGraph(msgspec.Struct, frozen=True):
    """The lineage of ``root``: nodes in breadth-first order from it (each action once, at its
    smallest depth); ``truncated`` lists the upstream keys ``depth`` left unexpanded. ``build``
    is the build whose recorded edges were followed first; ``notes`` say what to know about the
    start (several producers of one digest, a modified file)."""

    root: str
    nodes: list[LineageNode]
    depth: int | None = None
    truncated: list[str] = []
    build: str | None = None
    notes: list[str] = []


class Start(msgspec.Struct, frozen=True):
    """Where a lineage starts: an action key, the build it is taken from, and notes."""

    key: str
    build: BuildRecord | None = None
    notes: list[str] = []


class Consumer(msgspec.Struct, frozen=True):
    """An action that took a digest (or a result derived from it) as input."""

    key: str
    label: str
    input: str
    depth: int


def environment(graph: HashGraph, digest: str) -> Environment:
    manifest = graph.env_manifest(digest)
    if manifest is None:
        return Environment(digest=digest, known=False)
    return Environment(digest, manifest.image, manifest.python, dict(manifest.packages))


def _node(graph: HashGraph, key: str, depth: int, record: BuildRecord | None, labels: dict[str, str]) -> LineageNode:
    result = graph.action(key)
    assert result is not None  # callers only pass keys whose action they read
    spec = result.key_spec
    manifest = graph.code_manifest(spec.code)
    producers = graph.producer_keys(result, record)
    upstream, sources, unknown = [], [], []
    for name, digest in spec.inputs.items():
        up = (producers or {}).get(name)
        if up is not None:
            up_result = graph.action(up)
            label = labels.get(up) or (up_result.label if up_result else "?")
            upstream.append(Upstream(name, digest, up, label))
        elif producers is not None or name in result.sources:
            sources.append(SourceFile(name, digest, result.sources.get(name)))
        else:
            unknown.append(name)
    return LineageNode(
        key=key,
        label=labels.get(key, result.label),
        rule=result.rule,
        depth=depth,
        code=spec.code,
        functions=[FunctionRef(f.name, f.file, f.source) for f in manifest.functions] if manifest else [],
        imports=list(manifest.imports) if manifest else [],
        config=spec.config,
        env=environment(graph, spec.env),
        inputs=dict(spec.inputs),
        upstream=upstream,
        sources=sources,
        outputs=list(result.outputs),
        result_digest=result.result_digest(),
        trace=result.trace,
        executor=result.executor,
        host=result.host,
        finished=result.finished,
        unknown=unknown,
        note=UNRECORDED if unknown else None,
    )


def lineage_tree(
    store: LocalStore,
    key: str,
    depth: int | None = None,
    graph: HashGraph | None = None,
    record: BuildRecord | None = None,
    notes: list[str] | None = None,
) -> LineageGraph:
    """The lineage of action ``key`` down to its sources, cut ``depth`` levels below it,
    following build ``record``'s edges for its actions and each result's producers beyond.

    Iterative (a 10,000-step chain is 10,000 levels deep). Raises UserError for an unknown key.
    """
    graph = graph or HashGraph(store)
    if graph.action(key) is None:
        raise UserError(f"no action {key} in the action cache")
    # A key's label as this build knew it (two targets can share one key).
    labels = {a.key: a.label for a in record.actions if a.key} if record is not None else {}
    nodes: list[LineageNode] = []
    seen = {key}
    truncated: list[str] = []
    todo = deque([(key, 0)])
    while todo:
        current, level = todo.popleft()
        node = _node(graph, current, level, record, labels)
        nodes.append(node)
        for up in node.upstream:
            if up.key in seen or graph.action(up.key) is None:
                continue  # an upstream collected from the cache ends the walk there
            seen.add(up.key)
            if depth is not None and level >= depth:
                truncated.append(up.key)
            else:
                todo.append((up.key, level + 1))
    return LineageGraph(
        root=key, nodes=nodes, depth=depth, truncated=truncated,
        build=record.id if record is not None else None, notes=list(notes or []),
    )


def consumers(store: LocalStore, digest: str, depth: int | None = 1, graph: HashGraph | None = None) -> list[Consumer]:
    """The actions that consumed ``digest``: directly (``depth=1``), up to ``depth`` levels
    downstream, or all of them (``depth=None``), nearest first.

    ``digest`` may be a source file's digest, an action's output or result digest: every action
    that took those bytes as an input (an output digest is followed through the result of each
    action that produced it), level by level through their results' digests. Or it may be an
    action key: the actions the builds recorded as consuming that action's result, and theirs,
    never an action that took the same bytes from another producer.
    """
    graph = graph or HashGraph(store)
    found: dict[str, Consumer] = {}
    by_key = graph.action(digest) is not None

    def inputs_from(result: ActionResult, source: str) -> str:
        if by_key:
            return next((n for n, k in graph.upstream(result).items() if k == source), "")
        return next((n for n, v in result.key_spec.inputs.items() if v == source), "")

    if by_key:
        frontier = [digest]
    else:
        frontier = [digest]
        for producer in graph.producers(digest):
            result = graph.action(producer)
            assert result is not None  # producers() keeps cached actions only
            frontier.append(result.result_digest())
    level = 1
    while frontier and (depth is None or level <= depth):
        nxt: list[str] = []
        for source in dict.fromkeys(frontier):
            found_here = store.index.dependents_of(source) if by_key else store.index.consumers_of(source)
            for key in found_here:
                result = graph.action(key)
                if key in found or result is None:
                    continue  # the indexes outlive deleted actions
                found[key] = Consumer(key, result.label, inputs_from(result, source), level)
                nxt.append(key if by_key else result.result_digest())
        frontier = nxt
        level += 1
    return sorted(found.values(), key=lambda c: (c.depth, c.label, c.key))


def resolve_key(store: LocalStore, text: str, current_package: str = "", graph: HashGraph | None = None) -> str:
    """The action key ``text`` names (see ``resolve_start``)."""
    return resolve_start(store, text, current_package, graph).key


def resolve_start(store: LocalStore, text: str, current_package: str = "", graph: HashGraph | None = None) -> Start:
    """Where the lineage of ``text`` starts: an action key; an output or result digest (every
    action that produced those bytes is named when there are several); a path of a blob in the
    cache (``cas/ab/abcd…``); a file under ``mlbuild-out/`` (the build that put it there); or a
    target label (its most recent successful build in ``graph``'s scope)."""
    graph = graph or HashGraph(store)
    if is_digest(text):
        if graph.action(text) is not None:
            return Start(text, _build_of(graph, text))
        return _start_of_digest(graph, text, f"no action in the cache has key or output digest {text} "
                                "(a file inside a directory output is reached through its directory)")
    if text.startswith(("//", ":")):
        from mlbuild.engine.plan.labels import parse_label

        label = str(parse_label(text, current_package))
        found = graph.latest_build(label)
        if found is None or graph.action(found[1]) is None:
            where = "" if graph.scope.everything else " of this workspace (--all-workspaces looks in every workspace)"
            raise UserError(f"{label} has no recorded result in the builds{where}; build it first: mlbuild build {label}")
        return Start(found[1], found[0])
    return _start_of_path(store, graph, Path(text))


def _build_of(graph: HashGraph, key: str) -> BuildRecord | None:
    """The most recent build in scope that ran or took action ``key``."""
    head = next((r for r in graph.builds() if any(a.key == key for a in r.actions)), None)
    return graph.build(head.id) if head is not None else None


def _start_of_digest(graph: HashGraph, digest: str, missing: str, label: str | None = None) -> Start:
    keys = graph.producers(digest)
    if not keys:
        raise UserError(missing)
    # Prefer the producer of the most recent build in scope (of ``label``, when known).
    for head in graph.builds():
        for a in reversed(head.actions):
            if a.key in keys and (label is None or a.label == label):
                return Start(a.key, graph.build(head.id), _several(graph, digest, keys, a.key))
    if not graph.scope.everything:
        raise UserError(f"{missing.split(' (')[0]} in a build of this workspace (--all-workspaces looks in every workspace)")
    return Start(keys[-1], None, _several(graph, digest, keys, keys[-1]))


def _several(graph: HashGraph, digest: str, keys: list[str], chosen: str) -> list[str]:
    if len(keys) < 2:
        return []
    names = ", ".join(f"{(graph.action(k) or _Unknown).label} ({k[:12]})" for k in keys)
    return [f"{len(keys)} actions produced the bytes {digest}: {names}; following {chosen[:12]}"]


class _Unknown:
    label = "?"


def _start_of_path(store: LocalStore, graph: HashGraph, path: Path) -> Start:
    if not path.exists():
        raise UserError(f"{path}: no such file, and not a label (//pkg:name) or a digest")
    real = path.resolve()
    cas_root = store.cas.root.resolve()
    if cas_root in real.parents and is_digest(real.name):
        return _start_of_digest(graph, real.name, f"{path}: no action in the cache produced it")
    materialized = _materialized(real)
    if materialized is not None:
        label, result_digest, inside = materialized
        start = _start_of_digest(graph, result_digest, f"{path}: the output of {label} there is not in the cache", label)
        notes = list(start.notes)
        if inside is not None and real.is_file():
            digest, _ = digest_file(real)
            if not _in_outputs(graph, start.key, inside, digest):
                notes.append(f"{path} was changed after mlbuild put it there: it is not the bytes {label} produced")
        return Start(start.key, start.build, notes)
    if real.is_file():
        digest, _ = digest_file(real)
        return _start_of_digest(graph, digest, f"{path}: no action in the cache produced it (digest {digest})")
    raise UserError(f"{path}: not an output of any action in the cache")


def _materialized(real: Path) -> tuple[str, str, str | None] | None:
    """For a path under ``mlbuild-out/``: (label, result digest, path inside its files output,
    or None for the value file or the folder itself), from the package's markers."""
    from mlbuild.engine.run.materialize import read_markers

    parts = real.parts
    if OUTPUT_DIR not in parts:
        return None
    base = len(parts) - 1 - parts[::-1].index(OUTPUT_DIR)
    out = Path(*parts[: base + 1])
    # The package folder is the deepest folder whose markers name the next path component.
    for i in range(len(parts) - 1, base, -1):
        package_dir = Path(*parts[:i])
        markers = read_markers(package_dir)
        name = parts[i]
        target = name.split(".value.", 1)[0] if ".value." in name and i == len(parts) - 1 else name
        if target in markers:
            package = package_dir.relative_to(out).as_posix().strip(".")
            inside = "/".join(parts[i + 1 :]) if target == name and len(parts) > i + 1 else None
            return f"//{package}:{target}", markers[target], inside
    return None


def _in_outputs(graph: HashGraph, key: str, inside: str, digest: str) -> bool:
    """Whether file ``inside`` of action ``key``'s files output has ``digest``."""
    from mlbuild.cache.cas import CorruptBlob, MissingBlob
    from mlbuild.cache.trees import read_tree

    result = graph.action(key)
    tree = result.output("files") if result else None
    if tree is None:
        return False
    try:
        return any(e.path == inside and e.digest == digest for e in read_tree(graph.store.cas, tree.digest))
    except (CorruptBlob, MissingBlob):
        return True  # cannot tell: say nothing


def query_consumers(ws: Any, args: list[object], transitive: bool) -> set[Any]:
    """``consumers(DIGEST[, DEPTH])`` and ``transitive_consumers(DIGEST)`` for ``mlbuild query``."""
    from mlbuild.cache.store import open_store
    from mlbuild.engine.plan.labels import parse_label

    name = "transitive_consumers" if transitive else "consumers"
    if not args or not isinstance(args[0], str):
        raise UserError(f"{name}(DIGEST{'' if transitive else '[, DEPTH]'}) needs a 32-hex-digit digest")
    depth: int | None = None if transitive else 1
    if len(args) > 1:
        if transitive or not isinstance(args[1], int) or args[1] < 1:
            raise UserError(f"{name}: bad arguments (use consumers(DIGEST) or consumers(DIGEST, DEPTH))")
        depth = args[1]
    store = open_store(ws.cache_dir)
    try:
        return {parse_label(c.label) for c in consumers(store, args[0], depth)}
    finally:
        store.close()
