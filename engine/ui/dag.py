"""The DAG of one recorded build, with a layered layout the page draws as SVG.

Nodes and edges come from the build record only: its plan (written before anything ran) gives
every step, run or not, and which target each input came from; its actions give each step's
fate. Nothing is imported or re-planned from the workspace to draw a build: today's BUILD.py
may describe another graph. A record from before plans were recorded (schema 1) draws its
actions with the edges their results recorded, and none where they recorded none (``note``).

Scale: above ``GROUP_ABOVE`` nodes the page draws packages as group nodes (expanded on click),
so the layout has two levels: the groups' layers and orders, and each node's layer and order
inside its group. Layouts depend only on the graph's shape, never on statuses, and are cached
by that shape: a running build whose steps change status is not laid out again.
"""

from __future__ import annotations

import functools
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

import msgspec
import xxhash

from mlbuild.cache.index import Index
from mlbuild.cache.records import BuildRecord

__all__ = [
    "Node", "Edge", "Group", "GroupEdge", "Dag", "build_dag", "layout", "natural_key",
    "GROUP_ABOVE", "MAX_GROUPS", "GROUP_SIZE", "record_version",
]

GROUP_ABOVE = 300  # more nodes than this: packages drawn as group nodes
MAX_GROUPS = 300  # at most this many group nodes (packages merge into their parent folders)
GROUP_SIZE = 150  # a group with more members is split into chunks of this many

# Colour classes on the page; "running" is a step whose dependencies are all done while its
# build runs, "pending" one still waiting for them.
NodeStatus = str


class Node(msgspec.Struct, omit_defaults=True):
    """One step of a build; ``id`` is its action key, or its label while it has none.

    ``layer``/``order`` place it in the whole graph, or (when ``group`` >= 0) inside its group.
    """

    id: str
    label: str
    key: str | None
    status: NodeStatus
    seconds: float = 0.0
    error: str | None = None
    log_digest: str | None = None
    layer: int = 0
    order: int = 0
    group: int = -1  # index into Dag.groups, -1 when the graph is not grouped


class Edge(msgspec.Struct):
    """``source`` (a label) produced the input ``input`` of ``target`` (a label)."""

    source: str
    target: str
    input: str


class Group(msgspec.Struct):
    """A package (or a folder of packages, or a chunk of a large one) drawn as one node."""

    id: str
    label: str
    size: int  # member nodes
    layer: int
    order: int
    layers: int  # layers of the members' own layout inside the group
    width: int  # the most members in one of those layers


class GroupEdge(msgspec.Struct, array_like=True):
    source: int  # group index
    target: int
    count: int  # node edges it stands for


class Dag(msgspec.Struct):
    nodes: list[Node]
    edges: list[Edge]
    layers: int
    planned: bool  # whether the build's recorded plan gave the steps and edges
    groups: list[Group] = []
    group_edges: list[GroupEdge] = []
    group_layers: int = 0
    note: str | None = None  # what the drawing leaves out, and why (an old record)


_layout_lock = threading.Lock()
_layout_cache: OrderedDict[str, _Layout] = OrderedDict()
_dag_cache: OrderedDict[tuple[str, str], Dag] = OrderedDict()
_CACHED = 8
_encode = msgspec.msgpack.Encoder()


def record_version(record: BuildRecord) -> str:
    """A digest of the whole record: it changes whenever the build writes it again, and when
    a running build's process turns out to be gone (abandoned)."""
    from mlbuild.engine.inspect.recorded import is_abandoned

    return xxhash.xxh3_64_hexdigest(_encode.encode(record)) + ("-abandoned" if is_abandoned(record) else "")


def _remember(cache: OrderedDict[Any, Any], key: object, value: object) -> None:
    cache[key] = value
    cache.move_to_end(key)
    while len(cache) > _CACHED:
        cache.popitem(last=False)


def build_dag(index: Index, record: BuildRecord) -> Dag:
    """The nodes, edges and layout of a recorded (possibly still running) build; the same
    record read again is answered from a cache."""
    version = (record.id, record_version(record))
    cached = _dag_cache.get(version)
    if cached is not None:
        return cached
    dag = _build_dag(index, record)
    with _layout_lock:
        _remember(_dag_cache, version, dag)
    return dag


def _build_dag(index: Index, record: BuildRecord) -> Dag:
    latest: dict[str, Node] = {}
    for a in record.actions:
        latest[a.label] = Node(a.key or a.label, a.label, a.key, a.status, a.seconds, a.because or a.error, a.log_digest)
    edges: dict[tuple[str, str, str], None] = {}
    note = None
    if record.plan:
        _add_planned(record, latest, edges)
    else:
        note = _recorded_edges(index, latest, edges)
    nodes = sorted(latest.values(), key=lambda n: natural_key(n.label))
    edge_list = [Edge(s, t, n) for s, t, n in edges]
    lay = _cached_layout([n.label for n in nodes], [(e.source, e.target) for e in edge_list])
    for n in nodes:
        n.layer, n.order = lay.place[n.label]
        n.group = lay.group_of.get(n.label, -1)
    return Dag(nodes, edge_list, lay.layers, bool(record.plan), lay.groups, lay.group_edges, lay.group_layers, note)


