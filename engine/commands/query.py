"""``mlbuild query``: print the labels an expression selects, one a line."""

from __future__ import annotations

import argparse

from mlbuild.engine.inspect.query import run_query
from mlbuild.engine.run.context import Context


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("expression", help="e.g. 'deps(//models:resnet)', 'rdeps(//..., //data:digits)', //pkg/...")


def run(args: argparse.Namespace) -> int:
    ctx = Context()
    for label in run_query(ctx.ws, args.expression, ctx.current_package):
        print(label)
    return 0
