"""A step's ``Resources`` in the units each backend takes (Docker limits, Ray resources)."""

from __future__ import annotations

import re

from mlbuild.rules.rule import Resources

__all__ = ["memory_bytes", "ray_options"]

_UNITS = {
    "": 1,
    "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12, "p": 10**15,
    "ki": 2**10, "mi": 2**20, "gi": 2**30, "ti": 2**40, "pi": 2**50,
}
_QUANTITY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtp]i?)?b?\s*$", re.IGNORECASE)


def memory_bytes(memory: str | int | None) -> int | None:
    """``"4Gi"`` → 4294967296, ``"512M"`` → 512000000, ``"2g"`` → 2000000000; None stays None.

    Kubernetes quantity suffixes (binary ``Ki``…``Pi``, decimal ``k``…``P``), case-insensitive,
    with an optional trailing ``b``. ValueError for anything else."""
    if memory is None:
        return None
    if isinstance(memory, int) and not isinstance(memory, bool):
        if memory <= 0:
            raise ValueError(f"memory must be positive, got {memory!r}")
        return memory
    m = _QUANTITY.match(str(memory))
    if not m:
        raise ValueError(f"memory {memory!r} is not a quantity like '4Gi' or '512M'")
    value = int(float(m.group(1)) * _UNITS[(m.group(2) or "").lower()])
    if value <= 0:
        raise ValueError(f"memory must be positive, got {memory!r}")
    return value


def ray_options(resources: Resources, retries: int) -> dict[str, object]:
    """``.options(...)`` of the Ray task that runs a step: its CPUs, GPUs, memory and retries.

    ``max_retries`` retries only when the worker process dies (a system failure); a step that
    raises is not retried, its error is the outcome."""
    options: dict[str, object] = {
        "num_cpus": resources.cpus,
        "num_gpus": resources.gpus,
        "max_retries": retries,
        "retry_exceptions": False,
    }
    memory = memory_bytes(resources.memory)
    if memory is not None:
        options["memory"] = memory
    return options