def _add_planned(record: BuildRecord, latest: dict[str, Node], edges: dict[tuple[str, str, str], None]) -> None:
    """Every planned step (one with no action yet: running or pending while the build runs,
    never run once it ended) and every planned edge."""
    from mlbuild.engine.inspect.recorded import is_abandoned

    done = {label for label, n in latest.items() if n.status in ("cached", "remote", "executed")}
    live = record.status == "running" and not is_abandoned(record)
    for step in record.plan:
        if step.label not in latest:
            if live:
                status = "running" if all(d in done for d in step.inputs.values()) else "pending"
            else:
                status = "not_run"  # the build ended before it
            latest[step.label] = Node(step.label, step.label, None, status)
        for name, upstream in step.inputs.items():
            edges[(upstream, step.label, name)] = None


def _recorded_edges(index: Index, latest: dict[str, Node], edges: dict[tuple[str, str, str], None]) -> str | None:
    """Edges of an old record from the producers its results recorded; a note when some are unknown."""
    results = index.get_actions([n.key for n in latest.values() if n.key])
    label_of_key = {n.key: n.label for n in latest.values() if n.key}
    unknown = False
    for node in latest.values():
        result = results.get(node.key or "")
        if result is None or result.producers is None:
            unknown = unknown or bool(result is None or result.key_spec.inputs)
            continue
        for name, producer in result.producers.items():
            source = label_of_key.get(producer)
            if source is not None:
                edges[(source, node.label, name)] = None
    if unknown:
        return "this build was recorded before mlbuild kept each build's graph: edges it did not record are not drawn"
    return None


# -- layout --------------------------------------------------------------------------------

_DIGITS = re.compile(r"(\d+)")


