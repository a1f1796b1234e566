"""Where the local store is. Standard library only: the configuration chain
(``engine/run/settings.py``) imports it without loading the store."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

__all__ = ["ENV_CACHE_DIR", "default_cache_dir", "user_cache_dir"]

ENV_CACHE_DIR = "MLBUILD_CACHE_DIR"


def user_cache_dir(environ: Mapping[str, str] = os.environ) -> Path:
    """``$XDG_CACHE_HOME/mlbuild``, else ``~/.cache/mlbuild``: where the store is when nothing
    else says."""
    xdg = environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "mlbuild"


def default_cache_dir(configured: str | None = None, flag: str | os.PathLike[str] | None = None) -> Path:
    """The local store's folder: ``flag`` (a ``--cache-dir``), else ``MLBUILD_CACHE_DIR``, else
    ``configured`` (the workspace's ``[cache] dir``), else ``user_cache_dir()``. The same order
    as the build's configuration chain (``engine/run/settings.py``, ``mlbuild config``)."""
    for given in (flag, os.environ.get(ENV_CACHE_DIR), configured):
        if given:
            return Path(given).expanduser()
    return user_cache_dir()
