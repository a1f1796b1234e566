"""``mlbuild verify``: re-execute targets and prove their outputs come out bit for bit the same.

Exit 0 with a one-line summary when everything matches (or differs only where a rule is
declared ``deterministic=False``); exit 1 with a per-action, per-output report otherwise.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import msgspec

from mlbuild.engine.commands.common import Context, add_executor_options, add_remote_options
from mlbuild.engine.plan.planner import Plan
from mlbuild.engine.run.build import cpu_count


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("targets", nargs="+", metavar="TARGET", help="labels or patterns to verify")
    p.add_argument("--deps", action="store_true", help="verify every action under the targets, not just theirs")
    p.add_argument("--runs", type=int, default=None, metavar="N",
                   help="execute N times without the cache and compare the runs with each other")
    p.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the report")
    add_executor_options(p)
    add_remote_options(p)


def make_verifier(ctx: Context, args: argparse.Namespace, the_plan: Plan, remote: Any) -> Any:
    """A Verifier on the executor the command line (or the workspace) chose."""
    from mlbuild.engine.commands.build import executor_options
    from mlbuild.engine.inspect.verify import Verifier
    from mlbuild.engine.keys.actions import ActionFactory
    from mlbuild.engine.run.backends import executor_class, image_resolver

    executor_name = args.executor or ctx.ws.config.workspace.executor
    cls = executor_class(executor_name)
    cas_root = str(ctx.store.cas.root)
    jobs = args.jobs or cpu_count()

    def make_executor() -> Any:
        return cls(cas_root=cas_root, jobs=jobs, workspace=str(ctx.ws.root), **executor_options(args))

    needs_images = any(t.image for t in the_plan.targets.values()) or executor_name in ("docker", "kuberay")
    factory = ActionFactory(ctx.ws, ctx.store, resolve_image=image_resolver() if needs_images else None)
    stream = None if args.quiet or args.json else sys.stderr
    return Verifier(ctx.store, factory, make_executor, executor_name=executor_name, remote=remote, stream=stream)


def run(args: argparse.Namespace) -> int:
    from mlbuild.engine.inspect.verify import print_report
    from mlbuild.engine.run.backends import remote_session

    ctx = Context()
    the_plan = ctx.plan(args.targets)
    # Run against run uses no cache at all, so no remote either.
    remote = remote_session(args, ctx) if args.runs is None else None
    try:
        verifier = make_verifier(ctx, args, the_plan, remote)
        if args.runs is None:
            report = verifier.verify_recorded(the_plan, deps=args.deps)
        else:
            report = verifier.verify_runs(the_plan, deps=args.deps, runs=args.runs)
    finally:
        if remote is not None:
            remote.close()
    if args.json:
        sys.stdout.write(msgspec.json.encode(report).decode() + "\n")
    else:
        print_report(report)
    return 0 if report.ok else 1
