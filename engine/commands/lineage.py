"""``mlbuild lineage TARGET|DIGEST|PATH``: the tree from an output back to its sources."""

from __future__ import annotations

import argparse
import sys

from mlbuild.engine.cli_options import add_scope_option
from mlbuild.engine.errors import UserError
from mlbuild.engine.run.context import open_records


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("what", metavar="TARGET|DIGEST|PATH",
                   help="a label (its last build), an action key, an output digest, or a file in the cache or mlbuild-out/")
    p.add_argument("--json", action="store_true", help="print the lineage as JSON")
    p.add_argument("--format", choices=["text", "dot"], default="text", help="text (default) or Graphviz dot")
    p.add_argument("--depth", type=int, default=None, metavar="N", help="stop N actions below the start")
    add_scope_option(p)


def run(args: argparse.Namespace) -> int:
    import msgspec

    from mlbuild.engine.inspect.hashgraph import HashGraph
    from mlbuild.engine.inspect.lineage import lineage_tree, resolve_start
    from mlbuild.engine.inspect.lineage_render import lineage_dot, lineage_text

    if args.depth is not None and args.depth < 0:
        raise UserError("--depth must be 0 or more")
    store, _, package, scope = open_records(args.all_workspaces)
    try:
        graph = HashGraph(store, scope)
        start = resolve_start(store, args.what, package, graph)
        tree = lineage_tree(store, start.key, args.depth, graph, start.build, start.notes)
    finally:
        store.close()
    if args.json:
        sys.stdout.buffer.write(msgspec.json.encode(tree) + b"\n")
    elif args.format == "dot":
        sys.stdout.write(lineage_dot(tree))
    else:
        sys.stdout.write(lineage_text(tree))
    return 0
