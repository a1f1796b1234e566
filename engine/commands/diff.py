"""``mlbuild diff BUILD_A BUILD_B``: two recorded builds compared target by target."""

from __future__ import annotations

import argparse
import sys

from mlbuild.engine.cli_options import add_scope_option


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("old", metavar="BUILD_A", help="a build id or any unique part of one (mlbuild builds lists them)")
    p.add_argument("new", metavar="BUILD_B")
    p.add_argument("--json", action="store_true", help="print the comparison as JSON")
    add_scope_option(p)


def run(args: argparse.Namespace) -> int:
    import msgspec

    from mlbuild.engine.inspect.hashgraph import HashGraph
    from mlbuild.engine.inspect.lineage_render import diff_text
    from mlbuild.engine.inspect.why import diff_builds
    from mlbuild.engine.run.context import open_records

    store, _, _, scope = open_records(args.all_workspaces)
    try:
        result = diff_builds(store, args.old, args.new, HashGraph(store, scope))
    finally:
        store.close()
    if args.json:
        sys.stdout.buffer.write(msgspec.json.encode(result) + b"\n")
    else:
        sys.stdout.write(diff_text(result))
    return 0
