"""UI blocks for values of the registered codecs: DataFrames as paginated tables with dtypes
and summary statistics, sparse matrices as their shape, density and values, scikit-learn
models as their parameters and fitted attributes, torch modules as class and weights,
figures and images as images.

Read from the stored bytes with the least each needs: Arrow with pyarrow (not pandas), skops
models from their schema (nothing loaded, so nothing needs trusting), sparse matrices and
weights with numpy, PNGs passed through. Nothing is unpickled.
"""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING, Any

import msgspec

from mlbuild.engine.ui import blocks as r
from mlbuild.rules.codecs.plain import Encoded

if TYPE_CHECKING:
    from collections.abc import Callable

    from mlbuild.engine.ui.blocks import Block

__all__ = ["ColumnStats", "render_encoded", "render_table"]

MAX_TABLE_ROWS = 500  # rows sent to the page (which shows them a page at a time)
MAX_PARAMS = 200
MAX_TENSORS = 16
MAX_JSON = 64 * 1024


class ColumnStats(msgspec.Struct):
    column: str
    dtype: str
    nulls: int
    min: Any = None
    max: Any = None
    mean: float | None = None
    std: float | None = None


def render_encoded(name: str, value: Encoded, render_array: Callable[[str, Any], Block]) -> list[Block]:
    """``render_array`` draws the arrays inside a value (render.py's, passed in)."""
    try:
        if value.codec == "arrow":
            return [render_table(name, value.data)]
        if value.codec == "sparse":
            return [_sparse(name, value.data, render_array)]
        if value.codec == "skops":
            return [_model(name, value.data)]
        if value.codec in ("torch-module", "tensor-dataset"):
            return [_module(name, value.codec, value.data, render_array)]
        if value.codec == "matplotlib":
            drawn = msgspec.msgpack.decode(value.data)
            return [r.Image(name, "data:image/png;base64," + base64.b64encode(drawn["png"]).decode())]
        if value.codec == "png":
            return [r.Image(name, "data:image/png;base64," + base64.b64encode(value.data).decode())]
        if value.codec == "plotly":
            return _plotly(name, value.data)
    except Exception as exc:  # shown, not fatal: the rest of the output still renders
        return [r.Note(name, f"cannot render this {value.codec} value: {type(exc).__name__}: {exc}")]
    return [r.Note(name, f"a {value.codec} value ({len(value.data)} bytes): download it to inspect it")]


def _cell(v: Any) -> Any:
    if v is None or isinstance(v, (bool, int, str)):
        return v
    if isinstance(v, float):
        return v if v == v and abs(v) != float("inf") else str(v)
    return str(v)


def render_table(name: str, data: bytes) -> Block:
    """The first rows of a DataFrame, its dtypes and per-column statistics."""
    import pyarrow.compute as pc

    from mlbuild.rules.codecs.frame import read_table

    if not _NUMERIC_IDS:
        _numeric_ids()
    table, meta = read_table(data)
    pandas_meta = json.loads((table.schema.metadata or {}).get(b"pandas", b"{}") or b"{}")
    index_cols = [c for c in pandas_meta.get("index_columns", []) if isinstance(c, str)]
    columns = [c for c in table.column_names if c not in index_cols]
    head = table.slice(0, MAX_TABLE_ROWS)
    if index_cols:
        parts = [head.column(c).to_pylist() for c in index_cols]
        index = [", ".join(map(str, row)) for row in zip(*parts, strict=True)]
    else:
        index = [str(i) for i in range(head.num_rows)]
    shown = ["value" if c == "__series__" else c for c in columns]
    rows = [list(r) for r in zip(*[[_cell(v) for v in head.column(c).to_pylist()] for c in columns], strict=True)] if columns else []
    stats: list[ColumnStats] = []
    for c, label in zip(columns, shown, strict=True):
        col = table.column(c)
        s = ColumnStats(label, str(col.type), int(col.null_count))
        try:
            if col.type.id in _NUMERIC_IDS and len(col) > col.null_count:
                mm = pc.min_max(col)
                s.min, s.max = _cell(mm["min"].as_py()), _cell(mm["max"].as_py())
                s.mean = _cell(pc.mean(col).as_py())
                s.std = _cell(pc.stddev(col).as_py())
        except Exception:
            pass
        stats.append(s)
    kind = meta.get("kind", "pandas.DataFrame")
    # A named index is stored as a column of its name; an unnamed one as __index_level_N__.
    index_name = ", ".join(c for c in index_cols if not c.startswith("__index_level_")) or None
    return r.Table(name, kind, shown, [s.dtype for s in stats], index_name, index, rows, table.num_rows, stats)


