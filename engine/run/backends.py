"""Backends by name, as import strings: the engine never imports a backend module directly."""

from __future__ import annotations

import importlib
from typing import Any

from mlbuild.engine.errors import UserError

EXECUTORS: dict[str, str] = {
    "local": "mlbuild.engine.run.local_executor:LocalExecutor",
    "inline": "mlbuild.engine.run.inline_executor:InlineExecutor",  # in this process: tests, debugging
    "docker": "mlbuild.remote.docker_executor:DockerExecutor",
    "ray": "mlbuild.remote.ray_executor:RayExecutor",
    "kuberay": "mlbuild.remote.kuberay.executor:KubeRayExecutor",
}

REMOTE_CACHES: dict[str, str] = {
    # Any fsspec URL; one implementation serves every scheme.
    "fsspec": "mlbuild.remote.fsspec_cache:FsspecRemoteCache",
}


def _load(spec: str) -> Any:
    module, attr = spec.split(":")
    return getattr(importlib.import_module(module), attr)


def check_executor(name: str) -> None:
    """An unknown executor name is an error before anything runs (nothing is imported)."""
    if name not in EXECUTORS:
        raise UserError(f"unknown executor {name!r}; known: {', '.join(sorted(EXECUTORS))}")


def executor_class(name: str) -> Any:
    check_executor(name)
    try:
        return _load(EXECUTORS[name])
    except ImportError as exc:
        raise UserError(f"executor {name!r} is not available: {exc}") from None


def remote_cache_class() -> Any:
    try:
        return _load(REMOTE_CACHES["fsspec"])
    except ImportError as exc:
        raise UserError(f"remote caching is not available: {exc}") from None


def image_resolver() -> Any:
    """The function that turns an image reference into its content digest (Docker engine)."""
    try:
        return _load("mlbuild.remote.images:resolve_image")
    except ImportError as exc:
        raise UserError(f"container images cannot be resolved here: {exc}") from None


def remote_session(args: Any, ctx: Any) -> Any:
    """A remote-cache session for this build, or None when no remote is configured."""
    import os

    url = getattr(args, "remote_cache", None) or os.environ.get("MLBUILD_REMOTE_CACHE") or ctx.ws.config.cache.remote
    if not url:
        return None
    try:
        open_session = _load("mlbuild.engine.run.remote_session:open_session")
    except ImportError as exc:
        raise UserError(f"remote caching is not available: {exc}") from None
    return open_session(url, args, ctx)
