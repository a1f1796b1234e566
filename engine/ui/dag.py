"""The DAG of one recorded build, with a layered layout the page draws as SVG.

Nodes are the build's actions. Edges come from the action cache: each input digest of an
action's KeySpec names (through the producers index) the action that made it. Steps with no
stored result (failed, skipped, not yet run in a running build) take their edges from the
workspace's plan of the build's targets, when that workspace can still be loaded.
"""

from __future__ import annotations

import threading
from pathlib import Path

import msgspec

from mlbuild.cache.index import Index
from mlbuild.cache.records import BuildRecord

__all__ = ["Node", "Edge", "Dag", "build_dag", "layout"]

# Colour classes on the page; "running" is a step whose dependencies are all done while its
# build runs, "pending" one still waiting for them.
NodeStatus = str


class Node(msgspec.Struct):
    """One step of a build; ``id`` is its action key, or its label while it has none."""

    id: str
    label: str
    key: str | None
    status: NodeStatus
    seconds: float = 0.0
    error: str | None = None
    log_digest: str | None = None
    layer: int = 0
    order: int = 0


class Edge(msgspec.Struct):
    """``source`` (a label) produced the input ``input`` of ``target`` (a label)."""

    source: str
    target: str
    input: str


class Dag(msgspec.Struct):
    nodes: list[Node]
    edges: list[Edge]
    layers: int
    planned: bool  # whether the workspace's plan filled in steps without stored results


_plan_lock = threading.Lock()


def _planned_deps(record: BuildRecord) -> dict[str, list[str]] | None:
    """label -> dependency labels from today's workspace, or None when it cannot be loaded."""
    from mlbuild.engine.errors import UserError
    from mlbuild.engine.plan.labels import parse_label
    from mlbuild.engine.plan.planner import plan
    from mlbuild.engine.plan.workspace import Workspace

    root = Path(record.workspace)
    if not (root / "mlbuild.toml").is_file():
        return None
    # Loading BUILD.py files collects targets through module-level state: one at a time.
    with _plan_lock:
        try:
            ws = Workspace(root)
            p = plan(ws, [parse_label(t) for t in record.targets])
        except (UserError, OSError, SyntaxError, ValueError):
            return None
    return {str(label): [str(d) for d in p.targets[label].deps()] for label in p.order}


def build_dag(index: Index, record: BuildRecord) -> Dag:
    """The nodes, edges and layout of a recorded (possibly still running) build."""
    latest: dict[str, Node] = {}
    for a in record.actions:
        latest[a.label] = Node(a.key or a.label, a.label, a.key, a.status, a.seconds, a.error, a.log_digest)
    keys = [n.key for n in latest.values() if n.key]
    results = index.get_actions(keys)
    label_of_key = {n.key: n.label for n in latest.values() if n.key}
    edges: dict[tuple[str, str, str], None] = {}
    resolved: set[str] = set()
    for node in latest.values():
        result = results.get(node.key or "")
        if result is None:
            continue
        resolved.add(node.label)
        for name, digest in result.key_spec.inputs.items():
            producer = index.producer_of(digest)
            if producer is None:
                continue  # a source file
            source = label_of_key.get(producer)
            if source is None:
                upstream = index.get_action(producer)
                source = upstream.label if upstream else None
            if source is not None and source in latest:
                edges[(source, node.label, name)] = None
    planned = False
    if record.status == "running" or len(resolved) < len(latest) or not latest:
        deps = _planned_deps(record)
        if deps is not None:
            planned = True
            _add_planned(record, latest, deps, resolved, edges)
    nodes = list(latest.values())
    edge_list = [Edge(s, t, n) for s, t, n in edges]
    layers = layout(nodes, edge_list)
    return Dag(nodes, edge_list, layers, planned)


def _add_planned(
    record: BuildRecord,
    latest: dict[str, Node],
    deps: dict[str, list[str]],
    resolved: set[str],
    edges: dict[tuple[str, str, str], None],
) -> None:
    done = {label for label, n in latest.items() if n.status in ("cached", "remote", "executed")}
    for label, ds in deps.items():
        if label not in latest:
            if record.status == "running":
                status = "running" if all(d in done for d in ds) else "pending"
            else:
                status = "skipped"  # never reached: the build stopped before it
            latest[label] = Node(label, label, None, status)
    for label, ds in deps.items():
        if label in resolved:
            continue
        for d in ds:
            if d in latest and not any(s == d and t == label for s, t, _ in edges):
                edges[(d, label, "")] = None


def layout(nodes: list[Node], edges: list[Edge]) -> int:
    """Assign each node a layer (longest path from a source) and an order within its layer
    (a few barycenter sweeps, to keep edges short and uncrossed); returns the layer count."""
    preds: dict[str, list[str]] = {n.label: [] for n in nodes}
    succs: dict[str, list[str]] = {n.label: [] for n in nodes}
    for e in edges:
        if e.source in preds and e.target in preds and e.source != e.target:
            preds[e.target].append(e.source)
            succs[e.source].append(e.target)
    layer: dict[str, int] = {}
    indegree = {label: len(p) for label, p in preds.items()}
    queue = sorted(label for label, d in indegree.items() if d == 0)
    while queue:
        label = queue.pop(0)
        layer.setdefault(label, 0)
        for s in succs[label]:
            layer[s] = max(layer.get(s, 0), layer[label] + 1)
            indegree[s] -= 1
            if indegree[s] == 0:
                queue.append(s)
    for n in nodes:  # a cycle cannot come from a plan; still, never leave a node unplaced
        layer.setdefault(n.label, 0)
    count = max(layer.values(), default=-1) + 1
    rows: list[list[str]] = [[] for _ in range(count)]
    for label in sorted(layer):
        rows[layer[label]].append(label)
    position = {label: i for row in rows for i, label in enumerate(row)}
    for sweep in range(4):
        order = range(1, count) if sweep % 2 == 0 else range(count - 2, -1, -1)
        for i in order:
            near = preds if sweep % 2 == 0 else succs

            def center(label: str, near: dict[str, list[str]] = near) -> float:
                ps = [position[p] for p in near[label]]
                return sum(ps) / len(ps) if ps else position[label]

            rows[i].sort(key=lambda label: (center(label), label))
            for j, label in enumerate(rows[i]):
                position[label] = j
    for n in nodes:
        n.layer = layer[n.label]
        n.order = position[n.label]
    return count
