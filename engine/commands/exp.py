"""``mlbuild exp show|run``: builds of a target as experiments — one row per build with the
params that vary and the metrics; ``exp run`` builds a grid of ``--set`` variants."""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import msgspec

from mlbuild.engine.cli_options import add_scope_option
from mlbuild.engine.errors import BuildFailed, UserError


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="exp_command", metavar="show|run", required=True)
    show = sub.add_parser("show", help="one row per build of a target: varying params and metrics")
    show.add_argument("target", nargs="?", metavar="TARGET", help="a label (default: the latest build's only target)")
    show.add_argument("--limit", type=int, default=20, metavar="N", help="at most N rows (default 20; 0: all)")
    show.add_argument("--sort", default=None, metavar="METRIC", help="sort by a metric or param, highest first (+METRIC: lowest)")
    show.add_argument("--name", default=None, help="only builds with this --name")
    show.add_argument("--tag", action="append", default=[], metavar="K=V", help="only builds with this tag")
    show.add_argument("--json", action="store_true", help="print JSON on stdout")
    show.add_argument("--md", action="store_true", help="print a Markdown table")
    show.add_argument("--remote-cache", default=None, metavar="URL", help="read outputs built elsewhere from this remote cache")
    add_scope_option(show)
    run_p = sub.add_parser("run", help="build a grid of --set variants of a target, then show them")
    run_p.add_argument("target", metavar="TARGET")
    run_p.add_argument("--set", dest="overrides", action="append", default=[], metavar="//PKG:T.FIELD=V1,V2,...",
                       help="a config field and its values; several --set make a grid (cartesian product)")
    run_p.add_argument("-j", "--jobs", type=int, default=1, metavar="N", help="variants built at once (default 1)")
    run_p.add_argument("--name", default=None, help="the experiment's name (default: exp-<time>)")
    run_p.add_argument("--tag", action="append", default=[], metavar="K=V", help="a tag on every variant's build")
    run_p.add_argument("--sort", default=None, metavar="METRIC", help="sort the table by a metric")
    run_p.add_argument("--md", action="store_true", help="print the table as Markdown")
    run_p.add_argument("--executor", default=None, help="where steps run (passed to each build)")
    run_p.add_argument("--remote-cache", default=None, metavar="URL", help="a shared cache (passed to each build)")


def grid(overrides: list[str]) -> list[list[str]]:
    """``//m:t.lr=0.1,0.2`` and ``//m:t.epochs=3,5`` -> the four ``--set`` lists. A value
    starting with ``[`` or ``{`` is one JSON value, commas and all."""
    axes = []
    for item in overrides:
        lhs, sep, raw = item.partition("=")
        if not sep or not raw:
            raise UserError(f"bad --set {item!r}: use --set //pkg:target.field=V1,V2,...")
        values = [raw] if raw.lstrip().startswith(("[", "{")) else [v.strip() for v in raw.split(",")]
        if any(v == "" for v in values):
            raise UserError(f"bad --set {item!r}: an empty value in the list")
        axes.append([f"{lhs}={v}" for v in values])
    return [list(combo) for combo in itertools.product(*axes)] if axes else [[]]


def run(args: argparse.Namespace) -> int:
    from mlbuild.engine.inspect import experiments as ex

    with ex.opened(getattr(args, "all_workspaces", False), getattr(args, "remote_cache", None)) as (session, reader):
        return _run(args, session, reader)


def _run(args: argparse.Namespace, session: Any, reader: Any) -> int:
    from mlbuild.engine.inspect import experiments as ex

    if args.exp_command == "show":
        tags = ex.parse_tags(args.tag)
        if args.target:
            target = session.labels([args.target])[0]
        else:
            last = ex.latest(session.builds(name=args.name, tags=tags), "anything")
            if len(last.targets) != 1:
                raise UserError(f"the latest build has {len(last.targets)} targets: name one (mlbuild exp show //pkg:t)")
            target = last.targets[0]
        rows = ex.exp_rows(reader, session.builds(target, args.name, tags), target)
        rows = ex.sort_rows(rows, args.sort)
        rows = rows[: args.limit] if args.limit > 0 else rows
        if args.json:
            sys.stdout.write(msgspec.json.encode({"target": target, "varying": ex.varying(rows), "rows": rows}).decode() + "\n")
        else:
            print(ex.exp_table(rows, args.md))
        return 0
    if session.ws is None:
        raise UserError("exp run must run inside a workspace (a folder with mlbuild.toml)")
    target = session.labels([args.target])[0]
    variants = grid(args.overrides)
    name = args.name or "exp-" + _stamp()
    ex.parse_tags(args.tag)  # a malformed tag fails before anything runs
    print(f"experiment {name}: {len(variants)} variant(s) of {target}", file=sys.stderr)
    base = [sys.executable, "-m", "mlbuild", "build", target, "--json", "-q", "--no-materialize", "--name", name]
    for t in args.tag:
        base += ["--tag", t]
    if args.executor:
        base += ["--executor", args.executor]
    if args.remote_cache:
        base += ["--remote-cache", args.remote_cache]
    inner_jobs = max(1, (os.cpu_count() or 1) // max(1, args.jobs))

    def build(i: int) -> dict[str, Any]:
        sets = [x for s in variants[i] for x in ("--set", s)]
        proc = subprocess.run([*base, "-j", str(inner_jobs), *sets], capture_output=True, text=True, check=False)
        try:
            summary: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            summary = {"status": "failed", "error": (proc.stderr.strip().splitlines() or ["no output"])[-1]}
        if proc.returncode == 2:  # a user error (a bad --set, say): the same for every variant
            raise UserError((proc.stderr.strip().splitlines() or ["build failed"])[-1].removeprefix("mlbuild: error: "))
        what = " ".join(s.split("=", 1)[0].rsplit(".", 1)[-1] + "=" + s.split("=", 1)[1] for s in variants[i]) or "(as declared)"
        c = summary.get("actions", {})
        print(f"  [{i + 1}/{len(variants)}] {what}: build {summary.get('build_id', '-')} {summary.get('status')}"
              + (f" ({c.get('executed', 0)} executed, {c.get('cached', 0)} cached)" if c else f": {summary.get('error')}"),
              file=sys.stderr)
        return summary

    # The first variant alone: the steps every variant shares (data preparation) run once
    # and the others find them cached; then the rest, -j at a time.
    results = [build(0)]
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        results += list(pool.map(build, range(1, len(variants))))
    ids = [r["build_id"] for r in results if r.get("build_id")]
    records = [session.build(i) for i in ids]
    rows = ex.sort_rows(ex.exp_rows(reader, records, target), args.sort)
    print(ex.exp_table(rows, args.md))
    failed = [i + 1 for i, r in enumerate(results) if r.get("status") != "succeeded"]
    if failed:
        raise BuildFailed(f"experiment {name}: variant(s) {', '.join(map(str, failed))} failed")
    return 0


def _stamp() -> str:
    import time

    return time.strftime("%Y%m%d-%H%M%S")
