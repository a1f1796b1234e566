"""How two versions of an output differ, for ``mlbuild verify`` and ``mlbuild reproduce``.

Arrays and tensors (npy, safetensors, numpy arrays inside msgpack data, ``.npy`` and
``.safetensors`` files inside trees) are compared element by element: shape and dtype change,
the number of elements whose *bits* differ (bit-for-bit is the contract, so ``-0.0`` vs ``0.0``
counts), and the largest absolute and relative difference. Plain data gets a structural diff of
its first differences (``metrics.train_loss[2]: 0.51 -> 0.52``); a tree lists the files that
differ, appeared or disappeared.

Values of the registered codecs (DataFrames, sparse matrices, models, figures; at the top or
nested in plain data) are compared by ``codec_diff``: cells, entries, parameters.

Nothing here imports torch: safetensors are parsed from their (simple, documented) format, and
msgpack's tensor extension is read back as a numpy array. Nothing is ever unpickled.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Any, Literal

import msgspec

from mlbuild.cache.cas import CAS, CorruptBlob, MissingBlob
from mlbuild.cache.records import ArtifactRef
from mlbuild.cache.trees import read_tree
from mlbuild.engine.inspect.array_diff import ArrayDiff, diff_arrays, diff_named_arrays, short
from mlbuild.rules.codecs import decode_numpy, read_safetensors
from mlbuild.rules.codecs.plain import Encoded

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "ArrayDiff",
    "ArtifactDiff",
    "FileDiff",
    "ValueDiff",
    "diff_arrays",
    "diff_artifacts",
    "diff_bytes",
    "diff_data",
    "format_diff",
    "read_safetensors",
]

MAX_DIFFERENCES = 20  # structural differences listed before "… and N more"


class ValueDiff(msgspec.Struct):
    """One difference in plain data, at a path like ``metrics.train_loss[2]``."""

    path: str
    old: str
    new: str


class FileDiff(msgspec.Struct, kw_only=True):
    """One file of a tree that differs, was added or was removed."""

    path: str
    change: Literal["changed", "added", "removed", "mode"]
    old_size: int | None = None
    new_size: int | None = None
    arrays: list[ArrayDiff] = []
    note: str | None = None


class ArtifactDiff(msgspec.Struct, kw_only=True):
    """How an output differs between two runs (or a run and the recorded result)."""

    kind: Literal["arrays", "data", "tree", "bytes", "codec", "unavailable"]
    arrays: list[ArrayDiff] = []
    values: list[ValueDiff] = []
    files: list[FileDiff] = []
    tables: list[Any] = []  # codec_diff.TableDiff: DataFrames that differ
    more: int = 0  # differences found but not listed
    note: str | None = None


# ------------------------------------------------------------------------------- arrays


def _load_npy(data: bytes) -> np.ndarray:
    import io

    import numpy as np

    return np.lib.format.read_array(io.BytesIO(data), allow_pickle=False)


# ------------------------------------------------------------------------------- plain data


def _is_array(value: Any) -> bool:
    return type(value).__module__ == "numpy" and type(value).__name__ == "ndarray"


def _same_scalar(a: Any, b: Any) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        # Bit-for-bit: NaN equals itself, -0.0 differs from 0.0.
        return struct.pack("<d", a) == struct.pack("<d", b)
    return bool(a == b)


class _DataDiffer:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.values: list[ValueDiff] = []
        self.arrays: list[ArrayDiff] = []
        self.tables: list[Any] = []
        self.more = 0

    def _value(self, path: str, old: str, new: str) -> None:
        if self._room():
            self.values.append(ValueDiff(path or "(root)", old, new))

    def _room(self) -> bool:
        if len(self.values) + len(self.arrays) + len(self.tables) < self.limit:
            return True
        self.more += 1
        return False

    def add_value(self, path: str, old: str, new: str) -> None:
        self._value(path, old, new)

    def add_array(self, d: ArrayDiff) -> None:
        if self._room():
            self.arrays.append(d)

    def add_table(self, d: Any) -> None:
        if self._room():
            self.tables.append(d)

    def walk(self, path: str, a: Any, b: Any) -> None:
        if isinstance(a, Encoded) and isinstance(b, Encoded) and a.codec == b.codec:
            if a.data != b.data:
                from mlbuild.engine.inspect.codec_diff import diff_encoded

                diff_encoded(self, path, a.codec, a.data, b.data)
        elif _is_array(a) and _is_array(b):
            d = diff_arrays(path or "(root)", a, b)
            if d is not None:
                if len(self.values) + len(self.arrays) < self.limit:
                    self.arrays.append(d)
                else:
                    self.more += 1
        elif isinstance(a, dict) and isinstance(b, dict):
            for k in sorted(set(a) | set(b), key=repr):
                sub = f"{path}.{k}" if path else str(k)
                if k not in b:
                    self._value(sub, short(a[k]), "(removed)")
                elif k not in a:
                    self._value(sub, "(absent)", short(b[k]))
                else:
                    self.walk(sub, a[k], b[k])
        elif isinstance(a, list) and isinstance(b, list):
            for i in range(min(len(a), len(b))):
                self.walk(f"{path}[{i}]", a[i], b[i])
            if len(a) != len(b):
                self._value(f"{path} length", str(len(a)), str(len(b)))
        elif not _same_scalar(a, b):
            self._value(path, short(a), short(b))


def diff_data(old: Any, new: Any, limit: int = MAX_DIFFERENCES) -> ArtifactDiff:
    """A structural diff of two decoded plain-data values (dicts, lists, scalars, arrays)."""
    d = _DataDiffer(limit)
    d.walk("", old, new)
    return ArtifactDiff(kind="data", values=d.values, arrays=d.arrays, tables=d.tables, more=d.more)


# ------------------------------------------------------------------------------- artifacts


def diff_bytes(codec: str, old: bytes, new: bytes) -> ArtifactDiff:
    """How two encodings of a value in ``codec`` differ."""
    if codec == "npy":
        diffs = diff_named_arrays({"value": _load_npy(old)}, {"value": _load_npy(new)})
        return ArtifactDiff(kind="arrays", arrays=diffs, note=None if diffs else "same values, different bytes")
    if codec == "safetensors":
        diffs = diff_named_arrays(read_safetensors(old), read_safetensors(new))
        return ArtifactDiff(kind="arrays", arrays=diffs, note=None if diffs else "same tensors, different bytes (header or order)")
    if codec == "msgpack":
        a = decode_numpy("msgpack", old)
        b = decode_numpy("msgpack", new)
        diff = diff_data(a, b)
        if not (diff.values or diff.arrays or diff.tables or diff.more):
            diff.note = "same values, different bytes"
        return diff
    if codec in ("pickle", "tree"):
        return ArtifactDiff(kind="bytes", note=f"{codec} artifacts are compared as bytes only ({len(old)} -> {len(new)} bytes)")
    diff = diff_data(Encoded(codec, old), Encoded(codec, new))
    if not (diff.values or diff.arrays or diff.tables or diff.more):
        diff.note = "same values, different bytes"
    return diff


def _read(cas: CAS, digest: str) -> bytes | None:
    try:
        return cas.get_bytes(digest)
    except (CorruptBlob, MissingBlob):
        return None


def _file_arrays(path: str, old: bytes, new: bytes) -> list[ArrayDiff]:
    if path.endswith(".npy"):
        return diff_named_arrays({path: _load_npy(old)}, {path: _load_npy(new)})
    if path.endswith(".safetensors"):
        return diff_named_arrays(read_safetensors(old), read_safetensors(new))
    return []


def _diff_trees(old_cas: CAS, old_digest: str, new_cas: CAS, new_digest: str) -> ArtifactDiff:
    try:
        old = {e.path: e for e in read_tree(old_cas, old_digest)}
        new = {e.path: e for e in read_tree(new_cas, new_digest)}
    except (CorruptBlob, MissingBlob):
        return ArtifactDiff(kind="unavailable", note="a tree listing is missing or corrupt; only the digests differ")
    files: list[FileDiff] = []
    for path in sorted(set(old) | set(new)):
        o, n = old.get(path), new.get(path)
        if n is None and o is not None:
            files.append(FileDiff(path=path, change="removed", old_size=o.size))
        elif o is None and n is not None:
            files.append(FileDiff(path=path, change="added", new_size=n.size))
        elif o is not None and n is not None and o.digest != n.digest:
            f = FileDiff(path=path, change="changed", old_size=o.size, new_size=n.size)
            if path.endswith((".npy", ".safetensors")):
                a, b = _read(old_cas, o.digest), _read(new_cas, n.digest)
                if a is None or b is None:
                    f.note = "the recorded bytes are no longer in the cache"
                else:
                    try:
                        f.arrays = _file_arrays(path, a, b)
                    except (ValueError, KeyError, struct.error) as exc:
                        f.note = f"cannot be read as arrays: {exc}"
            files.append(f)
        elif o is not None and n is not None and o.executable != n.executable:
            files.append(FileDiff(path=path, change="mode", note=f"executable {o.executable} -> {n.executable}"))
    return ArtifactDiff(kind="tree", files=files)


def diff_artifacts(old: ArtifactRef, old_cas: CAS, new: ArtifactRef, new_cas: CAS) -> ArtifactDiff:
    """How ``new`` differs from ``old``; each is read from its own CAS (they may be the same)."""
    if old.codec != new.codec:
        return ArtifactDiff(kind="codec", note=f"encoding changed: {old.codec} -> {new.codec}")
    if old.codec == "tree":
        return _diff_trees(old_cas, old.digest, new_cas, new.digest)
    a, b = _read(old_cas, old.digest), _read(new_cas, new.digest)
    if a is None or b is None:
        which = "recorded" if a is None else "new"
        return ArtifactDiff(kind="unavailable", note=f"the {which} bytes are not in the local cache; only the digests differ")
    try:
        return diff_bytes(old.codec, a, b)
    except (ValueError, KeyError, struct.error, msgspec.DecodeError) as exc:
        return ArtifactDiff(kind="bytes", note=f"cannot be decoded for a detailed diff: {exc}")


# ------------------------------------------------------------------------------- text


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.6g}"


def _array_line(d: ArrayDiff) -> str:
    if d.note in ("added", "removed"):
        shape = d.new_shape if d.note == "added" else d.old_shape
        dtype = d.new_dtype if d.note == "added" else d.old_dtype
        return f"{d.name}: {d.note} ({dtype} {shape})"
    head = f"{d.name}: {d.new_dtype}{d.new_shape}"
    if d.old_shape != d.new_shape:
        return f"{d.name}: shape {d.old_shape} -> {d.new_shape} ({d.old_dtype} -> {d.new_dtype})"
    if d.old_dtype != d.new_dtype:
        head = f"{d.name}: dtype {d.old_dtype} -> {d.new_dtype}, shape {d.new_shape}"
    extra = f" ({d.note})" if d.note and d.note not in ("dtype changed", "shape changed") else ""
    if d.differing is None:
        return head + extra
    return f"{head}: {d.differing} of {d.total} elements differ, max abs diff {_num(d.max_abs)}, max rel diff {_num(d.max_rel)}{extra}"


def _table_lines(t: Any) -> list[str]:
    head = f"{t.name}: table {t.old_shape[0]}x{t.old_shape[1]}"
    head += f" -> {t.new_shape[0]}x{t.new_shape[1]}" if t.old_shape != t.new_shape else ""
    if t.differing_rows:
        sample = ", ".join(t.sample_rows) + (", …" if t.differing_rows > len(t.sample_rows) else "")
        head += f": {t.differing_rows} of {t.new_shape[0]} rows differ ({sample})"
    lines = [head]
    lines += [f"  columns added: {', '.join(t.columns_added)}"] if t.columns_added else []
    lines += [f"  columns removed: {', '.join(t.columns_removed)}"] if t.columns_removed else []
    lines += [f"  dtype {c}" for c in t.dtypes_changed]
    for c in t.columns:
        mag = f", max abs diff {_num(c.max_abs)}" if c.max_abs is not None else ""
        lines.append(f"  column {c.name!r}: {c.differing} of {c.total} cells differ{mag}")
    lines += [f"  {t.note}"] if t.note else []
    return lines


def format_diff(diff: ArtifactDiff) -> list[str]:
    """Human-readable lines (without indentation) describing ``diff``."""
    lines = [_array_line(a) for a in diff.arrays if diff.kind == "arrays"]
    if diff.kind == "data":
        lines += [f"{v.path}: {v.old} -> {v.new}" for v in diff.values]
        lines += [_array_line(a) for a in diff.arrays]
        for t in diff.tables:
            lines += _table_lines(t)
    for f in diff.files:
        sizes = f" ({f.old_size} -> {f.new_size} bytes)" if f.change == "changed" else ""
        lines.append(f"{f.path}: {f.change}{sizes}" + (f"; {f.note}" if f.note else ""))
        lines += ["  " + _array_line(a) for a in f.arrays]
    if diff.more:
        lines.append(f"… and {diff.more} more differences")
    if diff.note:
        lines.append(diff.note)
    return lines
