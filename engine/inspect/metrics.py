"""Params, metrics and series of recorded builds: what ``metrics``, ``exp`` and ``plots`` show.

Everything here is read from what a build already stored: its record (the actions and their
keys), each action's ``KeySpec`` (the effective config is the params) and the CAS (the value a
target returned and the files its rule marks with ``@rule(metrics=[...], plots=[...])``).
Nothing runs and no rule module is imported.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Iterable
from typing import Any

import msgspec

from mlbuild.cache.cas import CorruptBlob, MissingBlob
from mlbuild.cache.records import ActionResult, ArtifactRef, BuildHead
from mlbuild.cache.store import LocalStore
from mlbuild.cache.trees import read_tree
from mlbuild.engine.errors import UserError

Scalar = int | float | bool | str
# A value larger than this is not read for metrics (a model's weights are not metrics).
MAX_METRICS_BLOB = 16 * 1024 * 1024
# Strings longer than this are not shown as metric values.
MAX_STRING = 80


class TargetView(msgspec.Struct, kw_only=True):
    """One target of one build: its key, params (config fields), metrics and series."""

    label: str
    key: str
    params: dict[str, Any] = {}
    metrics: dict[str, Scalar] = {}
    series: dict[str, list[float]] = {}
    missing: list[str] = []  # outputs whose bytes are not in the local cache


class BuildView(msgspec.Struct, kw_only=True):
    """A build as ``metrics``/``exp`` see it: every action's params, the targets' metrics."""

    id: str
    started: float
    status: str
    git_commit: str | None
    git_dirty: bool | None
    name: str | None
    tags: dict[str, str]
    params: dict[str, Any]  # "//pkg:t.field" -> value, over every action of the build
    targets: dict[str, TargetView]  # the targets whose metrics were asked for


def flatten(value: Any, prefix: str = "") -> tuple[dict[str, Scalar], dict[str, list[float]]]:
    """Plain data flattened to dotted names: scalars become metrics, lists of numbers series.

    ``{"acc": 0.9, "avg_prec": {"test": 0.8}, "train_loss": [0.5, 0.4]}`` gives metrics
    ``acc`` and ``avg_prec.test`` and the series ``train_loss``. Arrays (numpy, tensors) are data,
    not series (a label vector is not a curve); anything else is ignored.
    """
    scalars: dict[str, Scalar] = {}
    series: dict[str, list[float]] = {}

    def walk(node: Any, name: str) -> None:
        if isinstance(node, bool | int | float):
            if isinstance(node, float) and not math.isfinite(node):
                scalars[name or "value"] = str(node)
            else:
                scalars[name or "value"] = node
        elif isinstance(node, str):
            if len(node) <= MAX_STRING:
                scalars[name or "value"] = node
        elif isinstance(node, dict):
            for k in node:
                walk(node[k], f"{name}.{k}" if name else str(k))
        elif isinstance(node, list | tuple):
            if node and all(isinstance(x, int | float) and not isinstance(x, bool) for x in node):
                series[name or "value"] = [float(x) for x in node]
            elif node and all(isinstance(x, dict) for x in node):
                _rows_to_series(list(node), name, series)
        elif isinstance(node, msgspec.Struct):
            walk(msgspec.to_builtins(node), name)

    walk(value, prefix)
    return scalars, series


def _rows_to_series(rows: list[dict[str, Any]], prefix: str, series: dict[str, list[float]]) -> None:
    """``[{"epoch": 1, "loss": 0.5}, ...]``: one series per numeric column (but the step column)."""
    columns: dict[str, list[float]] = {}
    for row in rows:
        for k, v in row.items():
            if isinstance(v, int | float) and not isinstance(v, bool):
                columns.setdefault(str(k), []).append(float(v))
    for k, values in columns.items():
        if k.lower() in ("epoch", "step", "iteration", "x") or len(values) != len(rows):
            continue
        series[f"{prefix}.{k}" if prefix else k] = values


def read_series_file(path: str, data: bytes) -> dict[str, list[float]]:
    """A plot file's series: CSV/TSV with a header (one series per numeric column) or JSON."""
    name = path.rsplit("/", 1)[-1]
    text = data.decode("utf-8", errors="replace")
    if path.endswith((".csv", ".tsv")):
        dialect = "excel-tab" if path.endswith(".tsv") else "excel"
        rows = list(csv.DictReader(io.StringIO(text), dialect=dialect))
        parsed = [{k: _number(v) for k, v in row.items() if k is not None} for row in rows]
        out: dict[str, list[float]] = {}
        _rows_to_series(parsed, name, out)
        return out
    _, series = flatten(_parse_structured(path, data), name)
    return series


