"""A step's ``Resources`` in the units each backend takes (Docker limits, Ray resources)."""

from __future__ import annotations

from mlbuild.cache.sizes import parse_size
from mlbuild.rules.rule import Resources

__all__ = ["memory_bytes", "ray_options"]

def memory_bytes(memory: str | int | None) -> int | None:
    """A step's memory in bytes (``"4Gi"`` → 4294967296, ``"512M"`` → 512000000, see
    ``cache/sizes.py``); None stays None."""
    if memory is None:
        return None
    value = parse_size(memory, "memory")
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
