"""The one ready-queue that orders actions: the build loop, ``verify`` and ``why --dry-run``.

It is Kahn's algorithm over counts of unfinished dependencies, as the standard library's
``graphlib.TopologicalSorter`` does (same order, same ``CycleError``), with less per node:
a no-op of 10,000 steps spent 75 ms preparing a TopologicalSorter. It adds what a build needs
beyond a topological order:

- **failure**: ``fail(node)`` never releases the node's dependents and returns every one of
  them not yet finished (transitively), so the caller records them as skipped;
- **re-resolution** without recursion: when a node finds that a finished upstream's cached bytes
  are gone, ``wait_for(node, upstream)`` puts the upstream back on the ready queue and holds the
  node until the upstream is ``done`` again (or fails, which skips the node).

The graph maps each node to the nodes it depends on (its predecessors), as graphlib's does.
Nodes come out of ``take()`` in batches: everything that became ready since the last call, in
the order it became ready (dependency order; among independent nodes, the mapping's order).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Iterable, Mapping
from graphlib import CycleError
from typing import Generic, TypeVar

__all__ = ["Scheduler"]

N = TypeVar("N", bound=Hashable)


class Scheduler(Generic[N]):
    """Hands out the nodes of a DAG whose dependencies are done; see the module docstring.

    Every node handed out MUST end in exactly one of ``done``, ``fail`` or ``wait_for``
    (after which it is handed out again once the upstream is done).
    """

    def __init__(self, deps: Mapping[N, Iterable[N]]) -> None:
        self._deps = deps
        # node -> its unfinished dependencies, and node -> the nodes waiting on it; a dependency
        # the mapping does not list is a node without dependencies (as in graphlib).
        self._pending: dict[N, int] = {}
        self._successors: dict[N, list[N]] = {}
        for node, upstream in deps.items():
            self._pending.setdefault(node, 0)
            self._successors.setdefault(node, [])
            for dep in dict.fromkeys(upstream):
                self._pending[node] += 1
                self._pending.setdefault(dep, 0)
                self._successors.setdefault(dep, []).append(node)
        self._ready: deque[N] = deque(node for node, count in self._pending.items() if count == 0)
        self._check_acyclic()
        self._finished: set[N] = set()
        self._failed: set[N] = set()
        # A finished node being resolved again -> the nodes held until it is done again.
        self._again: dict[N, list[N]] = {}
        self._held: dict[N, int] = {}  # node -> how many re-resolutions it waits on

    def _check_acyclic(self) -> None:
        """graphlib.CycleError naming a cycle: every node must be reachable by releases."""
        pending = dict(self._pending)
        todo = list(self._ready)
        released = 0
        while todo:
            node = todo.pop()
            released += 1
            for succ in self._successors[node]:
                pending[succ] -= 1
                if pending[succ] == 0:
                    todo.append(succ)
        if released != len(pending):
            stuck = next(node for node, count in pending.items() if count)
            raise CycleError("nodes are in a cycle", [stuck])

    def take(self) -> list[N]:
        """Every node ready now (and not handed out before), in the order they became ready."""
        batch = list(self._ready)
        self._ready.clear()
        return batch

    def has_ready(self) -> bool:
        return bool(self._ready)

    def done(self, node: N) -> None:
        """``node`` succeeded: its dependents whose dependencies are all done become ready."""
        if self._again:
            waiters = self._again.pop(node, None)
            if waiters is not None:
                # A re-resolution: its dependents were released the first time already.
                for waiter in waiters:
                    self._release(waiter)
                return
        self._finished.add(node)
        pending = self._pending
        for succ in self._successors[node]:
            pending[succ] -= 1
            if pending[succ] == 0:
                self._ready.append(succ)

    def fail(self, node: N) -> list[N]:
        """``node`` failed: it and everything downstream of it not yet finished never become
        ready. Returns those downstream nodes (not ``node``), each once over the whole run."""
        self._failed.add(node)
        self._again.pop(node, None)  # its waiters are downstream: skipped below
        skipped: list[N] = []
        todo = self.dependents(node)
        while todo:
            dep = todo.pop()
            if dep in self._failed or dep in self._finished:
                continue
            self._failed.add(dep)
            self._held.pop(dep, None)
            skipped.append(dep)
            todo.extend(self.dependents(dep))
        return skipped

    def wait_for(self, node: N, upstream: N) -> bool:
        """Hold ``node`` (handed out, not done) until ``upstream`` (done before) is done again.

        Returns True when this puts ``upstream`` back on the ready queue, False when it was
        already being resolved again for another node. No recursion: the caller resolves
        ``upstream`` when ``take()`` hands it out, like any other ready node.
        """
        if upstream not in self._finished:
            raise ValueError(f"{upstream!r} is not done, so there is nothing to resolve again")
        self._held[node] = self._held.get(node, 0) + 1
        waiters = self._again.get(upstream)
        if waiters is not None:
            waiters.append(node)
            return False
        self._again[upstream] = [node]
        self._ready.append(upstream)
        return True

    def dependents(self, node: N) -> list[N]:
        """The nodes that depend directly on ``node``."""
        return list(self._successors.get(node, ()))

    def _release(self, node: N) -> None:
        count = self._held.get(node)
        if count is None:
            return  # skipped meanwhile
        if count > 1:
            self._held[node] = count - 1
            return
        del self._held[node]
        self._ready.append(node)
