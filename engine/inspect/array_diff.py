"""How two arrays differ, element by element: the part of the output diffs that the codecs'
own diffs (``codec_diff``) build on too."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import msgspec

if TYPE_CHECKING:
    import numpy as np

__all__ = ["ArrayDiff", "diff_arrays", "diff_named_arrays", "short"]

_REPR_WIDTH = 80


class ArrayDiff(msgspec.Struct, kw_only=True):
    """How one array or tensor differs. ``differing`` counts elements whose bits differ."""

    name: str
    old_shape: list[int] | None = None
    new_shape: list[int] | None = None
    old_dtype: str | None = None
    new_dtype: str | None = None
    total: int = 0
    differing: int | None = None  # None when shapes differ (no element-wise comparison)
    max_abs: float | None = None
    max_rel: float | None = None
    note: str | None = None  # "added", "removed", "shape changed", …


def _bit_mismatch(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per element: do the bit patterns differ? (same dtype and shape)."""
    import numpy as np

    item = a.dtype.itemsize
    if a.size == 0 or item == 0:
        return np.zeros(a.shape, dtype=bool)
    ra = np.frombuffer(np.ascontiguousarray(a).tobytes(), dtype=np.uint8).reshape(-1, item)
    rb = np.frombuffer(np.ascontiguousarray(b).tobytes(), dtype=np.uint8).reshape(-1, item)
    return np.asarray((ra != rb).any(axis=1)).reshape(a.shape)


def _numeric(a: np.ndarray) -> bool:
    import numpy as np

    return bool(np.issubdtype(a.dtype, np.number) or a.dtype == np.bool_)


def _magnitudes(old: np.ndarray, new: np.ndarray) -> tuple[float | None, float | None]:
    """Largest |new - old| and |new - old| / |old| over the given (differing) elements."""
    import numpy as np

    if old.size == 0 or not (_numeric(old) and _numeric(new)):
        return None, None
    kind = np.complex128 if (np.iscomplexobj(old) or np.iscomplexobj(new)) else np.float64
    o = old.astype(kind)
    n = new.astype(kind)
    with np.errstate(all="ignore"):
        delta = np.abs(n - o)
        ref = np.abs(o)
        rel = np.where(ref > 0, delta / np.where(ref > 0, ref, 1.0), np.where(delta > 0, np.inf, 0.0))
    finite = ~np.isnan(delta)
    if not finite.any():
        return math.nan, math.nan
    return float(delta[finite].max()), float(rel[finite].max())


def diff_arrays(name: str, old: np.ndarray, new: np.ndarray) -> ArrayDiff | None:
    """None when the two arrays are bit-for-bit identical (same shape, dtype and bytes)."""
    import numpy as np

    old = np.asarray(old)
    new = np.asarray(new)
    d = ArrayDiff(
        name=name,
        old_shape=list(old.shape),
        new_shape=list(new.shape),
        old_dtype=str(old.dtype),
        new_dtype=str(new.dtype),
        total=int(new.size),
    )
    if old.shape != new.shape:
        d.note = "shape changed"
        return d
    if old.dtype == new.dtype:
        mismatch = _bit_mismatch(old, new)
    else:
        d.note = "dtype changed"
        if not (_numeric(old) and _numeric(new)):
            return d
        with np.errstate(all="ignore"):
            mismatch = ~((old == new) | (np.isnan(old.astype(np.complex128)) & np.isnan(new.astype(np.complex128))))
    count = int(mismatch.sum())
    if count == 0 and old.dtype == new.dtype:
        return None
    d.differing = count
    if count:
        d.max_abs, d.max_rel = _magnitudes(old[mismatch], new[mismatch])
    return d


def diff_named_arrays(old: dict[str, np.ndarray], new: dict[str, np.ndarray]) -> list[ArrayDiff]:
    diffs: list[ArrayDiff] = []
    for name in sorted(set(old) | set(new)):
        if name not in new:
            a = old[name]
            diffs.append(ArrayDiff(name=name, old_shape=list(a.shape), old_dtype=str(a.dtype), note="removed"))
        elif name not in old:
            b = new[name]
            diffs.append(ArrayDiff(name=name, new_shape=list(b.shape), new_dtype=str(b.dtype), total=int(b.size), note="added"))
        else:
            d = diff_arrays(name, old[name], new[name])
            if d is not None:
                diffs.append(d)
    return diffs


def short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _REPR_WIDTH else text[: _REPR_WIDTH - 1] + "…"
