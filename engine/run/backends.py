"""Backends by name, as import strings: the engine never imports a backend module directly.

A backend module is imported when a build names it, and its class is checked against the
``Executor`` contract (engine/interfaces.py) before anything runs. Backend modules keep their
heavy imports (ray, docker, kubernetes) inside the functions that need them, so loading the
class to read what it declares costs little.
"""

from __future__ import annotations

import importlib
from typing import Any

import msgspec

from mlbuild.engine.errors import UserError
from mlbuild.engine.interfaces import (
    Executor,
    ExecutorContext,
    ExecutorOptions,
    RemoteCache,
    RemoteCacheSettings,
)

EXECUTORS: dict[str, str] = {
    "local": "mlbuild.engine.run.local_executor:LocalExecutor",
    "inline": "mlbuild.engine.run.inline_executor:InlineExecutor",  # in this process: tests, debugging
    "docker": "mlbuild.remote.docker_executor:DockerExecutor",
    "ray": "mlbuild.remote.ray_executor:RayExecutor",
    "kuberay": "mlbuild.remote.kuberay.executor:KubeRayExecutor",
}

REMOTE_CACHES: dict[str, str] = {
    # Any fsspec URL; one implementation serves every scheme.
    "fsspec": "mlbuild.remote.fsspec_cache:open_remote_cache",
}

# What the contract asks of an executor class (see ``Executor``).
_DECLARED = {"name": str, "needs_image": bool, "needs_shared_path": bool}
_METHODS = ("submit", "close")


def _load(spec: str) -> Any:
    module, attr = spec.split(":")
    return getattr(importlib.import_module(module), attr)


def check_executor(name: str) -> None:
    """An unknown executor name is an error before anything runs (nothing is imported)."""
    if name not in EXECUTORS:
        raise UserError(f"unknown executor {name!r}; known: {', '.join(sorted(EXECUTORS))}")


def executor_class(name: str) -> type[Executor]:
    """The backend class registered as ``name``, checked against the ``Executor`` contract."""
    check_executor(name)
    try:
        cls = _load(EXECUTORS[name])
    except ImportError as exc:
        raise UserError(f"executor {name!r} is not available: {exc}") from None
    check_contract(name, cls)
    return cls


def check_contract(name: str, cls: Any) -> None:
    """A TypeError naming what ``cls`` lacks of the ``Executor`` contract."""
    where = f"executor {name!r} ({getattr(cls, '__module__', '?')}.{getattr(cls, '__qualname__', cls)!s})"
    problems = [f"a class attribute {attr}: {kind.__name__}" for attr, kind in _DECLARED.items()
                if not isinstance(getattr(cls, attr, None), kind)]
    options_type = getattr(cls, "options_type", None)
    if not (isinstance(options_type, type) and issubclass(options_type, ExecutorOptions)):
        problems.append("a class attribute options_type: a subclass of ExecutorOptions")
    problems += [f"a method {m}()" for m in _METHODS if not callable(getattr(cls, m, None))]
    if problems:
        raise TypeError(f"{where} does not implement the Executor contract (engine/interfaces.py): "
                        f"it lacks {', '.join(problems)}")


def executor_options(cls: type[Executor], given: dict[str, Any]) -> ExecutorOptions:
    """The backend's options Struct from ``given`` (field name -> value; None: not given).

    A value given for a field the backend does not have is an error naming the flag."""
    fields = set(cls.options_type.__struct_fields__)
    unknown = sorted(k for k, v in given.items() if v is not None and v is not False and k not in fields)
    if unknown:
        flags = ", ".join("--" + k.replace("_", "-") for k in unknown)
        raise UserError(f"{flags}: not an option of --executor {cls.name}")
    try:
        return msgspec.convert({k: v for k, v in given.items() if k in fields and v is not None}, cls.options_type)
    except msgspec.ValidationError as exc:
        raise UserError(f"--executor {cls.name}: {exc}") from None


def make_executor(cls: type[Executor], context: ExecutorContext, options: ExecutorOptions | None) -> Executor:
    """``cls(context, options)``; an options Struct of another backend is an error."""
    if options is None:
        options = cls.options_type()
    elif not isinstance(options, cls.options_type):
        raise UserError(f"--executor {cls.name} takes {cls.options_type.__name__}, not {type(options).__name__}")
    return cls(context, options)  # type: ignore[call-arg]


def open_remote_cache(settings: RemoteCacheSettings) -> RemoteCache:
    """The remote cache at ``settings.url`` (its transport, e.g. S3, configured in remote/)."""
    try:
        opener = _load(REMOTE_CACHES["fsspec"])
    except ImportError as exc:
        raise UserError(f"remote caching is not available: {exc}") from None
    return opener(settings)


def image_resolver() -> Any:
    """The function that turns an image reference into its content digest (Docker engine)."""
    try:
        return _load("mlbuild.remote.images:resolve_image")
    except ImportError as exc:
        raise UserError(f"container images cannot be resolved here: {exc}") from None
