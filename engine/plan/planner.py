"""The plan of a build: the requested targets, their transitive dependencies, in dependency order.

Ordering uses a plain depth-first search (the hot path of a no-op build stays free of the
networkx import); ``Plan.graph()`` gives the networkx DAG for queries and lineage.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from mlbuild.engine.errors import UserError
from mlbuild.engine.plan.labels import Label, parse_pattern
from mlbuild.engine.plan.workspace import Target, Workspace

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
    stack: list[tuple[Label, list[Label]]] = []  # the current path, each with deps left to visit
    for root in requested:
        if root in state:
            continue
        targets[root] = ws.target(root)
        state[root] = 1
        stack.append((root, list(reversed(targets[root].deps()))))
        while stack:
            label, pending = stack[-1]
            if not pending:
                stack.pop()
                state[label] = 2
                order.append(label)
                continue
            dep = pending.pop()
            if state.get(dep) == 1:
                path = [entry[0] for entry in stack]
                cycle = path[path.index(dep) :] + [dep]
                raise UserError("dependency cycle: " + " -> ".join(str(c) for c in cycle))
            if dep not in state:
                targets[dep] = ws.target(dep, str(label))
                state[dep] = 1
                stack.append((dep, list(reversed(targets[dep].deps()))))
    return Plan(requested, targets, order)
