"""The one parser of byte sizes (``cache gc --max-size``, a step's ``Resources(memory=...)``)."""

from __future__ import annotations

import re

__all__ = ["parse_size"]

# Kubernetes quantities: decimal suffixes are powers of 1000, the ``i`` ones powers of 1024.
_FACTORS = {
    "": 1,
    "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12, "p": 10**15, "e": 10**18,
    "ki": 2**10, "mi": 2**20, "gi": 2**30, "ti": 2**40, "pi": 2**50, "ei": 2**60,
}  # fmt: skip
_SIZE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([kmgtpe]i?)?b?\s*$", re.IGNORECASE)


def parse_size(size: str | int, what: str = "size") -> int:
    """A number of bytes from a size written the Kubernetes way, e.g. for ``--max-size``.

    ``"500M"`` is 500,000,000 bytes and ``"500Mi"`` is 500 × 2**20 = 524,288,000 (decimal
    ``k M G T P E``, binary ``Ki Mi Gi Ti Pi Ei``), as in a pod's memory limit. Suffixes are
    case-insensitive (``2g`` is ``2G``; ``m`` is mega, never milli: a fraction of a byte means
    nothing here) and may end in ``B`` (``1.5GiB``). A plain number, or an int, is bytes.
    Fractions are rounded down to a whole byte. ValueError, naming ``what``, for anything
    else (a negative size included).
    """
    if isinstance(size, int) and not isinstance(size, bool):
        if size < 0:
            raise ValueError(f"{what} must not be negative, got {size!r}")
        return size
    m = _SIZE.match(size) if isinstance(size, str) else None
    if not m:
        raise ValueError(f"bad {what} {size!r}: not a quantity like '500M' or '4Gi' (M = 10**6 bytes, Mi = 2**20)")
    number, unit = m.group(1), (m.group(2) or "").lower()
    # Exact for whole numbers of any size; through a float only for a fraction.
    return int(number) * _FACTORS[unit] if number.isdigit() else int(float(number) * _FACTORS[unit])
