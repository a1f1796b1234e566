"""``mlbuild verify``: re-execute targets and prove their outputs come out bit for bit the same.

Exit 0 with a one-line summary when everything matches (or differs only where a rule is
declared ``deterministic=False``); exit 1 with a per-action, per-output report otherwise.
"""

from __future__ import annotations

import argparse
import sys

import msgspec

from mlbuild.engine.cli_options import add_executor_options, add_remote_options, build_settings
from mlbuild.engine.run.settings import RemoteSettings


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("targets", nargs="+", metavar="TARGET", help="labels or patterns to verify")
    p.add_argument("--deps", action="store_true", help="verify every action under the targets, not just theirs")
    p.add_argument("--runs", type=int, default=None, metavar="N",
                   help="execute N times without the cache and compare the runs with each other")
    p.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the report")
    add_executor_options(p)
    add_remote_options(p)


def run(args: argparse.Namespace) -> int:
    from mlbuild.engine.inspect.verify import Verifier, print_report
    from mlbuild.engine.run.api import open_build

    settings = build_settings(args, args.targets)
    if args.runs is not None:
        # Run against run uses no cache at all, so no remote either.
        settings = msgspec.structs.replace(settings, remote=RemoteSettings(enabled=False))
    with open_build(settings) as session:
        stream = None if args.quiet or args.json else sys.stderr
        verifier = Verifier(session.store, session.factory, session.make_executor,
                            executor_name=session.config.executor, remote=session.remote, stream=stream)
        if args.runs is None:
            report = verifier.verify_recorded(session.plan, deps=args.deps)
        else:
            report = verifier.verify_runs(session.plan, deps=args.deps, runs=args.runs)
    if args.json:
        sys.stdout.write(msgspec.json.encode(report).decode() + "\n")
    else:
        print_report(report)
    return 0 if report.ok else 1
