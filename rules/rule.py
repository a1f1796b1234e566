"""The ``@rule`` decorator: marks a plain Python function as a pipeline step."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, overload

import msgspec

F = TypeVar("F", bound=Callable[..., Any])

RULE_ATTR = "__mlbuild_rule__"


class Resources(msgspec.Struct, frozen=True, kw_only=True):
    """What one execution of a step needs: CPUs, memory (``"4Gi"``), GPUs."""

    cpus: float = 1.0
    memory: str | None = None
    gpus: int = 0


class RuleOptions(msgspec.Struct, frozen=True, kw_only=True):
    """Options given to ``@rule``; read statically from source by the planner as well."""

    image: str | None = None
    resources: Resources = Resources()
    retries: int = 0
    deterministic: bool = True
    allow_pickle: bool = False
    timeout: float | None = None  # seconds; past it the step is stopped and fails
    # Files the rule writes into ``out`` that hold metrics (JSON/YAML numbers) or plot series
    # (CSV/TSV/JSON), workspace-independent paths relative to ``out``; `mlbuild metrics`,
    # `exp` and `plots` read them. Not part of the key: they only say how to show outputs.
    metrics: list[str] = []
    plots: list[str] = []


@overload
def rule(fn: F) -> F: ...


@overload
def rule(
    *,
    image: str | None = None,
    resources: Resources | None = None,
    retries: int = 0,
    deterministic: bool = True,
    allow_pickle: bool = False,
    timeout: float | None = None,
    metrics: list[str] | None = None,
    plots: list[str] | None = None,
) -> Callable[[F], F]: ...


def rule(
    fn: F | None = None,
    *,
    image: str | None = None,
    resources: Resources | None = None,
    retries: int = 0,
    deterministic: bool = True,
    allow_pickle: bool = False,
    timeout: float | None = None,
    metrics: list[str] | None = None,
    plots: list[str] | None = None,
) -> F | Callable[[F], F]:
    """Mark ``fn`` as a step. The function itself is returned, so it stays directly callable.

    Parameters of the function: ``config`` receives the target's config, ``out`` an empty
    output directory, every other parameter the input of that name. ``image`` runs it in a
    container, ``resources`` is what it needs, ``retries`` how often a lost worker is retried,
    ``deterministic=False`` tells ``mlbuild verify`` not to expect identical bytes,
    ``allow_pickle`` lets its value be pickled (such artifacts are never shared remotely),
    ``timeout`` (seconds) stops a step that runs longer and fails its target,
    ``metrics`` and ``plots`` name files in ``out`` that hold metrics or plot series.
    """
    options = RuleOptions(
        image=image,
        resources=resources or Resources(),
        retries=retries,
        deterministic=deterministic,
        allow_pickle=allow_pickle,
        timeout=timeout,
        metrics=list(metrics or []),
        plots=list(plots or []),
    )

    def mark(f: F) -> F:
        setattr(f, RULE_ATTR, options)
        return f

    return mark(fn) if fn is not None else mark
