"""What most commands start with: the workspace, the local store, the planner."""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING, Any

from mlbuild.cache.store import LocalStore, default_cache_dir
from mlbuild.engine.errors import UserError
from mlbuild.engine.plan.labels import Label
from mlbuild.engine.plan.planner import Plan, plan, resolve_patterns
from mlbuild.engine.plan.workspace import Workspace, find_root

if TYPE_CHECKING:
    from mlbuild.engine.inspect.recorded import Scope


class Context:
    def __init__(self) -> None:
        self.ws = Workspace(find_root(os.getcwd()))
        self.current_package = self.ws.package_of(os.getcwd())
        self._store: LocalStore | None = None

    @property
    def store(self) -> LocalStore:
        if self._store is None:
            self._store = LocalStore(default_cache_dir(self.ws.cache_dir))
        return self._store

    def labels(self, patterns: list[str]) -> list[Label]:
        if not patterns:
            raise UserError("no targets given (try //... for all)")
        return resolve_patterns(self.ws, patterns, self.current_package)

    def plan(self, patterns: list[str]) -> Plan:
        return plan(self.ws, self.labels(patterns))


def parse_set(values: list[str], current_package: str = "") -> dict[str, dict[str, Any]]:
    """``--set //models:resnet.epochs=5`` → {"//models:resnet": {"epochs": 5}}."""
    import json

    from mlbuild.engine.plan.labels import parse_label

    out: dict[str, dict[str, Any]] = {}
    for item in values:
        lhs, sep, raw = item.partition("=")
        target, dot, field = lhs.partition(".") if not lhs.startswith("//") else _split_field(lhs)
        if not sep or not dot or not field:
            raise UserError(f"bad --set {item!r}: use --set //pkg:target.field=value")
        label = str(parse_label(target, current_package))
        try:
            value: Any = json.loads(raw)
        except ValueError:
            value = raw
        out.setdefault(label, {})[field] = value
    return out


def _split_field(lhs: str) -> tuple[str, str, str]:
    pkg_and_name, colon, rest = lhs.partition(":")
    name, dot, field = rest.partition(".")
    return pkg_and_name + colon + name, dot, field


def add_build_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("-k", "--keep-going", action="store_true", help="go on with independent targets after a failure")
    p.add_argument("--no-cache", action="store_true", help="execute everything; still record the results")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="//PKG:T.FIELD=VALUE",
                   help="override a config field of a target (repeatable)")
    p.add_argument("--json", action="store_true", help="print one JSON summary on stdout at the end")
    p.add_argument("-q", "--quiet", action="store_true", help="print only errors and the summary")
    p.add_argument("--strict", action="store_true",
                   help="a step that reads a workspace file it does not declare fails (also [build] strict = true)")
    add_executor_options(p)
    add_remote_options(p)


def add_executor_options(p: argparse.ArgumentParser) -> None:
    """Where and how many steps run: for every command that executes steps."""
    p.add_argument("-j", "--jobs", type=int, default=None, help="steps to run at once (default: CPU count)")
    p.add_argument("--executor", default=None, help="where steps run: local (default), docker, ray, kuberay")
    p.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                   help="stop any step that runs longer and fail its target (caps @rule(timeout=...))")
    g = p.add_argument_group("docker, ray and kuberay executors")
    g.add_argument("--ray-address", default=None, help="a running Ray cluster (default: $RAY_ADDRESS, else a local Ray)")
    g.add_argument("--kube-context", default=None, help="kubeconfig context for --executor kuberay")
    g.add_argument("--kube-namespace", "--namespace", dest="kube_namespace", default=None, help="namespace for the RayCluster")
    g.add_argument("--keep-cluster", action="store_true", help="keep the RayCluster for the next build of the same image")
    g.add_argument("--ray-cas-root", default=None, metavar="DIR",
                   help="the cache's CAS as mounted on the Ray workers (a shared filesystem; default: the local path)")
    g.add_argument("--ray-workspace", default=None, metavar="DIR",
                   help="the workspace as mounted on the Ray workers (default: the local path)")
    g.add_argument("--docker-network", default=None, metavar="NAME",
                   help="Docker network for --executor docker containers (default: Docker's default bridge)")
    g.add_argument("--kube-workers", type=int, default=None, metavar="N", help="worker pods of the RayCluster (default 1)")
    g.add_argument("--kube-ready-timeout", type=float, default=None, metavar="SECONDS",
                   help="give up when the RayCluster is not ready after this long (default 600)")


def add_remote_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("remote cache")
    g.add_argument("--remote-cache", default=None, metavar="URL", help="fsspec URL of a shared cache (or $MLBUILD_REMOTE_CACHE)")
    g.add_argument("--remote-upload", default=None, choices=["true", "false"], help="publish results to the remote (default true)")
    g.add_argument("--remote-timeout", type=float, default=None, metavar="SECONDS", help="give up on the remote after this long")


def add_scope_option(p: argparse.ArgumentParser, sub: bool = False) -> None:
    # On a subcommand the flag must not reset what the parent command's flag said.
    p.add_argument("--all-workspaces", action="store_true", default=argparse.SUPPRESS if sub else False,
                   help="see the builds of every workspace that shares this cache (default: this workspace's)")


def open_records(all_workspaces: bool = False) -> tuple[LocalStore, Workspace | None, str, Scope]:
    """The local store (the workspace's, when run inside one), the workspace, the current
    package, and which builds to see: this workspace's, or every one's (outside a workspace,
    or with ``--all-workspaces``)."""
    from mlbuild.engine.inspect.recorded import ALL, Scope
    from mlbuild.engine.run.build_record import workspace_id

    try:
        ctx = Context()
    except UserError:
        return LocalStore(default_cache_dir()), None, "", ALL
    scope = ALL if all_workspaces else Scope(workspace_id(ctx.ws), str(ctx.ws.root))
    return ctx.store, ctx.ws, ctx.current_package, scope