def _number(text: str | None) -> Any:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return text


def _parse_structured(path: str, data: bytes) -> Any:
    if path.endswith((".yaml", ".yml")):
        import yaml  # only for a YAML metrics file

        return yaml.safe_load(data)
    return json.loads(data)


def metrics_file(path: str, data: bytes) -> dict[str, Scalar]:
    """A metrics file's numbers (JSON or YAML), flattened: ``{"accuracy": 0.9}`` is ``accuracy``,
    the name a ``--fail-on-regression`` gate uses."""
    try:
        scalars, _ = flatten(_parse_structured(path, data))
    except ValueError as exc:
        raise UserError(f"metrics file {path}: not valid JSON/YAML: {exc}") from None
    return scalars


class MetricsReader:
    """Reads params and metrics of recorded builds from one local store."""

    def __init__(self, store: LocalStore, remote: Any = None) -> None:
        self.store = store
        self.remote = remote  # where outputs built elsewhere come from (a remote session)
        self._results: dict[str, ActionResult | None] = {}

    def results(self, keys: Iterable[str]) -> dict[str, ActionResult]:
        todo = [k for k in keys if k not in self._results]
        if todo:
            found = self.store.index.get_actions(todo)
            for k in todo:
                self._results[k] = found.get(k)
        return {k: r for k in keys if (r := self._results.get(k)) is not None}

    def view(self, record: BuildHead, targets: list[str] | None = None) -> BuildView:
        """``targets`` None: the build's requested targets."""
        keys: dict[str, str] = {a.label: a.key for a in record.actions if a.key and a.status in ("cached", "remote", "executed")}
        results = self.results(keys.values())
        params: dict[str, Any] = {}
        for label, key in sorted(keys.items()):
            r = results.get(key)
            if r is not None:
                params.update(flatten_params(label, r.key_spec.config))
        wanted = record.targets if targets is None else targets
        views = {}
        for label in wanted:
            found = keys.get(label)
            r = results.get(found) if found else None
            if r is not None:
                views[label] = self.target_view(r)
        return BuildView(
            id=record.id,
            started=record.started,
            status=record.status,
            git_commit=record.git_commit,
            git_dirty=record.git_dirty,
            name=record.name,
            tags=dict(record.tags),
            params=params,
            targets=views,
        )

    def target_view(self, result: ActionResult) -> TargetView:
        view = TargetView(label=result.label, key=result.key, params=flatten_params("", result.key_spec.config))
        metric_files, plot_files = result.metric_files, result.plot_files
        for ref in result.outputs:
            if ref.codec == "msgpack" and ref.size <= MAX_METRICS_BLOB:
                data = self._blob(ref.digest, view, ref.name)
                if data is not None:
                    from mlbuild.rules.codecs import decode

                    scalars, series = flatten(decode("msgpack", data))
                    view.metrics.update(scalars)
                    view.series.update(series)
            elif ref.codec == "tree" and (metric_files or plot_files):
                if self.remote is not None and not self.store.cas.has(ref.digest):
                    # only the listing: the files read are fetched one by one below
                    self.remote.ensure_local([ArtifactRef(ref.name, ref.digest, "msgpack", ref.size)])
                try:
                    entries = read_tree(self.store.cas, ref.digest)
                except (CorruptBlob, MissingBlob):
                    view.missing.append(ref.name)
                    continue
                for e in entries:
                    if e.path in metric_files or e.path in plot_files:
                        data = self._blob(e.digest, view, e.path)
                        if data is None:
                            continue
                        if e.path in metric_files:
                            view.metrics.update(metrics_file(e.path, data))
                        else:
                            view.series.update(read_series_file(e.path, data))
        return view

    def _blob(self, digest: str, view: TargetView, name: str) -> bytes | None:
        if self.remote is not None and not self.store.cas.has(digest):
            self.remote.ensure_local([ArtifactRef(name, digest, "msgpack", 0)])
        try:
            return self.store.cas.get_bytes(digest)
        except (CorruptBlob, MissingBlob):
            view.missing.append(name)
            return None


