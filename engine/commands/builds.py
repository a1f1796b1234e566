"""``mlbuild builds``: the recorded builds, newest first; ``mlbuild builds show ID``: one of them."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import msgspec

from mlbuild.cache.records import BuildHead, BuildRecord
from mlbuild.engine.cli_options import add_scope_option
from mlbuild.engine.inspect.recorded import builds, display_status, find_build, is_abandoned
from mlbuild.engine.run.context import open_records

STATUSES = ("running", "succeeded", "failed", "interrupted", "abandoned")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--target", default=None, metavar="LABEL", help="only builds that requested or ran this target")
    p.add_argument("--status", default=None, choices=STATUSES, help="only builds that ended so")
    p.add_argument("--limit", type=int, default=20, metavar="N", help="at most N builds (default 20; 0: all)")
    p.add_argument("--json", action="store_true", help="print JSON on stdout")
    add_scope_option(p)
    sub = p.add_subparsers(dest="builds_command", metavar="show")
    show = sub.add_parser("show", help="show one build and each of its actions")
    show.add_argument("id", metavar="ID", help="a build id or any unique part of one")
    show.add_argument("--json", action="store_true", help="print the record as JSON on stdout")
    add_scope_option(show, sub=True)


def select(records: list[BuildHead], target: str | None, status: str | None, limit: int) -> list[BuildHead]:
    """Filter newest-first records by a target label (requested or run) and a final status."""
    out = []
    for r in records:
        if target is not None and target not in r.targets and all(a.label != target for a in r.actions):
            continue
        if status is not None and display_status(r) != status:
            continue
        out.append(r)
    return out[:limit] if limit > 0 else out


def counts(record: BuildHead) -> dict[str, int]:
    statuses = [a.status for a in record.actions]
    kinds = ("cached", "remote", "executed", "failed", "skipped", "interrupted", "not_run")
    return {s: statuses.count(s) for s in kinds if s in statuses}


def _when(t: float | None) -> str:
    return "-" if t is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


def _duration(r: BuildHead) -> str:
    if r.finished is None:
        return "-"
    # ``seconds`` is on a monotonic clock; older records only have wall-clock times.
    return f"{r.seconds if r.seconds is not None else max(0.0, r.finished - r.started):.1f}s"


def _commit(r: BuildHead) -> str:
    if r.git_commit is None:
        return "-"
    return r.git_commit[:10] + ("+dirty" if r.git_dirty else "")


def _summary(r: BuildHead) -> str:
    return ", ".join(f"{n} {s}" for s, n in counts(r).items()) or "no actions"


def list_lines(records: list[BuildHead], workspaces: bool = False) -> list[str]:
    lines = []
    for r in records:
        rerun = f" (rerun of {r.rerun_of})" if r.rerun_of else ""
        where = f"{r.workspace}  " if workspaces else ""
        lines.append(
            f"{r.id}  {display_status(r):<11} {_when(r.started)}  {_duration(r):>7}  {r.user}@{r.host}  "
            f"{where}{_commit(r):<16} {' '.join(r.targets)}  [{_summary(r)}]{rerun}"
        )
    return lines


def show_lines(r: BuildRecord) -> list[str]:
    lines = [
        f"build      {r.id}",
        f"status     {display_status(r)}" + (" (its process is gone: it never finished)" if is_abandoned(r) else ""),
        f"started    {_when(r.started)}",
        f"finished   {_when(r.finished)} ({_duration(r)})",
        f"by         {r.user}@{r.host}",
        f"workspace  {r.workspace}" + (f" ({r.workspace_id})" if r.workspace_id else ""),
        f"git        {r.git_commit or '(not a git checkout)'}" + (" (uncommitted changes)" if r.git_dirty else ""),
        f"command    {' '.join(r.argv)}",
        f"targets    {' '.join(r.targets)}",
        f"executor   {r.executor}",
    ]
    if r.overrides:
        sets = [f"{label}.{field}={value!r}" for label, fields in r.overrides.items() for field, value in fields.items()]
        lines.append(f"overrides  {' '.join(sets)}")
    if r.rerun_of:
        lines.append(f"rerun of   {r.rerun_of}")
    lines.append(f"actions    {_summary(r)}")
    for a in r.actions:
        key = a.key[:16] if a.key else "-"
        lines.append(f"  {a.status:<11} {max(a.seconds, 0.0):7.2f}s  {key:<16}  {a.label}")
        if a.error:
            lines.append(f"              {a.error.strip().splitlines()[-1]}")
        elif a.because:
            lines.append(f"              {'because ' + a.because + ' failed' if a.status == 'skipped' else a.because}")
    if r.schema < 2:
        lines.append("note: recorded before mlbuild kept each build's graph: its edges are not known")
    return lines


def _label(text: str, package: str) -> str:
    from mlbuild.engine.plan.labels import parse_label

    return str(parse_label(text, package))


def _print_json(value: Any) -> None:
    sys.stdout.write(msgspec.json.encode(value).decode() + "\n")


def run(args: argparse.Namespace) -> int:
    store, _, package, scope = open_records(args.all_workspaces)
    if args.builds_command == "show":
        record = find_build(store, args.id, scope)
        if args.json:
            _print_json(record)
        else:
            print("\n".join(show_lines(record)))
        return 0
    target = _label(args.target, package) if args.target else None
    records = select(builds(store, scope), target, args.status, args.limit)
    if args.json:
        _print_json(records)
    elif records:
        print("\n".join(list_lines(records, workspaces=scope.everything)))
    else:
        print("no recorded builds" + (" match" if target or args.status else ""), file=sys.stderr)
    return 0
