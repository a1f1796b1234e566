"""The lineage and why tabs: the engine's own lineage walk and ``why`` explanation, as the
``mlbuild lineage`` and ``mlbuild why`` commands give them, wrapped for the JSON API."""

from __future__ import annotations

import msgspec

from mlbuild.cache.store import LocalStore
from mlbuild.engine.errors import UserError
from mlbuild.engine.inspect.hashgraph import HashGraph
from mlbuild.engine.inspect.lineage import Consumer, LineageGraph, consumers, lineage_tree
from mlbuild.engine.inspect.lineage_render import cause_text
from mlbuild.engine.inspect.why import ActionExplanation, explain_build_action
from mlbuild.engine.ui.views import BadRequest, NotFound, find

__all__ = ["LineageView", "WhyView", "lineage", "why"]


class LineageView(msgspec.Struct):
    """Upstream: the lineage tree down to the sources. Downstream: every action that used this
    action's result, directly or not, nearest first."""

    key: str
    upstream: LineageGraph
    downstream: list[Consumer]


def lineage(store: LocalStore, key: str, depth: str | None = None, build_id: str | None = None) -> LineageView:
    """Upstream as build ``build_id`` recorded it (when given; else as each result recorded its
    producers), downstream through the consumers the builds recorded."""
    try:
        levels = None if depth in (None, "") else int(depth)
    except ValueError:
        raise BadRequest(f"depth must be a number, not {depth!r}") from None
    graph = HashGraph(store)
    result = graph.action(key)
    if result is None:
        raise NotFound(f"no action {key!r} in this cache (it failed, or was collected)")
    record = find(store, build_id) if build_id else None
    try:
        upstream = lineage_tree(store, key, levels, graph=graph, record=record)
    except UserError as exc:
        raise NotFound(str(exc)) from None
    return LineageView(key, upstream, consumers(store, key, None, graph=graph))


class WhyView(msgspec.Struct):
    """``mlbuild why`` for one step of one build: the verdict, and each cause as a phrase."""

    explanation: ActionExplanation
    texts: list[str]


def why(store: LocalStore, build_id: str, label: str) -> WhyView:
    try:
        explanation = explain_build_action(store, build_id, label)
    except UserError as exc:
        raise NotFound(str(exc)) from None
    return WhyView(explanation, [cause_text(c) for c in explanation.causes])
