"""``mlbuild lineage TARGET|DIGEST|PATH``: the tree from an output back to its sources."""

from __future__ import annotations

import argparse
import sys

from mlbuild.cache.store import LocalStore, default_cache_dir
from mlbuild.engine.errors import UserError
from mlbuild.engine.plan.workspace import Workspace


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("what", metavar="TARGET|DIGEST|PATH",
                   help="a label (its last build), an action key, an output digest, or a file in the cache or mlbuild-out/")
    p.add_argument("--json", action="store_true", help="print the lineage as JSON")
    p.add_argument("--format", choices=["text", "dot"], default="text", help="text (default) or Graphviz dot")
    p.add_argument("--depth", type=int, default=None, metavar="N", help="stop N actions below the start")


def open_store() -> tuple[LocalStore, Workspace | None, str]:
    """The store of the current workspace (or the default cache outside of one), the workspace
    and the current package."""
    from mlbuild.engine.commands.common import Context

    try:
        ctx = Context()
    except UserError:
        return LocalStore(default_cache_dir()), None, ""
    return ctx.store, ctx.ws, ctx.current_package


def run(args: argparse.Namespace) -> int:
    import msgspec

    from mlbuild.engine.inspect.hashgraph import HashGraph
    from mlbuild.engine.inspect.lineage import lineage_tree, resolve_key
    from mlbuild.engine.inspect.lineage_render import lineage_dot, lineage_text

    if args.depth is not None and args.depth < 0:
        raise UserError("--depth must be 0 or more")
    store, _, package = open_store()
    try:
        graph = HashGraph(store)
        tree = lineage_tree(store, resolve_key(store, args.what, package, graph), args.depth, graph)
    finally:
        store.close()
    if args.json:
        sys.stdout.buffer.write(msgspec.json.encode(tree) + b"\n")
    elif args.format == "dot":
        sys.stdout.write(lineage_dot(tree))
    else:
        sys.stdout.write(lineage_text(tree))
    return 0