def flatten_params(label: str, config: Any) -> dict[str, Any]:
    """A config as dotted params, prefixed with the target's label (``//m:resnet.lr``)."""
    out: dict[str, Any] = {}

    def walk(node: Any, name: str) -> None:
        if isinstance(node, dict) and node:
            for k in sorted(node):
                walk(node[k], f"{name}.{k}" if name else str(k))
        else:
            out[name] = node

    if isinstance(config, dict):
        walk(config, label)
    elif config not in (None, {}):
        out[label or "config"] = config
    return out


# ------------------------------------------------------------------ differences and gates


class Change(msgspec.Struct, kw_only=True):
    """One param or metric in two builds."""

    name: str
    old: Any = None
    new: Any = None
    change: float | None = None  # new - old, for two numbers

    @property
    def same(self) -> bool:
        return self.old == self.new


def changes(old: dict[str, Any], new: dict[str, Any], include_same: bool = False) -> list[Change]:
    out = []
    for name in sorted(set(old) | set(new), key=natural_key):
        a, b = old.get(name), new.get(name)
        delta = b - a if isinstance(a, int | float) and isinstance(b, int | float) and _is_number(a) and _is_number(b) else None
        c = Change(name=name, old=a, new=b, change=delta)
        if include_same or not c.same:
            out.append(c)
    return out


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


class Gate(msgspec.Struct, frozen=True):
    """``accuracy<-0.01``: fail when the change of ``metric`` is below ``threshold``
    (``>`` for metrics where higher is worse, e.g. ``loss>0.05``)."""

    metric: str
    op: str
    threshold: float

    def violated(self, change: float) -> bool:
        return change < self.threshold if self.op == "<" else change > self.threshold

    def __str__(self) -> str:
        return f"{self.metric}{self.op}{self.threshold:g}"


_GATE = re.compile(r"^\s*([^<>=\s]+)\s*([<>])\s*([-+]?[0-9.]+(?:e[-+]?\d+)?)\s*$", re.I)


def parse_gate(text: str) -> Gate:
    m = _GATE.match(text)
    if not m:
        raise UserError(f"bad --fail-on-regression {text!r}: use METRIC<CHANGE or METRIC>CHANGE, e.g. accuracy<-0.01")
    return Gate(m.group(1), m.group(2), float(m.group(3)))


def natural_key(text: str) -> list[Any]:
    """t2 before t10: digit runs compare as numbers."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, str):
        return value
    return json.dumps(value, default=str) if isinstance(value, list | dict) else str(value)


def fmt_change(c: Change) -> str:
    if c.change is None:
        return "" if c.same else "changed"
    if c.change == 0:
        return "0"
    rel = f" ({c.change / abs(c.old) * 100:+.1f}%)" if _is_number(c.old) and c.old else ""
    return f"{c.change:+.6g}{rel}"


def table(header: list[str], rows: list[list[str]], markdown: bool = False) -> str:
    """A plain aligned text table, or a Markdown (GitHub) table."""
    if markdown:
        esc = [[cell.replace("|", "\\|") for cell in row] for row in [header, *rows]]
        lines = ["| " + " | ".join(esc[0]) + " |", "|" + "|".join("---" for _ in header) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in esc[1:]]
        return "\n".join(lines)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    out = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(out)
