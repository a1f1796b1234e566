"""Lineage: the tree from an output back to its sources, read off the hash graph.

Every action result carries the KeySpec it was keyed by; an input digest of a downstream
action is its upstream's result digest, which the ``producers`` index maps back to the
upstream's key. Walking that from one action down to inputs nobody produced (source files)
is the lineage. Everything returned is a msgspec Struct, so ``msgspec.json.encode`` serializes
it for ``--json`` and for the web UI.

``consumers`` goes the other way ("which actions used this artifact?") through the
``consumers`` index, and backs the query functions ``consumers(DIGEST[, DEPTH])`` (direct, or
up to DEPTH levels) and ``transitive_consumers(DIGEST)`` (everything downstream, like Bazel's
``rdeps``).
"""

from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import Any

import msgspec

from mlbuild.cache.digest import digest_file, is_digest
from mlbuild.cache.records import ArtifactRef
from mlbuild.cache.store import LocalStore
from mlbuild.engine.errors import UserError
from mlbuild.engine.inspect.hashgraph import HashGraph

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
    "resolve_key",
]


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


class LineageGraph(msgspec.Struct, frozen=True):
    """The lineage of ``root``: nodes in breadth-first order from it (each action once, at its
    smallest depth); ``truncated`` lists the upstream keys ``depth`` left unexpanded."""

    root: str
    nodes: list[LineageNode]
    depth: int | None = None
    truncated: list[str] = []


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


def _node(graph: HashGraph, key: str, depth: int) -> LineageNode:
    result = graph.action(key)
    assert result is not None  # callers only pass keys whose action they read
    spec = result.key_spec
    manifest = graph.code_manifest(spec.code)
    upstream, sources = [], []
    for name, digest in spec.inputs.items():
        up = graph.producer(digest)
        if up is not None:
            up_result = graph.action(up)
            upstream.append(Upstream(name, digest, up, up_result.label if up_result else "?"))
        else:
            sources.append(SourceFile(name, digest, result.sources.get(name)))
    return LineageNode(
        key=key,
        label=result.label,
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
        executor=result.executor,
        host=result.host,
        finished=result.finished,
    )


def lineage_tree(store: LocalStore, key: str, depth: int | None = None, graph: HashGraph | None = None) -> LineageGraph:
    """The lineage of action ``key`` down to its sources, cut ``depth`` levels below it.

    Iterative (a 10,000-step chain is 10,000 levels deep). Raises UserError for an unknown key.
    """
    graph = graph or HashGraph(store)
    if graph.action(key) is None:
        raise UserError(f"no action {key} in the action cache")
    nodes: list[LineageNode] = []
    seen = {key}
    truncated: list[str] = []
    todo = deque([(key, 0)])
    while todo:
        current, level = todo.popleft()
        node = _node(graph, current, level)
        nodes.append(node)
        for up in node.upstream:
            if up.key in seen:
                continue
            seen.add(up.key)
            if depth is not None and level >= depth:
                truncated.append(up.key)
            else:
                todo.append((up.key, level + 1))
    return LineageGraph(root=key, nodes=nodes, depth=depth, truncated=truncated)


def consumers(store: LocalStore, digest: str, depth: int | None = 1, graph: HashGraph | None = None) -> list[Consumer]:
    """The actions that consumed ``digest``: directly (``depth=1``), up to ``depth`` levels
    downstream, or all of them (``depth=None``), nearest first.

    ``digest`` may be a source file's digest, an action's output digest or its result digest
    (a downstream action's input digest is the upstream's result digest, so an output digest
    is followed through the action that produced it).
    """
    graph = graph or HashGraph(store)
    found: dict[str, Consumer] = {}
    frontier = [digest]
    producer = graph.producer(digest)
    if producer is not None:
        result = graph.action(producer)
        assert result is not None
        frontier.append(result.result_digest())
    level = 1
    while frontier and (depth is None or level <= depth):
        nxt: list[str] = []
        for d in dict.fromkeys(frontier):
            for key in store.index.consumers_of(d):
                result = graph.action(key)
                if key in found or result is None:
                    continue  # the consumers index outlives deleted actions
                name = next((n for n, v in result.key_spec.inputs.items() if v == d), "")
                found[key] = Consumer(key, result.label, name, level)
                nxt.append(result.result_digest())
        frontier = nxt
        level += 1
    return sorted(found.values(), key=lambda c: (c.depth, c.label, c.key))


def resolve_key(store: LocalStore, text: str, current_package: str = "", graph: HashGraph | None = None) -> str:
    """The action key that ``text`` names: an action key, an output or result digest, a path
    of a blob in the cache (``cas/ab/abcd…``), a file under ``mlbuild-out/``, or a target label
    (the action of its most recent recorded build)."""
    graph = graph or HashGraph(store)
    if is_digest(text):
        if graph.action(text) is not None:
            return text
        key = graph.producer(text)
        if key is None:
            raise UserError(
                f"no action in the cache has key or output digest {text} "
                "(a file inside a directory output is reached through its directory)"
            )
        return key
    if text.startswith(("//", ":")):
        from mlbuild.engine.plan.labels import parse_label

        label = str(parse_label(text, current_package))
        found = graph.latest_key(label)
        if found is None:
            raise UserError(f"{label} has no recorded result in the cache (build it first: mlbuild build {label})")
        return found[0]
    return _key_of_path(store, graph, Path(text))


def _key_of_path(store: LocalStore, graph: HashGraph, path: Path) -> str:
    if not path.exists():
        raise UserError(f"{path}: no such file, and not a label (//pkg:name) or a digest")
    real = path.resolve()
    cas_root = store.cas.root.resolve()
    if cas_root in real.parents and is_digest(real.name):
        digest = real.name
    elif real.is_file():
        digest, _ = digest_file(real)
    else:
        # A materialized directory output: its package's markers name the whole result.
        from mlbuild.engine.run.materialize import read_markers

        marked = read_markers(real.parent).get(real.name)
        if marked is None:
            raise UserError(f"{path}: not an output of any action in the cache")
        digest = marked
    key = graph.producer(digest)
    if key is None:
        raise UserError(f"{path}: no action in the cache produced it (digest {digest})")
    return key


def _query_consumers(ws: Any, args: list[object], transitive: bool) -> set[Any]:
    """``consumers(DIGEST[, DEPTH])`` and ``transitive_consumers(DIGEST)`` for ``mlbuild query``."""
    from mlbuild.cache.store import default_cache_dir
    from mlbuild.engine.plan.labels import parse_label

    name = "transitive_consumers" if transitive else "consumers"
    if not args or not isinstance(args[0], str):
        raise UserError(f"{name}(DIGEST{'' if transitive else '[, DEPTH]'}) needs a 32-hex-digit digest")
    depth: int | None = None if transitive else 1
    if len(args) > 1:
        if transitive or not isinstance(args[1], int) or args[1] < 1:
            raise UserError(f"{name}: bad arguments (use consumers(DIGEST) or consumers(DIGEST, DEPTH))")
        depth = args[1]
    store = LocalStore(default_cache_dir(ws.cache_dir))
    try:
        return {parse_label(c.label) for c in consumers(store, args[0], depth)}
    finally:
        store.close()


def _register() -> None:
    from mlbuild.engine.inspect.query import EXTRA_FUNCTIONS

    EXTRA_FUNCTIONS["consumers"] = lambda ws, args: _query_consumers(ws, args, transitive=False)
    EXTRA_FUNCTIONS["transitive_consumers"] = lambda ws, args: _query_consumers(ws, args, transitive=True)


_register()
