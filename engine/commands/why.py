"""``mlbuild why [--dry-run] TARGET``: why each action of a target was cached or rebuilt."""

from __future__ import annotations

import argparse
import sys

from mlbuild.engine.cli_options import add_scope_option


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("target", metavar="TARGET", help="a label, e.g. //models:resnet")
    p.add_argument("--dry-run", action="store_true", help="explain what the next build would rebuild, without running it")
    p.add_argument("--build", default=None, metavar="ID", help="explain this recorded build instead of the last one")
    p.add_argument("--json", action="store_true", help="print the explanation as JSON")
    add_scope_option(p)


def run(args: argparse.Namespace) -> int:
    import msgspec

    from mlbuild.engine.errors import UserError
    from mlbuild.engine.inspect.hashgraph import HashGraph
    from mlbuild.engine.inspect.lineage_render import explanation_text
    from mlbuild.engine.inspect.why import explain_dry_run, explain_target
    from mlbuild.engine.plan.labels import parse_label
    from mlbuild.engine.run.context import open_records

    store, ws, package, scope = open_records(args.all_workspaces)
    try:
        label = str(parse_label(args.target, package))
        if args.dry_run:
            if ws is None:
                raise UserError("why --dry-run needs a workspace (no mlbuild.toml here or above)")
            if args.build:
                raise UserError("why: --dry-run and --build do not go together")
            explanation = explain_dry_run(ws, store, label, HashGraph(store, scope))
        else:
            explanation = explain_target(store, label, args.build, HashGraph(store, scope))
    finally:
        store.close()
    if args.json:
        sys.stdout.buffer.write(msgspec.json.encode(explanation) + b"\n")
    else:
        sys.stdout.write(explanation_text(explanation))
    return 0