_NUMERIC_IDS: set[int] = set()


def _numeric_ids() -> None:
    import pyarrow as pa

    for t in (pa.int8(), pa.int16(), pa.int32(), pa.int64(), pa.uint8(), pa.uint16(), pa.uint32(), pa.uint64(),
              pa.float16(), pa.float32(), pa.float64()):
        _NUMERIC_IDS.add(t.id)


def _sparse(name: str, data: bytes, render_array: Callable[[str, Any], Block]) -> Block:
    from mlbuild.rules.codecs.sparse import read_npz

    m = read_npz(data)
    fmt = m["format"].item()
    fmt = fmt.decode() if isinstance(fmt, bytes) else str(fmt)
    shape = [int(s) for s in m["shape"]]
    nnz = int(m["data"].size)
    cells = shape[0] * shape[1] if len(shape) == 2 else 0
    rows: list[tuple[str, Any]] = [("format", fmt), ("shape", f"{shape[0]} × {shape[1]}"), ("stored entries", nnz),
                                   ("density", round(nnz / cells, 6) if cells else 0), ("dtype", str(m["data"].dtype))]
    blocks: list[Block] = [r.Scalars(name, rows)]
    if nnz:
        blocks.append(render_array(f"{name} (stored values)", m["data"].reshape(-1)))
    return r.Section(name, blocks)


def _model(name: str, data: bytes) -> Block:
    from mlbuild.rules.codecs.estimator import parameters, read_arrays

    params = parameters(data)
    arrays = read_arrays(data)
    cls = params.get("__class__", "estimator")
    top: list[tuple[str, Any]] = [("class", cls)]
    hyper: list[tuple[str, Any]] = []
    fitted: list[tuple[str, Any]] = []
    for key, v in params.items():
        if key == "__class__":
            continue
        if isinstance(v, dict) and "array" in v:
            a = arrays.get(v["array"])
            v = f"array {list(a.shape)} {a.dtype}" if a is not None else "array"
        elif isinstance(v, (list, dict)):
            v = json.dumps(v)[:200]
        leaf = key.rsplit(".", 1)[-1]
        (fitted if leaf.endswith("_") and not leaf.startswith("_") else hyper).append((key, _cell(v)))
    # The estimator's own entries first, then those of what it holds (a forest's template tree).
    hyper.sort(key=lambda kv: "." in kv[0] or "[" in kv[0])
    fitted.sort(key=lambda kv: "." in kv[0] or "[" in kv[0])
    blocks: list[Block] = [r.Scalars("model", top)]
    if hyper:
        blocks.append(r.Section("parameters", [r.Scalars("parameters", hyper[:MAX_PARAMS])]))
    if fitted:
        blocks.append(r.Section("fitted attributes", [r.Scalars("fitted attributes", fitted[:MAX_PARAMS])]))
    if len(hyper) + len(fitted) > 2 * MAX_PARAMS:
        blocks.append(r.Note(name, f"{len(hyper) + len(fitted)} entries; the first {MAX_PARAMS} of each kind are shown"))
    return r.Section(name, blocks)


def _module(name: str, codec: str, data: bytes, render_array: Callable[[str, Any], Block]) -> Block:
    from mlbuild.rules.codecs.arrays import read_safetensors
    from mlbuild.rules.codecs.torch_module import metadata

    meta = metadata(data)
    tensors = read_safetensors(data)
    rows: list[tuple[str, Any]] = []
    if codec == "torch-module":
        rows = [("class", meta.get("mlbuild.class", "?")), ("init", meta.get("mlbuild.init", "{}"))]
    rows += [("tensors", len(tensors)), ("parameters", int(sum(t.size for t in tensors.values())))]
    blocks: list[Block] = [r.Scalars(name, rows)]
    for key in list(tensors)[:MAX_TENSORS]:
        blocks.append(render_array(key, tensors[key]))
    if len(tensors) > MAX_TENSORS:
        blocks.append(r.Note(name, f"{len(tensors) - MAX_TENSORS} more tensors not shown"))
    return r.Section(name, blocks)


