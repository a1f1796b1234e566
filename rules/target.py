"""``target()`` and ``File``: what a ``BUILD.py`` declares.

A ``BUILD.py`` is executed by the workspace loader with a collector installed; ``target()``
records a declaration into it. Declarations are plain data: a rule is named by
``"file.py:function"`` so that loading a workspace never imports the pipeline's modules.
"""

from __future__ import annotations

import contextvars
from pathlib import Path
from typing import Any

import msgspec

from mlbuild.rules.rule import Resources


class File(msgspec.Struct, frozen=True):
    """A source file (or directory) of the workspace, relative to the declaring package.

    A path starting with ``//`` is relative to the workspace root.
    """

    path: str


class TargetDecl(msgspec.Struct, kw_only=True):
    """One ``target()`` call as written, before labels are resolved."""

    name: str
    rule: str
    inputs: dict[str, str | File] = {}
    config: Any = None
    image: str | None = None
    resources: Resources | None = None
    tags: list[str] = []
    executor: str | None = None


class DeclarationError(Exception):
    """A ``BUILD.py`` declared something malformed."""


_collector: contextvars.ContextVar[list[TargetDecl] | None] = contextvars.ContextVar(
    "mlbuild_target_collector", default=None
)


def target(
    name: str,
    rule: str,
    inputs: dict[str, str | File] | None = None,
    config: Any = None,
    *,
    image: str | None = None,
    resources: Resources | None = None,
    tags: list[str] | None = None,
    executor: str | None = None,
) -> None:
    """Declare target ``name`` of the current package.

    ``rule`` is ``"file.py:function"`` (relative to this package) or ``"//pkg/file.py:function"``;
    ``inputs`` maps the rule's parameter names to labels (``"//data:split"``, ``":digits"``) or
    ``File(...)``; ``config`` is plain data (a dict) converted to the rule's Config type.
    """
    collected = _collector.get()
    if collected is None:
        raise DeclarationError("target() may only be called while mlbuild loads a BUILD.py")
    if not isinstance(name, str) or not name or any(c in name for c in ":/ "):
        raise DeclarationError(f"target name {name!r} must be a non-empty string without ':', '/' or spaces")
    if not isinstance(rule, str) or ":" not in rule or not rule.split(":", 1)[0].endswith(".py"):
        raise DeclarationError(f"target {name!r}: rule must be 'file.py:function', got {rule!r}")
    inputs = dict(inputs or {})
    for key, value in inputs.items():
        if not isinstance(value, (str, File)):
            raise DeclarationError(
                f"target {name!r}: input {key!r} must be a label string or File(...), got {type(value).__name__}"
            )
    if name in _names.get():
        raise DeclarationError(f"target {name!r} is declared twice")
    _names.get().add(name)
    collected.append(
        TargetDecl(
            name=name,
            rule=rule,
            inputs=inputs,
            config=config,
            image=image,
            resources=resources,
            tags=list(tags or []),
            executor=executor,
        )
    )


_names: contextvars.ContextVar[set[str]] = contextvars.ContextVar("mlbuild_target_names")


# Where the BUILD.py being loaded lives, for params() files relative to it.
_package_dir: contextvars.ContextVar[tuple[Path, Path] | None] = contextvars.ContextVar(
    "mlbuild_package_dir", default=None
)


def current_package_dir() -> Path | None:
    where = _package_dir.get()
    return where[1] if where else None


def workspace_root() -> Path | None:
    where = _package_dir.get()
    return where[0] if where else None


def collecting(
    root: Path | None = None, package_dir: Path | None = None
) -> tuple[list[TargetDecl], contextvars.Token[list[TargetDecl] | None]]:
    """Install a fresh collector; the caller ends it with ``stop_collecting(token)``."""
    decls: list[TargetDecl] = []
    _names.set(set())
    _package_dir.set((root, package_dir) if root is not None and package_dir is not None else None)
    return decls, _collector.set(decls)


def stop_collecting(token: contextvars.Token[list[TargetDecl] | None]) -> None:
    _collector.reset(token)
