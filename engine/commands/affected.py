"""``mlbuild affected --since REF [PATTERN...]``: the targets a change since REF rebuilds, one
label per line (for ``mlbuild build $(mlbuild affected --since origin/main)`` in CI)."""

from __future__ import annotations

import argparse
import json


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("patterns", nargs="*", default=["//..."], metavar="PATTERN", help="targets to consider (default //...)")
    p.add_argument("--since", required=True, metavar="REF", help="a git ref: origin/main, a commit, a tag")
    p.add_argument("--json", action="store_true", help="print a JSON list")


def run(args: argparse.Namespace) -> int:
    import os

    from mlbuild.cache.store import LocalStore, default_cache_dir
    from mlbuild.engine.inspect.affected import affected_since
    from mlbuild.engine.plan.workspace import Workspace, find_root

    ws = Workspace(find_root(os.getcwd()))
    store = LocalStore(default_cache_dir(ws.cache_dir))
    labels = affected_since(ws, store, args.since, args.patterns or ["//..."])
    print(json.dumps(labels) if args.json else "\n".join(labels))
    return 0
