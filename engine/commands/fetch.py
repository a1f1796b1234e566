"""``mlbuild fetch //target``: take a target's outputs from the caches, never by running it.

Downloads the target's outputs from the remote cache on demand (nothing else it depends on)
and materializes them under ``mlbuild-out/``. A target that is in neither cache is an error
naming it; ``mlbuild build`` is what runs steps.
"""

from __future__ import annotations

import argparse
import os

from mlbuild.engine.commands.common import Context, add_remote_options
from mlbuild.engine.errors import UserError
from mlbuild.engine.plan.labels import Label
from mlbuild.engine.run.build import BuildResult, output_dir
from mlbuild.engine.run.materialize import VALUE_SUFFIX


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("targets", nargs="+", metavar="TARGET", help="labels or patterns")
    p.add_argument("-q", "--quiet", action="store_true", help="print only errors and the summary")
    add_remote_options(p)


def remote_url(args: argparse.Namespace, ctx: Context) -> str:
    """The configured remote URL, or a UserError saying how to configure one."""
    url = getattr(args, "remote_cache", None) or os.environ.get("MLBUILD_REMOTE_CACHE") or ctx.ws.config.cache.remote
    if not url:
        raise UserError("no remote cache configured: pass --remote-cache URL, set MLBUILD_REMOTE_CACHE, "
                        "or set [cache] remote in mlbuild.toml")
    return str(url)


def build_args(args: argparse.Namespace) -> argparse.Namespace:
    """The build options for a cache-only build with this command's remote options."""
    return argparse.Namespace(
        jobs=None, keep_going=True, no_cache=False, executor=None, overrides=[], json=False,
        quiet=getattr(args, "quiet", False), remote_cache=getattr(args, "remote_cache", None),
        remote_upload=getattr(args, "remote_upload", None), remote_timeout=getattr(args, "remote_timeout", None),
    )


def cached_build(ctx: Context, labels: list[Label], args: argparse.Namespace, *, materialize: bool) -> BuildResult:
    """A build that takes every result from the local or remote cache and runs nothing."""
    from mlbuild.engine.commands.build import execute

    result = execute(ctx, labels, build_args(args), materialize=materialize, run_steps=False)
    if result.failures:
        raise UserError("; ".join(
            f"{label} is in neither the local nor the remote cache; build it with `mlbuild build {label}`"
            for label in sorted(result.failures)
        ))
    return result


def run(args: argparse.Namespace) -> int:
    ctx = Context()
    remote_url(args, ctx)
    labels = ctx.labels(args.targets)
    result = cached_build(ctx, labels, args, materialize=True)
    for label in labels:
        r = result.results[str(label)]
        base = output_dir(ctx.ws, label)
        for o in r.outputs:
            path = base / label.name if o.codec == "tree" else base / f"{label.name}.value{VALUE_SUFFIX[o.codec]}"
            print(f"{label} {o.name}: {path}")
    return 0

