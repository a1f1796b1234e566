"""scipy.sparse matrices and arrays as a deterministic ``.npz`` (the layout ``scipy.sparse.save_npz``
writes, so ``scipy.sparse.load_npz`` opens the materialized file).

``np.savez`` stamps each member with the current time; here every member is written with a
fixed date, in a fixed order, uncompressed, by ``np.lib.format.write_array`` with
``allow_pickle=False``. Reading parses the members as ``.npy`` with ``allow_pickle=False``.
"""

from __future__ import annotations

import io
import zipfile
from typing import Any

from mlbuild.rules.codecs.registry import EncodingError

FIXED_DATE = (1980, 1, 1, 0, 0, 0)
# Arrays per format, as save_npz names them.
_FIELDS = {
    "csr": ("indices", "indptr", "data"),
    "csc": ("indices", "indptr", "data"),
    "bsr": ("indices", "indptr", "data"),
    "coo": ("row", "col", "data"),
    "dia": ("offsets", "data"),
}


def write_npz(members: dict[str, Any]) -> bytes:
    """A zip of ``.npy`` members, byte-identical for identical arrays (sorted, fixed dates)."""
    import numpy as np

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for name in sorted(members):
            arr = np.asarray(members[name])
            if arr.dtype.hasobject:
                raise EncodingError(f"{name!r} has object dtype")
            info = zipfile.ZipInfo(name + ".npy", date_time=FIXED_DATE)
            info.external_attr = 0o644 << 16
            member = io.BytesIO()
            np.lib.format.write_array(member, np.ascontiguousarray(arr), allow_pickle=False)
            zf.writestr(info, member.getvalue())
    return buf.getvalue()


def read_npz(data: bytes) -> dict[str, Any]:
    import numpy as np

    out: dict[str, Any] = {}
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        for name in zf.namelist():
            key = name.removesuffix(".npy")
            out[key] = np.lib.format.read_array(io.BytesIO(zf.read(name)), allow_pickle=False)
    return out


def encode(value: Any) -> bytes:
    fmt = value.format
    if fmt not in _FIELDS:
        raise EncodingError(f"{type(value).__name__} ({fmt} format) has no stored form; convert it with .tocsr()")
    if value.dtype.hasobject:
        raise EncodingError(f"{type(value).__name__} of object dtype cannot be encoded; convert it to a numeric dtype (.astype(float))")
    import numpy as np

    members = {name: getattr(value, name) for name in _FIELDS[fmt]}
    members["format"] = np.array(fmt.encode())
    members["shape"] = np.array(value.shape, dtype=np.int64)
    if fmt == "bsr":
        members["blocksize"] = np.array(value.blocksize, dtype=np.int64)
    # save_npz marks sparse arrays (vs the older matrix classes) the same way.
    if not type(value).__name__.endswith("_matrix"):
        members["_is_array"] = np.array(True)
    return write_npz(members)


def decode(data: bytes) -> Any:
    import scipy.sparse as sp

    m = read_npz(data)
    fmt = m["format"].item().decode() if isinstance(m["format"].item(), bytes) else str(m["format"].item())
    shape = tuple(int(s) for s in m["shape"])
    is_array = bool(m.get("_is_array", False))
    if fmt not in _FIELDS:
        raise EncodingError(f"unknown sparse format {fmt!r}")
    if fmt == "coo":
        args: Any = (m["data"], (m["row"], m["col"]))
    elif fmt == "dia":
        args = (m["data"], m["offsets"])
    else:
        args = (m["data"], m["indices"], m["indptr"])
    cls = getattr(sp, f"{fmt}_{'array' if is_array else 'matrix'}")
    kwargs: dict[str, Any] = {"shape": shape}
    if fmt == "bsr":
        kwargs["blocksize"] = tuple(int(b) for b in m["blocksize"])
    return cls(args, **kwargs)
