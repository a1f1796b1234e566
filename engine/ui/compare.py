"""The compare view's data (``/api/compare?builds=A,B``) and a target's metric trend
(``/api/targets/<label>/metrics``): params that differ, metrics side by side with their change,
series to overlay, and per step whether two builds ran the same key. Read from the records and
the CAS only (no BUILD.py, no rule source)."""

from __future__ import annotations

from typing import Any

import msgspec

from mlbuild.cache.records import BuildHead
from mlbuild.cache.store import LocalStore
from mlbuild.engine.inspect.experiments import OK_STATUSES, ran_labels
from mlbuild.engine.inspect.metrics import BuildView, MetricsReader, natural_key
from mlbuild.engine.inspect.plots import overlaid
from mlbuild.engine.inspect.recorded import Scope, builds, find_build

MAX_COMPARED = 8
MAX_TREND = 200  # builds on a target's metric trend, newest kept


class ComparedBuild(msgspec.Struct, kw_only=True):
    id: str
    started: float
    status: str
    name: str | None
    git_commit: str | None
    targets: list[str]


class Row(msgspec.Struct, kw_only=True):
    """A param or metric across the compared builds; ``delta`` is last minus first."""

    name: str
    values: list[Any]
    delta: float | None = None
    same: bool = True


class StepRow(msgspec.Struct, kw_only=True):
    """One step across the builds: its key in each (None: not in that build)."""

    label: str
    keys: list[str | None]
    same: bool


class Comparison(msgspec.Struct, kw_only=True):
    builds: list[ComparedBuild]
    params: list[Row]
    metrics: list[Row]  # name: "//pkg:t metric"
    series: dict[str, dict[str, list[float]]]  # "//pkg:t name" -> build id -> values
    steps: list[StepRow]


class TrendPoint(msgspec.Struct, kw_only=True):
    build: str
    started: float
    key: str
    metrics: dict[str, Any]


class MetricTrend(msgspec.Struct, kw_only=True):
    label: str
    points: list[TrendPoint]  # oldest first; builds sharing a key are one point


def _number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def _rows(maps: list[dict[str, Any]], include_same: bool) -> list[Row]:
    rows = []
    for name in sorted({n for m in maps for n in m}, key=natural_key):
        values = [m.get(name) for m in maps]
        same = all(repr(v) == repr(values[0]) for v in values)
        first, last = values[0], values[-1]
        delta = float(last) - float(first) if _number(first) and _number(last) else None  # type: ignore[arg-type]
        if include_same or not same:
            rows.append(Row(name=name, values=values, delta=delta, same=same))
    return rows


def compare_builds(store: LocalStore, ids: list[str], scope: Scope, include_same: bool = False) -> Comparison:
    """Two or more builds (any unique part of each id) side by side."""
    from mlbuild.engine.errors import UserError

    if not 2 <= len(ids) <= MAX_COMPARED:
        raise UserError(f"compare takes 2 to {MAX_COMPARED} builds, got {len(ids)}")
    records = [find_build(store, i, scope) for i in ids]
    reader = MetricsReader(store)
    views: list[BuildView] = [reader.view(r, ran_labels(r)) for r in records]
    metric_maps = [{f"{label} {name}": v for label, t in view.targets.items() for name, v in t.metrics.items()}
                   for view in views]
    keys = [{a.label: a.key for a in r.actions if a.key and a.status in OK_STATUSES} for r in records]
    labels = sorted({label for k in keys for label in k}, key=natural_key)
    steps = [StepRow(label=label, keys=[k.get(label) for k in keys],
                     same=len({k.get(label) for k in keys}) == 1) for label in labels]
    return Comparison(
        builds=[ComparedBuild(id=r.id, started=r.started, status=r.status, name=r.name,
                              git_commit=r.git_commit, targets=r.targets[:20]) for r in records],
        params=_rows([v.params for v in views], include_same),
        metrics=_rows(metric_maps, True),
        series=overlaid(views),
        steps=steps,
    )


def metric_trend(store: LocalStore, label: str, scope: Scope) -> MetricTrend:
    """``label``'s metrics in every build of it (oldest first), one point per distinct key."""
    reader = MetricsReader(store)
    heads: list[BuildHead] = [b for b in builds(store, scope)
                              if any(a.label == label and a.key and a.status in OK_STATUSES for a in b.actions)]
    points: dict[str, TrendPoint] = {}
    for head in reversed(heads[:MAX_TREND]):
        view = reader.view(head, [label])
        t = view.targets.get(label)
        if t is not None and t.key not in points:
            numeric = {k: v for k, v in t.metrics.items() if _number(v)}
            points[t.key] = TrendPoint(build=head.id, started=head.started, key=t.key, metrics=numeric)
    return MetricTrend(label=label, points=list(points.values()))
