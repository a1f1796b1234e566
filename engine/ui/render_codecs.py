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
    return [r.Section(name, [r.Scalars("plotly figure", rows),
                             r.Text(f"{name} (plotly JSON)", text[:MAX_JSON], "json", len(text) > MAX_JSON)])]
