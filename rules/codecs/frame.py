"""pandas and polars DataFrames and Series as Arrow IPC streams (pyarrow).

The stream is uncompressed Arrow IPC: a documented, language-neutral format that pyarrow,
polars and DuckDB read directly (``x.value.arrow``). pandas' index and dtypes travel in the
schema's ``pandas`` metadata (written by ``pyarrow.Table.from_pandas``); which library and
kind the value was is in our own ``mlbuild`` metadata key, so it comes back as what it was.
No Python object is stored: object columns must hold strings, bytes, numbers or None.
"""

from __future__ import annotations

import io
import json
from typing import Any

from mlbuild.rules.codecs.registry import EncodingError

_META = b"mlbuild"


def _kind(value: Any) -> str:
    top = type(value).__module__.split(".", 1)[0]
    return f"{top}.{type(value).__name__}"


def _canonical(frame: Any) -> Any:
    """The frame as decoding gives it back — object columns (and an index) of strings as pandas'
    string dtype, every NaN the same NaN — so a frame re-encoded after a round trip gives the same
    bytes (an unchanged DataFrame passed through a step keeps its digest: early cutoff, verify)."""
    from pandas.api.types import infer_dtype

    out = frame
    for i in range(frame.shape[1]):
        column = frame.iloc[:, i]
        if column.dtype == object and infer_dtype(column, skipna=True) == "string":
            fixed = column.astype("str")
        elif column.dtype.kind == "f" and column.hasnans:
            # Arrow stores a NaN as a null over the NaN's own bits (-NaN, payloads); decoding
            # gives the canonical NaN back. One NaN bit pattern keeps the bytes the same.
            fixed = column.where(column.notna(), float("nan"))
        else:
            continue
        if out is frame:
            out = frame.copy(deep=False)
        out.isetitem(i, fixed)
    if out.index.dtype == object and infer_dtype(out.index, skipna=True) == "string":
        out = out.set_axis(out.index.astype("str"), axis=0) if out is not frame else frame.set_axis(frame.index.astype("str"), axis=0)
    return out


def encode(value: Any) -> bytes:
    try:
        import pyarrow as pa
    except ImportError:
        raise EncodingError("a DataFrame needs pyarrow to be stored: pip install 'mlbuild[frame]'") from None
    kind = _kind(value)
    extra: dict[str, Any] = {"kind": kind}
    try:
        if kind == "pandas.Series":
            # A Series is a one-column frame; its name may be None or not a string.
            extra["name"] = value.name
            table = pa.Table.from_pandas(_canonical(value.to_frame(name="__series__")), preserve_index=None)
        elif kind == "pandas.DataFrame":
            table = pa.Table.from_pandas(_canonical(value), preserve_index=None)
        elif kind == "polars.Series":
            extra["name"] = value.name
            table = value.to_frame().to_arrow()
        else:
            table = value.to_arrow()
        json.dumps(extra)
    except (pa.ArrowException, TypeError, ValueError) as exc:
        raise EncodingError(
            f"{kind} cannot be stored as Arrow ({exc}); object columns must hold str, bytes, numbers or None"
        ) from None
    meta = dict(table.schema.metadata or {})
    meta[_META] = json.dumps(extra, sort_keys=True).encode()
    table = table.replace_schema_metadata(meta)
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def read_table(data: bytes) -> tuple[Any, dict[str, Any]]:
    """The Arrow table in ``data`` and our metadata (``kind``, ``name``)."""
    import pyarrow as pa

    table = pa.ipc.open_stream(pa.py_buffer(data)).read_all()
    meta = json.loads((table.schema.metadata or {}).get(_META, b"{}"))
    return table, meta


def decode(data: bytes) -> Any:
    table, meta = read_table(data)
    kind = meta.get("kind", "pandas.DataFrame")
    if kind.startswith("polars."):
        import polars as pl

        frame: Any = pl.from_arrow(table)
        return frame.to_series(0).alias(meta.get("name") or "") if kind == "polars.Series" else frame
    frame = table.to_pandas()
    if kind == "pandas.Series":
        series = frame["__series__"]
        series.name = meta.get("name")
        return series
    return frame
