"""The command line's shared options, and their conversion into ``BuildSettings`` (once)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from mlbuild.engine.errors import UserError
from mlbuild.engine.run.settings import BuildSettings, RemoteSettings, parse_set

# The flags of add_executor_options that fill a backend's options Struct (by field name).
EXECUTOR_FLAGS = ("ray_address", "kube_context", "kube_namespace", "keep_cluster", "ray_cas_root", "ray_workspace",
                  "docker_network", "kube_workers", "kube_ready_timeout", "ray_data", "kube_secret")


def build_settings(args: argparse.Namespace, targets: list[str], **given: Any) -> BuildSettings:
    """The ``BuildSettings`` of a command's parsed arguments; ``given`` sets fields outright.

    A flag the command does not have is "not given": the configuration chain decides."""
    def flag(name: str, default: Any = None) -> Any:
        return getattr(args, name, default)

    upload = flag("remote_upload")
    fields: dict[str, Any] = {
        "targets": list(targets),
        "jobs": flag("jobs") or None,  # -j 0: the default, as before
        "executor": flag("executor"),
        "executor_flags": {name: flag(name) for name in EXECUTOR_FLAGS if flag(name) not in (None, False)},
        "remote": RemoteSettings(url=flag("remote_cache"), upload=None if upload is None else upload == "true",
                                 timeout=flag("remote_timeout")),
        "overrides": parse_set(flag("overrides", []) or []),
        "no_cache": bool(flag("no_cache", False)),
        "keep_going": bool(flag("keep_going", False)),
        "quiet": bool(flag("quiet", False)),
        "timeout": flag("timeout"),
        "strict": True if flag("strict") else None,
        "argv": ["mlbuild", *sys.argv[1:]],
        "name": flag("name"),
        "tags": parse_tags(flag("tags", []) or []),
        "materialize": not flag("no_materialize", False),
    }
    fields.update(given)
    return BuildSettings(**fields)


def parse_tags(items: list[str]) -> dict[str, str]:
    """``--tag team=vision`` (repeatable) -> {"team": "vision"}."""
    tags = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"bad --tag {item!r}: use --tag KEY=VALUE")
        tags[key.strip()] = value
    return tags


def add_build_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("-k", "--keep-going", action="store_true", help="go on with independent targets after a failure")
    p.add_argument("--no-cache", action="store_true", help="execute everything; still record the results")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="//PKG:T.FIELD=VALUE",
                   help="override a config field of a target (repeatable)")
    p.add_argument("--json", action="store_true", help="print one JSON summary on stdout at the end")
    p.add_argument("-q", "--quiet", action="store_true", help="print only errors and the summary")
    p.add_argument("--name", default=None, help="name this build (an experiment): builds and exp show filter by it")
    p.add_argument("--tag", dest="tags", action="append", default=[], metavar="K=V",
                   help="tag this build (repeatable): builds and exp show filter by it")
    p.add_argument("--no-materialize", action="store_true", help="write nothing under mlbuild-out/ (outputs stay in the cache)")
    p.add_argument("--strict", action="store_true",
                   help="a step that reads a workspace file it does not declare fails (also [build] strict = true)")
    add_executor_options(p)
    add_remote_options(p)


def add_executor_options(p: argparse.ArgumentParser) -> None:
    """Where and how many steps run: for every command that executes steps."""
    p.add_argument("-j", "--jobs", type=int, default=None, help="steps to run at once (default: CPU count)")
    p.add_argument("--executor", default=None, help="where steps run: local (default), inline (in this process, one at a time), docker, ray, kuberay")
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
    g.add_argument("--ray-data", default=None, choices=("remote", "shared"),
                   help="remote: data and code move through the remote cache, nothing shared with the workers; "
                        "shared: the workers read the CAS and workspace by path (default: remote when a remote "
                        "cache is set and the cluster is not local)")
    g.add_argument("--kube-secret", default=None, metavar="NAME",
                   help="a Kubernetes Secret whose keys become the pods' environment (the remote's credentials, "
                        "by reference: never in the manifest)")
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