@functools.lru_cache(maxsize=1 << 16)
def natural_key(text: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key putting t2 before t10: digit runs compare as numbers."""
    return tuple((1, int(part)) if i % 2 else (0, part) for i, part in enumerate(_DIGITS.split(text)))


class _Layout(msgspec.Struct):
    place: dict[str, tuple[int, int]]  # label -> (layer, order), in the group when grouped
    layers: int
    group_of: dict[str, int]
    groups: list[Group]
    group_edges: list[GroupEdge]
    group_layers: int


def _cached_layout(labels: list[str], edges: list[tuple[str, str]]) -> _Layout:
    h = xxhash.xxh3_128()
    for label in labels:
        h.update(label.encode() + b"\0")
    h.update(b"\1")
    for s, t in sorted(edges):
        h.update(f"{s}\0{t}\0".encode())
    shape = h.hexdigest()
    with _layout_lock:
        cached = _layout_cache.get(shape)
    if cached is not None:
        return cached
    lay = _grouped_layout(labels, edges) if len(labels) > GROUP_ABOVE else _flat_layout(labels, edges)
    with _layout_lock:
        _remember(_layout_cache, shape, lay)
    return lay


def _flat_layout(labels: list[str], edges: list[tuple[str, str]]) -> _Layout:
    place, layers = _layered(labels, edges)
    return _Layout(place, layers, {}, [], [], 0)


def _package(label: str) -> str:
    return label.rsplit(":", 1)[0] if ":" in label else label


def _group_keys(labels: list[str]) -> dict[str, str]:
    """label -> its group's name: its package, or the deepest parent folder that keeps the
    number of groups within MAX_GROUPS."""
    packages = {label: _package(label) for label in labels}
    parts = {p: p.removeprefix("//").split("/") for p in set(packages.values())}
    deepest = max((len(s) for s in parts.values()), default=0)
    for depth in range(deepest, -1, -1):
        named = {p: "//" + "/".join(s[:depth]) if depth < len(s) else p for p, s in parts.items()}
        if len(set(named.values())) <= MAX_GROUPS:
            return {label: named[pkg] for label, pkg in packages.items()}
    return {label: "//" for label in labels}


def _grouped_layout(labels: list[str], edges: list[tuple[str, str]]) -> _Layout:
    full, _ = _layered(labels, edges, sweeps=0)  # longest-path layers only: to order members
    by_name: dict[str, list[str]] = {}
    for label, name in _group_keys(labels).items():
        by_name.setdefault(name, []).append(label)
    members: list[tuple[str, str, list[str]]] = []  # (id, label, members)
    for name in sorted(by_name, key=natural_key):
        ms = sorted(by_name[name], key=lambda lb: (full[lb][0], natural_key(lb)))
        if len(ms) <= GROUP_SIZE:
            members.append((name, name, ms))
            continue
        chunks = (len(ms) + GROUP_SIZE - 1) // GROUP_SIZE
        for c in range(chunks):
            part = ms[c * GROUP_SIZE:(c + 1) * GROUP_SIZE]
            members.append((f"{name}#{c + 1}", f"{name} ({c + 1}/{chunks})", part))
    group_of = {label: gi for gi, (_, _, ms) in enumerate(members) for label in ms}
    counts: dict[tuple[int, int], int] = {}
    inside: dict[int, list[tuple[str, str]]] = {}
    for s, t in edges:
        gs, gt = group_of.get(s), group_of.get(t)
        if gs is None or gt is None:
            continue
        if gs == gt:
            inside.setdefault(gs, []).append((s, t))
        else:
            counts[(gs, gt)] = counts.get((gs, gt), 0) + 1
    ids = [str(i) for i in range(len(members))]
    gplace, glayers = _layered(ids, [(str(s), str(t)) for s, t in counts])
    if glayers == 0 or _has_cycle(len(members), counts):
        # Packages that depend on each other both ways: order groups by their first member's layer.
        firsts = sorted({full[ms[0]][0] for _, _, ms in members})
        rank = {v: i for i, v in enumerate(firsts)}
        gplace = {}
        per: dict[int, int] = {}
        for gi, (_, _, ms) in enumerate(members):
            layer = rank[full[ms[0]][0]]
            gplace[str(gi)] = (layer, per.get(layer, 0))
            per[layer] = per.get(layer, 0) + 1
        glayers = len(firsts)
    place: dict[str, tuple[int, int]] = {}
    groups: list[Group] = []
    for gi, (gid, glabel, ms) in enumerate(members):
        sub, sublayers = _layered(ms, inside.get(gi, []))
        place.update(sub)
        widths: dict[int, int] = {}
        for layer, _ in sub.values():
            widths[layer] = widths.get(layer, 0) + 1
        layer, order = gplace[str(gi)]
        groups.append(Group(gid, glabel, len(ms), layer, order, sublayers, max(widths.values(), default=1)))
    gedges = [GroupEdge(s, t, c) for (s, t), c in sorted(counts.items())]
    return _Layout(place, glayers, group_of, groups, gedges, glayers)


def _has_cycle(n: int, counts: Iterable[tuple[int, int]]) -> bool:
    succs: dict[int, list[int]] = {}
    indeg = [0] * n
    for s, t in counts:
        succs.setdefault(s, []).append(t)
        indeg[t] += 1
    queue = [i for i in range(n) if indeg[i] == 0]
    seen = 0
    while queue:
        i = queue.pop()
        seen += 1
        for t in succs.get(i, []):
            indeg[t] -= 1
            if indeg[t] == 0:
                queue.append(t)
    return seen < n


def _layered(
    labels: list[str], edges: Iterable[tuple[str, str]], sweeps: int = 4
) -> tuple[dict[str, tuple[int, int]], int]:
    """Each label's (layer, order): the layer is the longest path from a source, the order a
    few barycenter sweeps to keep edges short and uncrossed. ``labels`` come in the order
    that breaks ties (natural order: t2 before t10)."""
    preds: dict[str, list[str]] = {label: [] for label in labels}
    succs: dict[str, list[str]] = {label: [] for label in labels}
    for s, t in edges:
        if s in preds and t in preds and s != t:
            preds[t].append(s)
            succs[s].append(t)
    layer: dict[str, int] = {}
    indegree = {label: len(p) for label, p in preds.items()}
    queue = [label for label in labels if indegree[label] == 0]
    head = 0
    while head < len(queue):
        label = queue[head]
        head += 1
        layer.setdefault(label, 0)
        for s in succs[label]:
            layer[s] = max(layer.get(s, 0), layer[label] + 1)
            indegree[s] -= 1
            if indegree[s] == 0:
                queue.append(s)
    for label in labels:  # a cycle cannot come from a plan; still, never leave a node unplaced
        layer.setdefault(label, 0)
    count = max(layer.values(), default=-1) + 1
    rows: list[list[str]] = [[] for _ in range(count)]
    for label in labels:
        rows[layer[label]].append(label)
    tiebreak = {label: i for i, label in enumerate(labels)}
    position = {label: i for row in rows for i, label in enumerate(row)}
    for sweep in range(sweeps):
        forward = sweep % 2 == 0
        near = preds if forward else succs
        for i in (range(1, count) if forward else range(count - 2, -1, -1)):
            row = rows[i]
            if len(row) < 2:
                continue

            def center(label: str, near: dict[str, list[str]] = near) -> float:
                ps = near[label]
                return sum(position[p] for p in ps) / len(ps) if ps else position[label]

            row.sort(key=lambda label: (center(label), tiebreak[label]))
            for j, label in enumerate(row):
                position[label] = j
    return {label: (layer[label], position[label]) for label in labels}, count


def layout(nodes: list[Node], edges: list[Edge]) -> int:
    """Assign each node a layer and an order within its layer (ungrouped); returns the layer
    count."""
    nodes.sort(key=lambda n: natural_key(n.label))
    place, count = _layered([n.label for n in nodes], [(e.source, e.target) for e in edges])
    for n in nodes:
        n.layer, n.order = place[n.label]
    return count
