"""How two values of the registered codecs differ: DataFrames cell by cell, sparse matrices
entry by entry, models parameter by parameter, figures by their drawing.

Each reads the stored bytes with the least it can: Arrow tables with pyarrow (not pandas),
sparse matrices and skops models with numpy and zipfile (not scipy, not scikit-learn, nothing
loaded or trusted), torch modules with the torch-free safetensors reader. Nothing is unpickled.
Results are the shared ``ValueDiff`` / ``ArrayDiff`` records plus ``TableDiff`` for frames.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import msgspec

from mlbuild.engine.inspect.array_diff import (
    ArrayDiff,
    _bit_mismatch,
    _magnitudes,
    _numeric,
    diff_arrays,
    diff_named_arrays,
    short,
)
from mlbuild.rules.codecs.arrays import read_safetensors

if TYPE_CHECKING:
    import numpy as np

    from mlbuild.engine.inspect.artifact_diff import _DataDiffer

__all__ = ["TableDiff", "diff_encoded"]

MAX_SAMPLE_ROWS = 5


class TableDiff(msgspec.Struct, kw_only=True):
    """How a DataFrame (or Series) differs: its shape and columns, which rows differ (the first
    few by index label), and per column how many cells differ and by how much."""

    name: str
    old_shape: list[int]
    new_shape: list[int]
    columns_added: list[str] = []
    columns_removed: list[str] = []
    dtypes_changed: list[str] = []  # "x: int64 -> double"
    differing_rows: int = 0
    sample_rows: list[str] = []
    columns: list[ArrayDiff] = []  # differing = cells that differ; max_abs for numeric columns
    note: str | None = None


def diff_encoded(differ: _DataDiffer, path: str, codec: str, old: bytes, new: bytes) -> None:
    """Add how ``old`` and ``new`` (both in ``codec``) differ to ``differ``, under ``path``."""
    name = path or "(root)"
    try:
        if codec == "arrow":
            table = diff_tables(name, old, new)
            if table is not None:
                differ.add_table(table)
        elif codec == "sparse":
            d = diff_sparse(name, old, new)
            if d is not None:
                differ.add_array(d)
        elif codec == "skops":
            _diff_model(differ, name, old, new)
        elif codec in ("torch-module", "tensor-dataset"):
            _diff_module(differ, name, old, new)
        elif codec == "plotly":
            differ.walk(f"{path}.figure" if path else "figure", json.loads(old), json.loads(new))
        elif codec == "matplotlib":
            a, b = msgspec.msgpack.decode(old), msgspec.msgpack.decode(new)
            for key in ("png", "svg"):
                if a.get(key) != b.get(key):
                    differ.add_value(f"{name} ({key.upper()})", f"{len(a.get(key) or b'')} bytes",
                                     f"{len(b.get(key) or b'')} bytes, a different drawing")
        else:
            differ.add_value(name, f"{codec}: {len(old)} bytes", f"{len(new)} bytes")
    except Exception as exc:  # a detailed diff is a courtesy; the digests already differ
        differ.add_value(name, f"{codec} (not compared in detail: {type(exc).__name__}: {exc})", f"{len(new)} bytes")


# -- tables ---------------------------------------------------------------------------------


def _index_labels(table: Any) -> list[str] | None:
    meta = json.loads((table.schema.metadata or {}).get(b"pandas", b"{}") or b"{}")
    cols = [c for c in meta.get("index_columns", []) if isinstance(c, str)]
    if not cols:
        return None
    parts = [table.column(c).to_pylist() for c in cols]
    return [", ".join(map(str, row)) for row in zip(*parts, strict=True)]


def _data_columns(table: Any) -> list[str]:
    meta = json.loads((table.schema.metadata or {}).get(b"pandas", b"{}") or b"{}")
    index = {c for c in meta.get("index_columns", []) if isinstance(c, str)}
    return [c for c in table.column_names if c not in index]


def _column_mismatch(a: Any, b: Any) -> tuple[np.ndarray, float | None]:
    """Per row: do the cells differ (bit for bit for numbers, null-aware)? And the max |b-a|."""
    import numpy as np

    if a.type == b.type and (a.type.num_buffers <= 3) and _is_numeric(a.type) and a.null_count == 0 and b.null_count == 0:
        x, y = a.to_numpy(), b.to_numpy()
        mask = _bit_mismatch(x, y)
        if _numeric(x) and _numeric(y) and mask.any():
            return mask, _magnitudes(x[mask], y[mask])[0]
        return mask, None
    xs, ys = a.to_pylist(), b.to_pylist()
    mask = np.array([not _same(p, q) for p, q in zip(xs, ys, strict=True)], dtype=bool)
    return mask, None


def _same(p: Any, q: Any) -> bool:
    if isinstance(p, float) and isinstance(q, float):
        return p == q or (p != p and q != q)
    return type(p) is type(q) and bool(p == q)


def _is_numeric(t: Any) -> bool:
    import pyarrow as pa

    return bool(pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t))


def diff_tables(name: str, old: bytes, new: bytes) -> TableDiff | None:
    import numpy as np

    from mlbuild.rules.codecs.frame import read_table

    a, _ = read_table(old)
    b, _ = read_table(new)
    ca, cb = _data_columns(a), _data_columns(b)
    d = TableDiff(name=name, old_shape=[a.num_rows, len(ca)], new_shape=[b.num_rows, len(cb)],
                  columns_added=[c for c in cb if c not in ca], columns_removed=[c for c in ca if c not in cb])
    common = [c for c in ca if c in cb]
    la, lb = _index_labels(a), _index_labels(b)
    if a.num_rows != b.num_rows:
        d.note = f"{a.num_rows} -> {b.num_rows} rows; cells are not compared"
    elif la is not None and lb is not None and la != lb:
        d.note = "the index changed; cells are compared by position"
    if a.num_rows == b.num_rows:
        rows = np.zeros(a.num_rows, dtype=bool)
        for c in common:
            x, y = a.column(c).combine_chunks(), b.column(c).combine_chunks()
            if x.type != y.type:
                d.dtypes_changed.append(f"{c}: {x.type} -> {y.type}")
                x, y = x.cast(y.type) if _castable(x, y.type) else x, y
            mask, max_abs = _column_mismatch(x, y)
            count = int(mask.sum())
            if count:
                rows |= mask
                d.columns.append(ArrayDiff(name=str(c), old_dtype=str(a.column(c).type), new_dtype=str(y.type),
                                           total=len(mask), differing=count, max_abs=max_abs))
        d.differing_rows = int(rows.sum())
        labels = lb if lb is not None else [str(i) for i in range(b.num_rows)]
        d.sample_rows = [labels[i] for i in np.flatnonzero(rows)[:MAX_SAMPLE_ROWS]]
    changed = d.columns or d.columns_added or d.columns_removed or d.dtypes_changed or d.note
    return d if changed else None


def _castable(x: Any, t: Any) -> bool:
    try:
        x.cast(t)
        return True
    except Exception:
        return False


# -- sparse -------------------------------------------------------------------------------


def _coords(m: dict[str, Any]) -> tuple[str, tuple[int, ...], np.ndarray, np.ndarray] | None:
    """(format, shape, linear index of each stored entry, its value); None for bsr/dia."""
    import numpy as np

    fmt = m["format"].item()
    fmt = fmt.decode() if isinstance(fmt, bytes) else str(fmt)
    shape = tuple(int(s) for s in m["shape"])
    ncols = shape[1] if len(shape) > 1 else 1
    if fmt in ("csr", "csc"):
        major = np.repeat(np.arange(len(m["indptr"]) - 1), np.diff(m["indptr"]))
        rows, cols = (major, m["indices"]) if fmt == "csr" else (m["indices"], major)
    elif fmt == "coo":
        rows, cols = m["row"], m["col"]
    else:
        return None
    return fmt, shape, rows.astype(np.int64) * ncols + cols.astype(np.int64), m["data"]


def diff_sparse(name: str, old: bytes, new: bytes) -> ArrayDiff | None:
    """Entries that differ (present in one only, or another value), with the largest |b-a|."""
    import numpy as np

    from mlbuild.rules.codecs.sparse import read_npz

    ma, mb = read_npz(old), read_npz(new)
    a, b = _coords(ma), _coords(mb)
    if a is None or b is None:
        diffs = diff_named_arrays({f"{name}.{k}": v for k, v in ma.items()}, {f"{name}.{k}": v for k, v in mb.items()})
        return diffs[0] if diffs else None
    fa, sa, ka, va = a
    fb, sb, kb, vb = b
    d = ArrayDiff(name=name, old_shape=list(sa), new_shape=list(sb), old_dtype=str(va.dtype), new_dtype=str(vb.dtype))
    notes = [f"sparse {fa}" + (f" -> {fb}" if fa != fb else ""), f"{len(va)} -> {len(vb)} stored entries"]
    if sa != sb:
        d.note = "; ".join(["shape changed", *notes])
        return d
    # Duplicate entries (allowed before sum_duplicates) are summed, as scipy reads them.
    def dense_on(keys: np.ndarray, vals: np.ndarray, at: np.ndarray) -> np.ndarray:
        out = np.zeros(len(at), dtype=np.result_type(vals.dtype, np.float64) if vals.dtype.kind in "biuf" else vals.dtype)
        np.add.at(out, np.searchsorted(at, keys), vals)
        return out

    keys = np.union1d(ka, kb)
    x, y = dense_on(ka, va, keys), dense_on(kb, vb, keys)
    mask = _bit_mismatch(x, y) if x.dtype == y.dtype else x != y
    d.total, d.differing = len(keys), int(mask.sum())
    if d.differing:
        d.max_abs, d.max_rel = _magnitudes(x[mask], y[mask])
    d.note = "; ".join(notes)
    same_layout = fa == fb and va.dtype == vb.dtype and np.array_equal(ka, kb)
    if d.differing == 0 and same_layout:
        return None
    if d.differing == 0:
        d.note += "; same values, stored differently"
    return d


# -- models -------------------------------------------------------------------------------


def _diff_model(differ: _DataDiffer, name: str, old: bytes, new: bytes) -> None:
    from mlbuild.rules.codecs.estimator import parameters, read_arrays

    pa, pb = parameters(old), parameters(new)
    aa, ab = read_arrays(old), read_arrays(new)
    for key in sorted(set(pa) | set(pb), key=str):
        path = f"{name}.{key}"
        x, y = pa.get(key), pb.get(key)
        if isinstance(x, dict) and isinstance(y, dict) and "array" in x and "array" in y:
            xa, ya = aa.get(x["array"]), ab.get(y["array"])
            if xa is not None and ya is not None:
                # A structured array (a tree's nodes) is compared field by field.
                fields = xa.dtype.names if xa.dtype.names and xa.dtype == ya.dtype else None
                pairs = [(f"{path}.{f}", xa[f], ya[f]) for f in fields] if fields else [(path, xa, ya)]
                for label, u, v in pairs:
                    d = diff_arrays(label, u, v)
                    if d is not None:
                        differ.add_array(d)
                continue
        if key not in pb:
            differ.add_value(path, short(x), "(removed)")
        elif key not in pa:
            differ.add_value(path, "(absent)", short(y))
        elif x != y:
            differ.add_value(path, short(x), short(y))


def _diff_module(differ: _DataDiffer, name: str, old: bytes, new: bytes) -> None:
    from mlbuild.rules.codecs.torch_module import metadata

    ma, mb = metadata(old), metadata(new)
    for key in sorted(set(ma) | set(mb)):
        if ma.get(key) != mb.get(key):
            differ.add_value(f"{name}.{key.removeprefix('mlbuild.')}", short(ma.get(key)), short(mb.get(key)))
    for d in diff_named_arrays({f"{name}.{k}": v for k, v in read_safetensors(old).items()},
                                {f"{name}.{k}": v for k, v in read_safetensors(new).items()}):
        differ.add_array(d)
