"""``mlbuild reproduce ID``: rebuild a recorded build from its git commit and compare every output.

Exit 0 when every output comes out bit for bit as recorded (or differs only where a rule is
declared ``deterministic=False``), 1 with a per-action report otherwise.
"""

from __future__ import annotations

import argparse
import sys

import msgspec

from mlbuild.engine.cli_options import add_scope_option


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("id", metavar="ID", help="the build to reproduce (an id or any unique part of one; see mlbuild builds)")
    p.add_argument("--executor", default=None, help="where steps run (default: the recorded build's executor)")
    p.add_argument("-j", "--jobs", type=int, default=None, help="steps to run at once (default: CPU count)")
    p.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the report")
    add_scope_option(p)


def run(args: argparse.Namespace) -> int:
    from mlbuild.engine.inspect.recorded import find_build
    from mlbuild.engine.inspect.reproduce import reproduce
    from mlbuild.engine.inspect.verify import print_report
    from mlbuild.engine.run.context import open_records

    store, _, _, scope = open_records(args.all_workspaces)
    try:
        record = find_build(store, args.id, scope)

        def warn(message: str) -> None:
            print(f"mlbuild: warning: {message}", file=sys.stderr)

        report = reproduce(store, record, args.executor or record.executor, args.jobs or None, warn,
                           quiet=args.quiet or args.json)
    finally:
        store.close()
    if args.json:
        sys.stdout.write(msgspec.json.encode(report).decode() + "\n")
    else:
        print_report(report)
    return 0 if report.ok else 1
