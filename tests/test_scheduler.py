"""The scheduler shared by the build loop, verify and why --dry-run (engine/run/scheduler.py)."""

from __future__ import annotations

import graphlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlbuild.engine.run.scheduler import Scheduler


@st.composite
def dags(draw: st.DrawFn) -> dict[int, list[int]]:
    """A random DAG over 0..n-1 (edges only from lower to higher numbers), as node -> deps."""
    n = draw(st.integers(0, 25))
    return {i: sorted(draw(st.sets(st.integers(0, i - 1), max_size=4)) if i else set()) for i in range(n)}


def downstream(graph: dict[int, list[int]], node: int) -> set[int]:
    found: set[int] = set()
    todo = [node]
    while todo:
        x = todo.pop()
        for other, deps in graph.items():
            if x in deps and other not in found:
                found.add(other)
                todo.append(other)
    return found


@given(dags())
def test_every_node_once_after_its_deps(graph: dict[int, list[int]]) -> None:
    sched = Scheduler(graph)
    seen: list[int] = []
    while sched.has_ready():
        for node in sched.take():
            assert all(d in seen for d in graph[node])
            seen.append(node)
            sched.done(node)
    assert sorted(seen) == sorted(graph)


@given(dags(), st.data())
def test_a_failure_skips_exactly_what_is_downstream_and_unfinished(graph: dict[int, list[int]], data: st.DataObject) -> None:
    sched = Scheduler(graph)
    done: list[int] = []
    failed: set[int] = set()
    skipped: list[int] = []
    while sched.has_ready():
        for node in sched.take():
            assert node not in failed and node not in skipped
            if data.draw(st.booleans(), label=f"fail {node}"):
                failed.add(node)
                got = sched.fail(node)
                assert set(got) == downstream(graph, node) - set(done) - set(skipped) - failed
                skipped += got
            else:
                done.append(node)
                sched.done(node)
    # Everything either ran, failed, or was skipped because something upstream failed.
    assert sorted(done + list(failed) + skipped) == sorted(graph)
    assert len(skipped) == len(set(skipped))


def test_wait_for_resolves_an_upstream_again_without_recursion() -> None:
    # a -> b -> d, a -> c -> d: b and c both find a's bytes gone.
    sched = Scheduler({"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"]})
    assert sched.take() == ["a"]
    sched.done("a")
    assert sched.take() == ["b", "c"]
    assert sched.wait_for("b", "a") is True  # a goes back on the queue
    assert sched.wait_for("c", "a") is False  # already going to be resolved again
    assert sched.take() == ["a"]
    sched.done("a")
    assert sorted(sched.take()) == ["b", "c"]  # both released, once each
    sched.done("b")
    assert not sched.has_ready()
    sched.done("c")
    assert sched.take() == ["d"]


def test_an_upstream_that_fails_when_resolved_again_skips_its_waiters() -> None:
    sched = Scheduler({"a": [], "b": ["a"], "c": ["b"], "x": []})
    assert sched.take() == ["a", "x"]
    sched.done("a")
    sched.done("x")
    assert sched.take() == ["b"]
    sched.wait_for("b", "a")
    assert sched.take() == ["a"]
    assert sorted(sched.fail("a")) == ["b", "c"]  # x finished already: not skipped
    assert not sched.has_ready()


def test_wait_for_needs_a_finished_upstream() -> None:
    sched = Scheduler({"a": [], "b": ["a"]})
    sched.take()
    with pytest.raises(ValueError, match="not done"):
        sched.wait_for("a", "b")


def test_a_cycle_is_refused() -> None:
    with pytest.raises(graphlib.CycleError):
        Scheduler({"a": ["b"], "b": ["a"]})


@given(dags())
def test_the_same_batches_as_graphlib(graph: dict[int, list[int]]) -> None:
    """Nodes come out in graphlib.TopologicalSorter's order: batch by batch, each done in turn."""
    sched = Scheduler(graph)
    sorter: graphlib.TopologicalSorter[int] = graphlib.TopologicalSorter(graph)
    sorter.prepare()
    while sorter.is_active():
        expected = list(sorter.get_ready())
        assert sched.take() == expected
        for node in expected:
            sorter.done(node)
            sched.done(node)
    assert not sched.has_ready()


def test_an_undeclared_dependency_is_a_node_without_dependencies() -> None:
    sched = Scheduler({"b": ["a"]})
    assert sched.take() == ["a"]
    sched.done("a")
    assert sched.take() == ["b"]