def _plotly(name: str, data: bytes) -> list[Block]:
    figure = json.loads(data)
    traces = figure.get("data", [])
    rows: list[tuple[str, Any]] = [("traces", len(traces))]
    for i, t in enumerate(traces[:8]):
        n = len(t.get("y", t.get("x", [])) or [])
        rows.append((f"trace {i}", f"{t.get('type', 'scatter')} {t.get('name') or ''} ({n} points)".strip()))
    text = json.dumps(figure, indent=1)
    blocks: list[Block] = [r.Scalars("plotly figure", rows)]
    svg = plotly_svg(figure)
    if svg is not None:
        blocks.append(r.Image(name, "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode()))
    blocks.append(r.Text(f"{name} (plotly JSON)", text[:MAX_JSON], "json", len(text) > MAX_JSON))
    return [r.Section(name, blocks)]


_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")


def _numbers(values: Any) -> list[float] | None:
    if isinstance(values, dict) and "bdata" in values:  # plotly's typed-array form
        import numpy as np

        arr = np.frombuffer(base64.b64decode(values["bdata"]), dtype=np.dtype(values.get("dtype", "f8")))
        return [float(v) for v in arr.reshape(-1)]
    if isinstance(values, list) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return [float(v) for v in values]
    return None


def plotly_svg(figure: dict[str, Any], width: int = 480, height: int = 300) -> str | None:
    """The figure's scatter/line traces drawn as a small SVG (axes with their ranges, one
    polyline or dot set per trace); None when it has no numeric x/y trace to draw. The page
    ships no plotting library: this is a faithful sketch, the JSON below is the figure."""
    traces = []
    for t in figure.get("data", []):
        if t.get("type", "scatter") not in ("scatter", "scattergl"):
            continue
        y = _numbers(t.get("y"))
        if not y:
            continue
        x = _numbers(t.get("x")) or [float(i) for i in range(len(y))]
        n = min(len(x), len(y))
        points = [(a, b) for a, b in zip(x[:n], y[:n], strict=True) if a == a and b == b]
        if points:
            traces.append((t, points))
    if not traces:
        return None
    xs = [p[0] for _, pts in traces for p in pts]
    ys = [p[1] for _, pts in traces for p in pts]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    x1, y1 = (x1 if x1 > x0 else x0 + 1), (y1 if y1 > y0 else y0 + 1)
    left, right, top, bottom = 48, 12, 12, 32
    w, h = width - left - right, height - top - bottom

    def px(a: float, b: float) -> str:
        return f"{left + (a - x0) / (x1 - x0) * w:.1f},{top + (1 - (b - y0) / (y1 - y0)) * h:.1f}"

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="10">',
             f'<rect x="{left}" y="{top}" width="{w}" height="{h}" fill="#f5f7fb" stroke="#ccd"/>',
             f'<text x="{left}" y="{height - 16}">{x0:.4g}</text><text x="{left + w}" y="{height - 16}" text-anchor="end">{x1:.4g}</text>',
             f'<text x="{left - 4}" y="{top + h}" text-anchor="end">{y0:.4g}</text><text x="{left - 4}" y="{top + 8}" text-anchor="end">{y1:.4g}</text>']
    for i, (t, pts) in enumerate(traces):
        color = _COLORS[i % len(_COLORS)]
        if "lines" in t.get("mode", "lines") or len(pts) > 50:
            parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{" ".join(px(a, b) for a, b in pts)}"/>')
        else:
            parts += [f'<circle r="2.5" fill="{color}" cx="{px(a, b).split(",")[0]}" cy="{px(a, b).split(",")[1]}"/>' for a, b in pts]
    parts.append("</svg>")
    return "".join(parts)
