"""``mlbuild metrics show|diff``: the metrics targets produced, and how two builds differ in
params and metrics (DVC's ``metrics show/diff`` and ``params diff`` in one)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import msgspec

from mlbuild.engine.cli_options import add_scope_option
from mlbuild.engine.errors import BuildFailed, UserError


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="metrics_command", metavar="show|diff", required=True)
    show = sub.add_parser("show", help="the metrics of targets in a build (default: the latest)")
    show.add_argument("targets", nargs="*", metavar="TARGET", help="labels (default: the build's targets)")
    show.add_argument("--build", default=None, metavar="ID", help="a recorded build (default: the latest of this workspace)")
    diff = sub.add_parser("diff", help="params and metrics that differ between two builds")
    diff.add_argument("args", nargs="*", metavar="[A] [B] [TARGET]",
                      help="two build ids (default: the last two builds of this workspace), then labels")
    diff.add_argument("--all", action="store_true", help="show unchanged params and metrics too")
    diff.add_argument("--fail-on-regression", action="append", default=[], metavar="METRIC<CHANGE",
                      help="exit 1 when a metric's change crosses the bound, e.g. accuracy<-0.01 or loss>0.05")
    for q in (show, diff):
        q.add_argument("--json", action="store_true", help="print JSON on stdout")
        q.add_argument("--md", action="store_true", help="print a Markdown table (for CI comments)")
        q.add_argument("--remote-cache", default=None, metavar="URL", help="read outputs built elsewhere from this remote cache")
        add_scope_option(q)


def run(args: argparse.Namespace) -> int:
    from mlbuild.engine.inspect import experiments as ex

    with ex.opened(args.all_workspaces, getattr(args, "remote_cache", None)) as (session, reader):
        return _run(args, session, reader)


def _run(args: argparse.Namespace, session: Any, reader: Any) -> int:
    from mlbuild.engine.inspect import experiments as ex
    from mlbuild.engine.inspect.metrics import parse_gate

    if args.metrics_command == "show":
        labels = session.labels(args.targets)
        recorded = [r for r in session.builds() if all(ex.ran(r, label) for label in labels)]
        if args.build:
            view = reader.view(session.build(args.build), labels or None)
        elif recorded or not labels:
            view = reader.view(ex.latest(recorded, labels[0] if labels else "anything"), labels or None)
        else:
            # Never built here: the results today's workspace gives, from the local or remote
            # cache (a teammate's or CI's build), without running anything.
            view = ex.cached_view(reader, labels, args.remote_cache)
        for label in labels:
            if label not in view.targets:
                raise UserError(f"{label}: build {view.id} has no result of it")
        if args.json:
            _print_json({"build": view.id, "metrics": {k: t.metrics for k, t in view.targets.items()}})
        else:
            print(ex.show_table(view, args.md))
        return 0
    ids = [a for a in args.args if not a.startswith(("//", ":"))]
    labels = session.labels([a for a in args.args if a.startswith(("//", ":"))])
    gates = [parse_gate(g) for g in args.fail_on_regression]
    if len(ids) > 2:
        raise UserError(f"metrics diff takes at most two builds, got {len(ids)}: {' '.join(ids)}")
    if len(ids) == 2:
        old, new = session.build(ids[0]), session.build(ids[1])
    else:
        recent = session.builds(labels[0] if len(labels) == 1 else None)
        if len(ids) == 1:
            old = session.build(ids[0])
            new = ex.latest([r for r in recent if r.id != old.id], "another build")
        else:
            if len(recent) < 2:
                raise UserError("metrics diff needs two recorded builds of this workspace (or give two build ids)")
            new, old = recent[0], recent[1]
    wanted = labels or None
    comparison = ex.compare(reader.view(old, wanted), reader.view(new, wanted), include_same=args.all)
    if args.json:
        _print_json(comparison)
    else:
        print(ex.diff_text(comparison, args.md))
    broken = [
        f"{m.name}: {m.change:+.6g} ({gate})"
        for m in comparison.metrics
        for gate in gates
        if m.name.split(" ", 1)[1] == gate.metric and m.change is not None and gate.violated(m.change)
    ]
    missing = [str(g) for g in gates if not any(m.name.split(" ", 1)[1] == g.metric for m in ex.compare(
        reader.view(old, wanted), reader.view(new, wanted), include_same=True).metrics)]
    if missing:
        raise UserError(f"--fail-on-regression: no metric named {', '.join(missing)} in builds {old.id}, {new.id}")
    if broken:
        raise BuildFailed("regression: " + "; ".join(broken))
    return 0


def _print_json(value: object) -> None:
    sys.stdout.write(msgspec.json.encode(value).decode() + "\n")
