"""``mlbuild plots diff A B [-o plots.html]``: the series of builds (per-epoch lists a target
returned, plot files its rule marks) overlaid as line charts in one self-contained HTML file."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from mlbuild.engine.cli_options import add_scope_option
from mlbuild.engine.errors import UserError


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="plots_command", metavar="diff", required=True)
    diff = sub.add_parser("diff", help="overlay the series of two or more builds (default: the last two)")
    diff.add_argument("args", nargs="*", metavar="[BUILD...] [TARGET...]", help="build ids, then labels")
    diff.add_argument("-o", "--output", default="plots.html", metavar="FILE", help="the HTML file to write (default plots.html)")
    diff.add_argument("--remote-cache", default=None, metavar="URL", help="read outputs built elsewhere from this remote cache")
    add_scope_option(diff)


def run(args: argparse.Namespace) -> int:
    from mlbuild.engine.inspect import experiments as ex

    with ex.opened(args.all_workspaces, getattr(args, "remote_cache", None)) as (session, reader):
        return _run(args, session, reader)


def _run(args: argparse.Namespace, session: Any, reader: Any) -> int:
    from mlbuild.engine.inspect import experiments as ex
    from mlbuild.engine.inspect.plots import html_page, overlaid

    ids = [a for a in args.args if not a.startswith(("//", ":"))]
    labels = session.labels([a for a in args.args if a.startswith(("//", ":"))])
    if ids:
        records = [session.build(i) for i in ids]
    else:
        records = session.builds(labels[0] if len(labels) == 1 else None)[:2][::-1]
        if len(records) < 2:
            raise UserError("plots diff needs two recorded builds of this workspace (or give build ids)")
    # Every target of the build by default: a loss curve is usually upstream of the target asked for.
    views = [reader.view(r, labels or ex.ran_labels(r)) for r in records]
    out = Path(args.output)
    out.write_text(html_page(views))
    print(f"wrote {out} ({len(overlaid(views))} charts over builds {', '.join(v.id for v in views)})", file=sys.stderr)
    return 0
