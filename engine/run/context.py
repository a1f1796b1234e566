"""Where a command starts: the workspace around a folder, its local store, recorded builds."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from mlbuild.cache.store import LocalStore, default_cache_dir, open_store
from mlbuild.engine.errors import UserError
from mlbuild.engine.plan.labels import Label
from mlbuild.engine.plan.planner import Plan, plan, resolve_patterns
from mlbuild.engine.plan.workspace import Workspace, find_root

if TYPE_CHECKING:
    from mlbuild.engine.inspect.recorded import Scope

__all__ = ["Context", "find_workspace", "open_records", "store_dir"]


class Context:
    """The workspace holding ``directory`` (default: the current folder) and its local store."""

    def __init__(self, directory: str | os.PathLike[str] | None = None, cache_dir: str | None = None) -> None:
        here = Path(directory if directory is not None else os.getcwd())
        self.ws = Workspace(find_root(here))
        self.current_package = self.ws.package_of(here)
        self._cache_dir = cache_dir
        self._store: LocalStore | None = None

    @property
    def store(self) -> LocalStore:
        if self._store is None:
            self._store = open_store(self.ws.cache_dir, self._cache_dir)
        return self._store

    def labels(self, patterns: list[str]) -> list[Label]:
        if not patterns:
            raise UserError("no targets given (try //... for all)")
        return resolve_patterns(self.ws, patterns, self.current_package)

    def plan(self, patterns: list[str]) -> Plan:
        return plan(self.ws, self.labels(patterns))

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None


def open_records(all_workspaces: bool = False) -> tuple[LocalStore, Workspace | None, str, Scope]:
    """The local store (the workspace's, when run inside one), the workspace, the current
    package, and which builds to see: this workspace's, or every one's (outside a workspace,
    or with ``--all-workspaces``)."""
    from mlbuild.engine.inspect.recorded import ALL, Scope
    from mlbuild.engine.run.build_record import workspace_id

    try:
        ctx = Context()
    except UserError:
        return open_store(), None, "", ALL
    scope = ALL if all_workspaces else Scope(workspace_id(ctx.ws), str(ctx.ws.root))
    return ctx.store, ctx.ws, ctx.current_package, scope


def find_workspace(directory: str | os.PathLike[str] | None = None) -> Workspace | None:
    """The workspace around ``directory`` (default: the current folder), or None outside one."""
    try:
        return Workspace(find_root(Path(directory if directory is not None else os.getcwd())))
    except UserError:
        return None


def store_dir(flag: str | None = None, directory: str | os.PathLike[str] | None = None) -> Path:
    """The local store's folder for a command that may run outside a workspace: ``--cache-dir``,
    else ``MLBUILD_CACHE_DIR``, else the workspace's ``[cache] dir``, else the user's cache."""
    ws = None if flag else find_workspace(directory)
    return default_cache_dir(ws.cache_dir if ws is not None else None, flag)
