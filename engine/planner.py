"""The plan of a build: the requested targets, their transitive dependencies, in dependency order.

Ordering uses a plain depth-first search (the hot path of a no-op build stays free of the
networkx import); ``Plan.graph()`` gives the networkx DAG for queries and lineage.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from mlbuild.engine.errors import UserError
from mlbuild.engine.labels import Label, parse_pattern
from mlbuild.engine.workspace import Target, Workspace

if TYPE_CHECKING:
    import networkx as nx


class Plan:
    def __init__(self, requested: list[Label], targets: dict[Label, Target], order: list[Label]) -> None:
        self.requested = requested
        self.targets = targets
        self.order = order
        self.dependents: dict[Label, list[Label]] = {label: [] for label in order}
        for label in order:
            for dep in targets[label].deps():
                self.dependents[dep].append(label)

    def graph(self) -> nx.DiGraph:
        """Edges point from a dependency to the target that uses it."""
        import networkx as nx

        g = nx.DiGraph()
        g.add_nodes_from(self.order)
        g.add_edges_from((dep, label) for label in self.order for dep in self.targets[label].deps())
        return g


def resolve_patterns(ws: Workspace, patterns: Iterable[str], current_package: str = "") -> list[Label]:
    labels: dict[Label, None] = {}
    for text in patterns:
        for label in ws.expand(parse_pattern(text, current_package)):
            labels[label] = None
    return list(labels)


def plan(ws: Workspace, requested: list[Label]) -> Plan:
    """Load every target the requested ones need; raise UserError naming a cycle or a bad label."""
    targets: dict[Label, Target] = {}
    order: list[Label] = []
    state: dict[Label, int] = {}  # 1: on the current path, 2: done
    for root in requested:
        if state.get(root) == 2:
            continue
        stack: list[tuple[Label, list[Label]]] = []
        path: list[Label] = []

        def enter(label: Label, needed_by: Label | None) -> None:
            t = ws.target(label, str(needed_by) if needed_by else None)
            targets[label] = t
            state[label] = 1
            path.append(label)
            stack.append((label, list(reversed(t.deps()))))

        enter(root, None)
        while stack:
            label, pending = stack[-1]
            if pending:
                dep = pending.pop()
                st = state.get(dep)
                if st == 1:
                    cycle = path[path.index(dep) :] + [dep]
                    raise UserError("dependency cycle: " + " -> ".join(str(c) for c in cycle))
                if st is None:
                    enter(dep, label)
                continue
            stack.pop()
            path.pop()
            state[label] = 2
            order.append(label)
    return Plan(requested, targets, order)
